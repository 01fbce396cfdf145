"""Constant initializers: zeros, ones, a constant, and a given array."""

import numbers

import numpy as np

from .._checks import check_real, check_representable
from .base import Initializer

__all__ = ["Zeros", "Ones", "Constant", "FromArray"]


class Constant(Initializer):
    """All ``value`` (Keras' ``Constant``): a real scalar, in any numeric dtype.

    The value must be representable in the dtype of a call: an integer (in
    range) for integer dtypes, 0 or 1 for bool, and within the range of a
    floating dtype (where it is rounded to the nearest value). Anything else
    is a ValueError, raised before anything is written.

    Parameters
    ----------
    value : float, default 0.0

    Examples
    --------
    >>> Constant(0.1)((2,))
    array([0.1, 0.1], dtype=float32)
    >>> Constant(-1)((2,), dtype="uint8")
    Traceback (most recent call last):
    ...
    ValueError: Constant value -1 is not representable in uint8. Received: value=-1, dtype=uint8
    """

    dtype_kind = "any"
    elementwise = True

    def __init__(self, value=0.0):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            self.value = int(value)
        else:
            self.value = check_real(value, "value", finite=False)

    def generate(self, request):
        check_representable(self.value, request.dtype, "value", "Constant value")
        return request.write(self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """All zeros (Keras' ``Zeros``); any numeric dtype.

    Examples
    --------
    >>> Zeros()((2, 3))
    array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """

    def __init__(self):
        super().__init__(0)

    def get_config(self):
        return {}


class Ones(Constant):
    """All ones (Keras' ``Ones``); any numeric dtype.

    Examples
    --------
    >>> Ones()((3,), dtype="int32")
    array([1, 1, 1], dtype=int32)
    """

    def __init__(self):
        super().__init__(1)

    def get_config(self):
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
    ValueError: Expected shape (2, 2) for an array used as initializer. Received: shape=(2, 3)
    """

    dtype_kind = "any"

    def __init__(self, value):
        try:
            array = np.array(value)
        except Exception as exc:  # noqa: BLE001 - any failure to convert
            raise ValueError(f"value must be array-like. Received: value={value!r}") from exc
        if array.dtype.kind not in "biuf" and array.dtype.name != "bfloat16":
            raise ValueError("value must hold real numbers. "
                             f"Received: value with dtype {array.dtype}")
        self.value = array

    def validate(self, request):
        if request.shape != self.value.shape:
            raise ValueError(f"Expected shape {self.value.shape} for an array used as "
                             f"initializer. Received: shape={request.shape}")

    def generate(self, request):
        self.validate(request)
        # the whole array, whatever the region: every shard of a call succeeds or none does
        check_representable(self.value, request.dtype, "value", "FromArray value")
        return request.write_whole(self.value)

    def get_config(self):
        return {"value": self.value.tolist()}

    def __repr__(self):
        return f"FromArray(<array of shape {self.value.shape}, dtype {self.value.dtype}>)"
