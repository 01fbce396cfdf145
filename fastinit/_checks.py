"""Validators shared by every entry point: a bad value is named in the error.

Messages follow Keras' form, ``"... Received: name=value"``. Each rule is
written once here; callers choose the exception class of a wrong *type*
(Keras raises ValueError for bad configuration values, NumPy-style APIs a
TypeError).
"""

from __future__ import annotations

import math
import numbers
import operator
import reprlib
from typing import TYPE_CHECKING, Any, SupportsIndex, cast

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt
    from numpy.typing import ArrayLike, DTypeLike

__all__ = ["shown", "check_integer", "check_uint64", "check_real", "check_choice", "check_shape",
           "check_output_array", "check_representable", "MAX_ELEMENTS"]

MAX_ELEMENTS = 1 << 62  # flat indices (offset included) stay below this


def shown(value: object) -> str:
    """``repr(value)`` for an error message, bounded in depth and length (a hostile
    or huge value must not make the message itself fail or flood)."""
    return reprlib.repr(value)


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_flag(value: object, name: str, *, allow_none: bool = False) -> bool | None:
    """A yes/no option: a bool (NumPy's too), or None where ``allow_none`` ("the
    default"). A string such as ``"no"`` is truthy: refused, not guessed."""
    if _is_bool(value) or (allow_none and value is None):
        return None if value is None else bool(value)
    expected = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{name} must be {expected}. Received: {name}={shown(value)}")


def check_integer(value: object, name: str, error: type[Exception] = TypeError) -> int:
    """``value`` as a Python int (``operator.index``); bools are refused."""
    if not _is_bool(value):
        try:
            return operator.index(cast(SupportsIndex, value))  # any value: a TypeError if not
        except TypeError:
            pass
    raise error(f"{name} must be an integer. Received: {name}={shown(value)}")


def check_uint64(value: object, name: str, error: type[Exception] = TypeError) -> int:
    """``value`` as an int in ``[0, 2**64)`` (seeds, streams); ValueError out of range."""
    value = check_integer(value, name, error)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name} must lie in [0, 2**64). Received: {name}={value}")
    return value


def check_real(value: object, name: str, *, error: type[Exception] = ValueError,
               finite: bool = True, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a float: a real number (not a bool), not NaN, finite unless
    ``finite=False``, and ``>= minimum`` (``> minimum`` when ``strict``).

    A number beyond the float range (``10**400``) is infinite: refused when
    ``finite``, else +-inf.
    """
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a real number. Received: {name}={shown(value)}")
    try:
        value = float(value)
    except OverflowError:
        if finite:
            raise ValueError(f"{name} must be finite (it is beyond the float range). "
                             f"Received: {name}={shown(value)}") from None
        value = -math.inf if value < 0 else math.inf
    if math.isnan(value) or finite and math.isinf(value):
        raise ValueError(f"{name} must be {'finite' if finite else 'a number'}. "
                         f"Received: {name}={value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}. "
                         f"Received: {name}={value}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (strings), else ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}. "
                         f"Received: {name}={shown(value)}")
    return value


def check_shape(shape: object, name: str = "shape") -> tuple[int, ...]:
    """A shape as a tuple of Python ints (an int is a 1-D shape)."""
    if _is_bool(shape) or isinstance(shape, (str, bytes)):
        raise TypeError(f"{name} must be a tuple of integers. Received: {name}={shape!r}")
    if not isinstance(shape, (tuple, list)):
        try:
            shape = (operator.index(cast(SupportsIndex, shape)),)
        except TypeError:
            raise TypeError(f"{name} must be a tuple of integers. "
                            f"Received: {name}={shape!r}") from None
    dims = []
    for d in shape:
        if _is_bool(d):
            raise TypeError(f"{name} must contain integers. Received: {name}={shape!r}")
        try:
            d = operator.index(d)
        except TypeError:
            raise TypeError(f"{name} must contain integers. Received: {name}={shape!r}") from None
        if d < 0:
            raise ValueError(f"{name} must not contain negative dimensions. "
                             f"Received: {name}={tuple(shape)!r}")
        dims.append(d)
    if math.prod(dims) >= MAX_ELEMENTS or any(d >= MAX_ELEMENTS for d in dims):
        raise ValueError(f"{name} has too many elements ({math.prod(dims)}, the limit is "
                         f"2**62). Received: {name}={tuple(dims)!r}")
    return tuple(dims)


def check_output_array(out: object, name: str = "out") -> npt.NDArray[Any]:
    """A NumPy ``out`` that fastinit may write: writable, native byte order, and with
    no two elements at the same address (an overlapping view would alias values)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or a GPU array (fill CPU framework "
                        "tensors with fastinit.torch or fastinit.jax). "
                        f"Received: {name} of type {type(out).__name__}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only. Received: {name} with writeable=False")
    if not out.dtype.isnative:
        raise TypeError(f"{name} has a non-native byte order; fastinit writes native-endian "
                        f"arrays. Received: {name} with dtype {out.dtype.str}")
    if has_overlap(out.shape, out.strides, out.itemsize):
        raise ValueError(f"{name} may have overlapping elements (a broadcast, stride-0 or "
                         "as_strided view): fastinit writes arrays whose elements provably "
                         "each have their own memory. "
                         f"Received: {name} with shape {out.shape} and strides {out.strides}")
    return out


def has_overlap(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> bool:
    """Whether a strided layout maps two different indices to overlapping bytes.

    Sorted by stride, each axis must step past everything the faster axes span:
    sufficient for no overlap, and exact for every layout slicing, transposing
    and reshaping produce (only ``as_strided`` can interleave axes without overlap).
    """
    if math.prod(shape) <= 1:
        return False
    span = itemsize
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, strides) if n > 1),
                       key=lambda a: a[1]):
        if s < span:
            return True
        span = s * (n - 1) + span
    return False


def check_representable(values: ArrayLike, dtype: DTypeLike, name: str, owner: str) -> ArrayLike:
    """``values`` (a real scalar or an array of them) if every one is representable in
    ``dtype``, else a ValueError naming the first that is not, before anything is written.

    Representable: an integer within range for integer dtypes; 0 or 1 for bool;
    for floating and complex dtypes any value that does not round to infinity
    (infinities and NaN themselves are representable). ``owner`` starts the
    message ("Constant value"), ``name`` is the argument's name.
    """
    dtype = np.dtype(dtype)
    if isinstance(values, numbers.Integral) and not _is_bool(values):
        array = np.asarray(0)  # a Python int, maybe beyond every dtype: compared exactly
        bad = None if _int_fits(int(values), dtype) else values
    else:
        array = np.asarray(values)
        bad = _first_unrepresentable(array, dtype)
    if bad is not None:
        received = (f"{name}={shown(values)}" if array.ndim == 0 else
                    f"{name} with dtype {array.dtype} and shape {array.shape}")
        raise ValueError(f"{owner} {shown(bad)} is not representable in {dtype.name}. "
                         f"Received: {received}, dtype={dtype.name}")
    return values


def _int_fits(value: int, dtype: np.dtype[Any]) -> bool:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min <= value <= info.max
    if dtype.kind == "b":
        return value in (0, 1)
    try:
        as_float = float(value)
    except OverflowError:
        return False
    return _first_unrepresentable(np.asarray(as_float), dtype) is None


def _first_unrepresentable(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> int | float | None:
    """The first element of ``array`` that ``dtype`` cannot hold (a Python number), or None."""
    flat = array.reshape(-1)
    if flat.size == 0:
        return None
    if flat.dtype.kind not in "biu":
        flat = flat.astype(np.float64)  # bfloat16 and the other floats, exactly
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if flat.dtype.kind == "f":
            whole = np.isfinite(flat) & (flat == np.floor(flat))
            if not whole.all():
                return flat[np.argmin(whole)].item()
        # Python numbers compare exactly (a float64 2**63 is not <= int64's maximum)
        low, high = flat.min().item(), flat.max().item()
        if low < info.min:
            return low
        return high if high > info.max else None
    if dtype.kind == "b":
        fits = (flat == 0) | (flat == 1)
        return None if fits.all() else flat[np.argmin(fits)].item()
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = flat.astype(dtype)
    overflow = np.isinf(rounded) & ~np.isinf(flat)
    return flat[np.argmax(overflow)].item() if overflow.any() else None
