"""Constant initializers: zeros, ones, a constant, and a given array."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .._checks import check_real, check_representable, shown
from .base import Initializer

if TYPE_CHECKING:
    import numpy.typing as npt

    from .._typing import Array, Config, DTypeKind, Shape
    from .base import Request

__all__ = ["Zeros", "Ones", "Constant", "FromArray"]


class Constant(Initializer):
    """All ``value`` (Keras' ``Constant``): a real scalar, or an array broadcast to the shape.

    The value must be representable in the dtype of a call: an integer (in
    range) for integer dtypes, 0 or 1 for bool, and within the range of a
    floating dtype (where it is rounded to the nearest value). An array value
    (as Keras accepts) must broadcast to the shape of each call, like Keras'
    ``value * ones(shape)``. Anything else is a ValueError, raised before
    anything is written.

    Parameters
    ----------
    value : float or array_like, default 0.0

    Examples
    --------
    >>> Constant(0.1)((2,))
    array([0.1, 0.1], dtype=float32)
    >>> Constant([1.0, 2.0, 3.0])((2, 3))
    array([[1., 2., 3.],
           [1., 2., 3.]], dtype=float32)
    >>> Constant(-1)((2,), dtype="uint8")
    Traceback (most recent call last):
    ...
    ValueError: Constant value -1 is not representable in uint8. Received: value=-1, dtype=uint8
    """

    dtype_kind: ClassVar[DTypeKind] = "any"
    elementwise: ClassVar[bool] = True
    value: int | float | npt.NDArray[Any]

    def __init__(self, value: npt.ArrayLike = 0.0) -> None:
        if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
            value = _real_array(value, "value")
            if value.dtype.kind == "f" and np.isnan(value).any():
                raise ValueError(f"value must not hold NaN. Received: value={shown(value)}")
            if value.ndim:
                self.value = value
                return
            value = value.item()   # a 0-d array: its scalar
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            self.value = int(value)
        else:
            self.value = check_real(value, "value", finite=False)

    def generate(self, request: Request) -> Array:
        # the value itself, not its broadcast: the same numbers, no tensor-sized check
        check_representable(self.value, request.dtype, "value", "Constant value")
        if isinstance(self.value, np.ndarray):
            return request.write_whole(self._broadcast(request.shape))
        return request.write(self.value)

    def validate(self, request: Request) -> None:
        if isinstance(self.value, np.ndarray):
            self._broadcast(request.shape)

    def _broadcast(self, shape: Shape) -> npt.NDArray[Any]:
        try:
            return np.broadcast_to(self.value, shape)
        except ValueError:
            raise ValueError(f"The Constant value of shape {np.shape(self.value)} does not "
                             f"broadcast to shape {shape}. Received: shape={shape}") from None

    def get_config(self) -> Config:
        value = self.value
        return {"value": value.tolist() if isinstance(value, np.ndarray) else value}

    def __repr__(self) -> str:
        if isinstance(self.value, np.ndarray):
            return f"{type(self).__name__}(<array of shape {self.value.shape}>)"
        return super().__repr__()


def _real_array(value: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
    """``value`` as a NumPy array of real numbers, else ValueError naming it."""
    try:
        array = np.array(value)
    except Exception as exc:  # noqa: BLE001 - any failure to convert
        raise ValueError(f"{name} must be array-like. Received: {name}={shown(value)}") from exc
    if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
        raise ValueError(f"{name} must hold real numbers. "
                         f"Received: {name} with dtype {array.dtype}")
    return array


class Zeros(Constant):
    """All zeros (Keras' ``Zeros``); any numeric dtype.

    Examples
    --------
    >>> Zeros()((2, 3))
    array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__(0)

    def get_config(self) -> Config:
        return {}


class Ones(Constant):
    """All ones (Keras' ``Ones``); any numeric dtype.

    Examples
    --------
    >>> Ones()((3,), dtype="int32")
    array([1, 1, 1], dtype=int32)
    """

    def __init__(self) -> None:
        super().__init__(1)

    def get_config(self) -> Config:
        return {}


class FromArray(Initializer):
    """The values of a given array, for a call with exactly its shape.

    What :func:`fastinit.initializers.get` makes of an array identifier
    (as Keras does); the shape is checked at each call, and every value must
    be representable in the call's dtype (as for :class:`Constant`).

    Parameters
    ----------
    value : array_like
        Real values (a NumPy array, a nested list, or anything with ``__array__``).

    Examples
    --------
    >>> init = FromArray([[1.0, 2.0], [3.0, 4.0]])
    >>> init((2, 2), dtype="float64")
    array([[1., 2.],
           [3., 4.]])
    >>> init((2, 3))
    Traceback (most recent call last):
    ...
    ValueError: Expected `shape` to be (2, 2) for an array used as initializer. Received: shape=(2, 3)
    """

    dtype_kind: ClassVar[DTypeKind] = "any"

    def __init__(self, value: npt.ArrayLike) -> None:
        self.value = _real_array(value, "value")

    def validate(self, request: Request) -> None:
        if request.shape != self.value.shape:
            raise ValueError(f"Expected `shape` to be {self.value.shape} for an array used as "
                             f"initializer. Received: shape={request.shape}")

    def generate(self, request: Request) -> Array:
        self.validate(request)
        # the whole array, whatever the region: every shard of a call succeeds or none does
        check_representable(self.value, request.dtype, "value", "FromArray value")
        return request.write_whole(self.value)

    def get_config(self) -> Config:
        return {"value": self.value.tolist()}

    def __repr__(self) -> str:
        return f"FromArray(<array of shape {self.value.shape}, dtype {self.value.dtype}>)"
