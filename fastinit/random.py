"""Counter-based random tensors: the low-level API of fastinit.

Every function here draws from the fastinit stream (``fastinit.stream``,
described for users in ``docs/stream.md``): element ``i`` of the global
tensor (flat C-order index) is a pure function of ``(seed, stream, i)``.

Parallel features
-----------------
Because nothing but the element index enters the value, any part of a tensor
can be produced anywhere on its own: ``index=`` (a tuple of slices and ints
into the global ``shape``) returns exactly that region of the whole tensor,
and ``offset=`` places the whole tensor at a flat position of the stream.
Results are the same for any backend, number of threads, chunking and memory
layout of ``out``. Different ``stream`` numbers under one seed are
independent sequences, as are different seeds.

Compatibility guarantee
-----------------------
For a given ``fastinit.stream.STREAM_VERSION`` the values are bit-identical
across backends, platforms and releases. A change of the values bumps the
stream version and is announced in the changelog.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

import numpy as np

from . import _dtypes, stream as _stream
from ._checks import check_real
from ._target import Target
from .backends import Distribution

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._typing import Array, Backend, DeviceLike, Index, Output, OutputT, ShapeLike

__all__ = ["philox4x32_10", "uniform", "normal", "truncated_normal",
           "uniform_distribution", "normal_distribution", "truncated_normal_distribution"]

_MAX_STANDARDIZED = 1e15  # bounds further out than this many std are treated as infinite


def philox4x32_10(counter: npt.ArrayLike, key: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """Philox4x32-10 (Random123) on arrays of counters and keys.

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
    key : array_like of uint32, shape (..., 2)
        Broadcast against ``counter``'s leading dimensions.

    Returns
    -------
    numpy.ndarray of uint32, shape (..., 4)

    Examples
    --------
    The first Random123 known-answer vector:

    >>> out = philox4x32_10([0, 0, 0, 0], [0, 0])
    >>> [f"{w:08x}" for w in out]
    ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']
    """
    counter = _as_words(counter, 4, "counter")
    key = _as_words(key, 2, "key")
    lead = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    counter = np.broadcast_to(counter, lead + (4,))
    key = np.broadcast_to(key, lead + (2,))
    rounds = np.arange(_stream.PHILOX_ROUNDS, dtype=np.uint64).reshape((-1,) + (1,) * len(lead))
    k0 = ((key[..., 0].astype(np.uint64) + rounds * np.uint64(_stream.PHILOX_W0))
          & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    k1 = ((key[..., 1].astype(np.uint64) + rounds * np.uint64(_stream.PHILOX_W1))
          & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    keys = np.empty((2 * _stream.PHILOX_ROUNDS,) + lead, dtype=np.uint32)
    keys[0::2], keys[1::2] = k0, k1
    words = _stream.philox_block(counter[..., 0], counter[..., 1], counter[..., 2],
                                 counter[..., 3], keys)
    return np.stack([np.asarray(w, dtype=np.uint32) for w in words], axis=-1)


def _as_words(value: npt.ArrayLike, width: int, name: str) -> npt.NDArray[np.uint32]:
    array = np.asarray(value)
    if array.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold unsigned 32-bit integers. "
                        f"Received: {name} with dtype {array.dtype}")
    if array.ndim == 0 or array.shape[-1] != width:
        raise ValueError(f"{name} must have shape (..., {width}). "
                         f"Received: {name} with shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 0xFFFFFFFF):
        raise ValueError(f"{name} words must lie in [0, 2**32). Received: {name}={value!r}")
    return array.astype(np.uint32)


@overload
def uniform(shape: ShapeLike | None = None, low: float = 0.0, high: float = 1.0, *,
            dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
            stream: SupportsIndex = 0, index: Index | None = None,
            offset: SupportsIndex = 0, out: None = None,
            backend: Backend = "auto", device: DeviceLike = None) -> Array: ...


@overload
def uniform(shape: ShapeLike | None = None, low: float = 0.0, high: float = 1.0, *,
            dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
            stream: SupportsIndex = 0, index: Index | None = None,
            offset: SupportsIndex = 0, out: OutputT,
            backend: Backend = "auto", device: DeviceLike = None) -> OutputT: ...


def uniform(shape: ShapeLike | None = None, low: float = 0.0, high: float = 1.0, *,
            dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
            stream: SupportsIndex = 0, index: Index | None = None,
            offset: SupportsIndex = 0, out: Output | None = None,
            backend: Backend = "auto", device: DeviceLike = None) -> Array | Output:
    """Uniform values on ``[low, high)``.

    Parameters
    ----------
    shape : int or tuple of int, optional
        Shape of the global tensor. May be omitted when ``out`` is given (and
        ``index`` is not): then it is ``out.shape``.
    low, high : float
        Bounds, ``low <= high``; ``low == high`` gives that constant.
    dtype : {"float32", "float16", "bfloat16", "float64"}, optional
        Output dtype; defaults to ``out.dtype``, else float32. Narrow types are
        computed in float32 and rounded once; float64 uses 53-bit uniforms.
    seed : int
        In ``[0, 2**64)``.
    stream : int, default 0
        In ``[0, 2**64)``; independent sequences under one seed.
    index : tuple of slice or int, optional
        Region of the global tensor to produce; the result equals that region
        of the whole tensor bit for bit.
    offset : int, default 0
        Flat stream position of the global tensor's first element.
    out : numpy.ndarray or GPU array, optional
        Filled in place (any memory layout) and returned. A CuPy array or any
        CUDA buffer exporting DLPack or ``__cuda_array_interface__`` (a torch
        CUDA tensor) is filled on the GPU, without a copy.
    backend : {"auto", "numba", "numpy", "cupy"}
        "auto" uses Numba when it is installed for NumPy outputs, and the
        CuPy backend for GPU outputs.
    device : {None, "cpu", "cuda", "cuda:N"}, optional
        "cuda" returns a new CuPy array on that device (needs CuPy and a GPU;
        a clear error says which is missing).

    Returns
    -------
    numpy.ndarray
        A new array, or ``out`` itself when given (typed as given: a type checker sees
        ``out``'s type); a CuPy array for ``device="cuda"``.

    Examples
    --------
    >>> x = uniform((2, 3), seed=0)
    >>> x.dtype, x.shape
    (dtype('float32'), (2, 3))
    >>> bool(np.array_equal(uniform((2, 3), seed=0, index=(1,)), x[1]))
    True
    """
    _check_bounds(low, high)
    target = Target(shape, dtype, out=out, index=index, offset=offset, backend=backend,
                    device=device)
    return target.draw(uniform_distribution(low, high, target.dtype), seed, stream)


@overload
def normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0, *,
           dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
           stream: SupportsIndex = 0, index: Index | None = None,
           offset: SupportsIndex = 0, out: None = None,
           backend: Backend = "auto", device: DeviceLike = None) -> Array: ...


@overload
def normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0, *,
           dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
           stream: SupportsIndex = 0, index: Index | None = None,
           offset: SupportsIndex = 0, out: OutputT,
           backend: Backend = "auto", device: DeviceLike = None) -> OutputT: ...


def normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0, *,
           dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
           stream: SupportsIndex = 0, index: Index | None = None,
           offset: SupportsIndex = 0, out: Output | None = None,
           backend: Backend = "auto", device: DeviceLike = None) -> Array | Output:
    """Normal values by Box-Muller: ``mean + std * z``.

    Parameters are those of :func:`uniform`, with ``mean`` (finite) and
    ``std`` (finite, ``>= 0``) in place of the bounds. ``|mean| + 6.66 std``
    (``9.35 std`` for float64: the largest ``|z|`` the stream draws) must lie
    within the dtype's finite range, so that no value is infinite.

    Examples
    --------
    >>> x = normal(1_000_000, seed=1)
    >>> bool(abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01)
    True
    """
    _check_real(mean, "mean")
    _check_std(std)
    target = Target(shape, dtype, out=out, index=index, offset=offset, backend=backend,
                    device=device)
    return target.draw(normal_distribution(mean, std, target.dtype), seed, stream)


@overload
def truncated_normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0,
                     a: float = -2.0, b: float = 2.0, *,
                     dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
                     stream: SupportsIndex = 0, index: Index | None = None,
                     offset: SupportsIndex = 0, out: None = None,
                     backend: Backend = "auto", device: DeviceLike = None) -> Array: ...


@overload
def truncated_normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0,
                     a: float = -2.0, b: float = 2.0, *,
                     dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
                     stream: SupportsIndex = 0, index: Index | None = None,
                     offset: SupportsIndex = 0, out: OutputT,
                     backend: Backend = "auto", device: DeviceLike = None) -> OutputT: ...


def truncated_normal(shape: ShapeLike | None = None, mean: float = 0.0, std: float = 1.0,
                     a: float = -2.0, b: float = 2.0, *,
                     dtype: npt.DTypeLike | None = None, seed: SupportsIndex,
                     stream: SupportsIndex = 0, index: Index | None = None,
                     offset: SupportsIndex = 0, out: Output | None = None,
                     backend: Backend = "auto", device: DeviceLike = None) -> Array | Output:
    """Normal values conditioned on ``[a, b]`` (absolute bounds, as ``torch.nn.init.trunc_normal_``).

    Exact for any bounds: each element is resampled until it falls inside,
    with a proposal (normal, exponential tail or uniform) chosen from the
    bounds alone; see ``docs/stream.md``. No value lies outside ``[a, b]``.

    Parameters are those of :func:`normal`, with ``a < b`` (may be infinite).

    Examples
    --------
    >>> x = truncated_normal(100_000, a=8.0, b=9.0, seed=0)
    >>> bool(x.min() >= 8.0 and x.max() <= 9.0)
    True
    """
    _check_truncated(mean, std, a, b)
    target = Target(shape, dtype, out=out, index=index, offset=offset, backend=backend,
                    device=device)
    return target.draw(truncated_normal_distribution(mean, std, a, b, target.dtype), seed,
                       stream)


# -- distributions: parameters checked, in the stream's terms (fastinit.stream) ---------


def uniform_distribution(low: float, high: float, dtype: npt.DTypeLike) -> Distribution:
    """The :class:`~fastinit.backends.Distribution` of :func:`uniform` for output ``dtype``."""
    low, high = _check_bounds(low, high)
    dt = np.dtype(dtype)
    limit = _dtypes.finite_limit(dt)
    if low < -limit or high > limit:
        # Values beyond the range would all be clamped to +-max: refused, not distorted.
        raise ValueError(f"[low, high) must lie within {dt.name}'s finite range "
                         f"(|x| <= {limit:g}). Received: low={low}, high={high}")
    working = np.float64 if _dtypes.is_wide(dt) else np.float32
    with np.errstate(over="ignore"):
        width = working(high) - working(low)
    if not np.isfinite(width):
        raise ValueError(f"high - low = {high - low:g} overflows {np.dtype(working).name} "
                         f"(values are low + (high - low) * u). Received: low={low}, "
                         f"high={high}")
    if low == high:
        lo = hi = float(np.asarray(low).astype(dt))
    else:
        lo, hi = _dtypes.ceil(dt, low), _dtypes.below(dt, high)
        if lo > hi:
            raise ValueError(f"no {dt.name} value lies in [low, high). "
                             f"Received: low={low}, high={high}")
    return _distribution(_stream.UNIFORM, dt, low, high - low, lo, hi)


def normal_distribution(mean: float, std: float, dtype: npt.DTypeLike) -> Distribution:
    """The :class:`~fastinit.backends.Distribution` of :func:`normal` for output ``dtype``."""
    mean, std = _check_real(mean, "mean"), _check_std(std)
    dt = np.dtype(dtype)
    z_max = _reach(_dtypes.is_wide(dt))[0]
    _check_finite_values(dt, mean - std * z_max, mean + std * z_max, mean, std)
    return _distribution(_stream.NORMAL, dt, mean, std, -math.inf, math.inf)


def truncated_normal_distribution(mean: float, std: float, a: float, b: float,
                                  dtype: npt.DTypeLike) -> Distribution:
    """The :class:`~fastinit.backends.Distribution` of :func:`truncated_normal` for ``dtype``."""
    mean, std, a, b = _check_truncated(mean, std, a, b)
    dt = np.dtype(dtype)
    lo, hi = _dtypes.ceil(dt, a), _dtypes.floor(dt, b)
    if lo > hi or math.isinf(lo) and lo > 0 or math.isinf(hi) and hi < 0:
        raise ValueError(f"no finite {dt.name} value lies in [a, b]. Received: a={a}, b={b}")
    if std == 0.0:
        if not a <= mean <= b:
            raise ValueError(f"std=0 puts every value at the mean, which must lie in "
                             f"[a, b]. Received: mean={mean}, a={a}, b={b}")
        alpha, beta = -math.inf, math.inf
    else:
        alpha, beta = (a - mean) / std, (b - mean) / std
    alpha = -math.inf if alpha < -_MAX_STANDARDIZED else alpha
    beta = math.inf if beta > _MAX_STANDARDIZED else beta
    if alpha > _MAX_STANDARDIZED or beta < -_MAX_STANDARDIZED:
        raise ValueError(f"[a, b] lies more than {_MAX_STANDARDIZED:g} std from the mean. "
                         f"Received: mean={mean}, std={std}, a={a}, b={b}")
    proposal, alpha, beta, rate, m2, sign = _stream.truncated_normal_plan(alpha, beta)
    if math.isinf(lo) or math.isinf(hi):  # an open side: the candidates' reach is the bound
        z_lo, z_hi = _candidate_range(_dtypes.is_wide(dt), proposal, alpha, beta, rate)
        if sign < 0:
            z_lo, z_hi = -z_hi, -z_lo
        _check_finite_values(dt, mean + std * z_lo if math.isinf(lo) else lo,
                             mean + std * z_hi if math.isinf(hi) else hi, mean, std)
    return _distribution(_stream.TRUNCATED_NORMAL, dt, mean, std, lo, hi, proposal, alpha,
                         beta, rate, m2, sign)


@functools.lru_cache(maxsize=None)
def _reach(wide: bool) -> tuple[float, float]:
    """``(largest |z| of the normal sampler, largest -ln u)`` of the stream in its working
    precision: both come from the smallest uniform it draws (every word 0)."""
    zero = np.uint32(0)
    log_u = float(_stream.log_of_uniform_f64(zero, zero) if wide
                  else _stream.log_of_uniform_f32(zero))
    return math.sqrt(-2.0 * log_u), -log_u


def _candidate_range(wide: bool, proposal: int, alpha: float, beta: float,
                     rate: float) -> tuple[float, float]:
    """The standardized values a truncated-normal candidate can take (before the clamp)."""
    z_max, e_max = _reach(wide)
    if proposal == _stream.PROPOSAL_NORMAL:
        return -z_max, z_max
    if proposal == _stream.PROPOSAL_UNIFORM:
        return alpha, beta
    return alpha, alpha + e_max / rate  # exponential: alpha + E / rate


# Rounding of loc + scale * z in the working precision, with room to spare.
_REACH_MARGIN = 1.0 + 2.0 ** -10


def _check_finite_values(dt: np.dtype[Any], low: float, high: float, mean: float,
                         std: float) -> None:
    """ValueError when values may reach ``low`` or ``high`` beyond ``dt``'s finite range
    (they would be +-inf), as :func:`uniform` refuses such bounds."""
    limit = _dtypes.finite_limit(dt)
    if max(abs(low), abs(high)) * _REACH_MARGIN >= limit:
        raise ValueError(f"values would reach [{low:g}, {high:g}] (mean +- std * the largest "
                         f"|z| the stream draws), beyond {dt.name}'s finite range (|x| < "
                         f"{limit:g}): some would be +-inf. Received: mean={mean}, std={std}")


def _distribution(kind: int, dtype: np.dtype[Any], loc: float, scale: float, lo: float,
                  hi: float, proposal: int = 0, *plan: float) -> Distribution:
    """``plan``: the truncated normal's ``alpha, beta, rate, m2, sign``."""
    dist = Distribution(kind, _dtypes.is_wide(dtype), loc, scale, lo, hi, proposal, *plan)
    with np.errstate(over="ignore"):  # reported just below, as a ValueError
        params = dist.params()
    if not np.all(np.isfinite(params[:2])):
        raise ValueError(f"parameters overflow {dtype.name}'s working precision. "
                         f"Received: loc={loc}, scale={scale}")
    return dist


# -- validation ----------------------------------------------------------------


def _check_real(value: object, name: str, finite: bool = True) -> float:
    return check_real(value, name, error=TypeError, finite=finite)


def _check_std(std: object) -> float:
    return check_real(std, "std", error=TypeError, minimum=0.0)


def _check_bounds(low: object, high: object) -> tuple[float, float]:
    low, high = _check_real(low, "low"), _check_real(high, "high")
    if low > high:
        raise ValueError(f"low must be <= high. Received: low={low}, high={high}")
    return low, high


def _check_truncated(mean: object, std: object, a: object,
                     b: object) -> tuple[float, float, float, float]:
    mean, std = _check_real(mean, "mean"), _check_std(std)
    a, b = _check_real(a, "a", finite=False), _check_real(b, "b", finite=False)
    if not a < b:
        raise ValueError(f"a must be < b. Received: a={a}, b={b}")
    return mean, std, a, b
