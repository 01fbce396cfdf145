"""Output dtypes: which are supported, and which of their values bound a range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._typing import DTypeKind

SUPPORTED = ("float16", "bfloat16", "float32", "float64")


def bfloat16() -> np.dtype[Any]:
    """The bfloat16 dtype from ml_dtypes (imported on first use)."""
    try:
        import ml_dtypes
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TypeError("dtype bfloat16 needs the ml_dtypes package "
                        "(pip install ml_dtypes)") from exc
    return np.dtype(ml_dtypes.bfloat16)


KINDS = ("float", "inexact", "any")
_COMPLEX = ("complex64", "complex128")


def resolve(dtype: npt.DTypeLike, kind: DTypeKind = "float") -> np.dtype[Any]:
    """``dtype`` as an ``np.dtype`` of ``kind``; TypeError naming anything else.

    ``kind`` is "float" (the four dtypes the stream writes), "inexact" (those
    and complex64 / complex128) or "any" (any numeric or bool dtype, bfloat16
    included). Non-native byte orders are refused: fastinit computes in
    native order, and silently writing another would give wrong values.
    """
    if isinstance(dtype, str) and dtype == "bfloat16":
        return bfloat16()
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is not None and not resolved.isnative:
        raise TypeError(f"dtype must be in native byte order ({resolved.newbyteorder('=').str!r} "
                        f"here). Received: dtype={dtype!r}")
    if resolved is not None:
        name = resolved.name
        if name in SUPPORTED or kind == "inexact" and name in _COMPLEX or (
                kind == "any" and resolved.kind in "biufc"):
            return resolved
    expected = {"float": f"one of {', '.join(SUPPORTED)}",
                "inexact": f"one of {', '.join(SUPPORTED + _COMPLEX)}",
                "any": "a numeric or bool dtype"}[kind]
    raise TypeError(f"Unsupported dtype: expected {expected}. Received: dtype={dtype!r}")


def finite_limit(dtype: npt.DTypeLike) -> float:
    """The magnitude from which values of a float dtype round to infinity: the largest
    finite value plus half its spacing (float64: the largest value itself)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return float(np.finfo(dtype).max)
    top = float.fromhex("0x1.fep127") if dtype.name == "bfloat16" else float(np.finfo(dtype).max)
    return top + (top - below(dtype, top)) / 2


def is_wide(dtype: npt.DTypeLike) -> bool:
    """True when values are computed in float64 (the f64 family of the stream)."""
    return np.dtype(dtype) == np.float64


def _neighbour(dtype: np.dtype[Any], value: float, upward: bool) -> float:
    """The next representable ``dtype`` value after ``value`` (itself a ``dtype`` value)."""
    v = np.asarray(value, dtype=dtype)
    if dtype.itemsize == 2 and dtype.name == "bfloat16":
        if np.isinf(v) and (v > 0) == upward:
            return float(v)
        if v == 0:
            bits = np.uint16(1) if upward else np.uint16(0x8001)
        else:
            step = 1 if (v > 0) == upward else -1
            bits = np.uint16(int(v.view(np.uint16)) + step)
        return float(np.asarray(bits).view(dtype))
    return float(np.nextafter(v, np.asarray(np.inf if upward else -np.inf, dtype=dtype)))


def _nearest(dtype: npt.DTypeLike, x: float) -> float:
    """``x`` rounded to ``dtype`` (inf beyond its range, without an overflow warning)."""
    with np.errstate(over="ignore"):
        return float(np.asarray(x, dtype=np.float64).astype(dtype))


def ceil(dtype: np.dtype[Any], x: float) -> float:
    """Smallest ``dtype`` value >= ``x``, as a Python float (may be +-inf)."""
    v = _nearest(dtype, x)
    return _neighbour(dtype, v, True) if v < x else v


def floor(dtype: np.dtype[Any], x: float) -> float:
    """Largest ``dtype`` value <= ``x``, as a Python float (may be +-inf)."""
    v = _nearest(dtype, x)
    return _neighbour(dtype, v, False) if v > x else v


def below(dtype: np.dtype[Any], x: float) -> float:
    """Largest ``dtype`` value < ``x``."""
    v = floor(dtype, x)
    return _neighbour(dtype, v, False) if v == x else v
