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

import math
import numbers

import numpy as np

from . import _device, _dtypes, _region, backends, stream as _stream
from ._checks import check_uint64
from .backends import Distribution

__all__ = ["philox4x32_10", "uniform", "normal", "truncated_normal"]

# Outputs that are not C-contiguous are produced through a scratch buffer of
# at most this many elements.
_SCRATCH_ELEMENTS = 1 << 20
_MAX_STANDARDIZED = 1e15  # bounds further out than this many std are treated as infinite


def philox4x32_10(counter, key):
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


def _as_words(value, width, name):
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


def uniform(shape=None, low=0.0, high=1.0, *, dtype=None, seed, stream=0, index=None,
            offset=0, out=None, backend="auto", device=None):
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

    Examples
    --------
    >>> x = uniform((2, 3), seed=0)
    >>> x.dtype, x.shape
    (dtype('float32'), (2, 3))
    >>> bool(np.array_equal(uniform((2, 3), seed=0, index=(1,)), x[1]))
    True
    """
    low = _real(low, "low")
    high = _real(high, "high")
    if low > high:
        raise ValueError(f"low must be <= high. Received: low={low}, high={high}")
    target = _Target(shape, dtype, seed, stream, index, offset, out, backend, device)
    dt = target.dtype
    if low == high:
        lo = hi = float(np.asarray(low).astype(dt))
    else:
        lo, hi = _dtypes.ceil(dt, low), _dtypes.below(dt, high)
        if lo > hi:
            raise ValueError(f"no {dt.name} value lies in [low, high). "
                             f"Received: low={low}, high={high}")
    dist = Distribution(_stream.UNIFORM, _dtypes.is_wide(dt), low, high - low, lo, hi)
    return target.fill(dist)


def normal(shape=None, mean=0.0, std=1.0, *, dtype=None, seed, stream=0, index=None,
           offset=0, out=None, backend="auto", device=None):
    """Normal values by Box-Muller: ``mean + std * z``.

    Parameters are those of :func:`uniform`, with ``mean`` (finite) and
    ``std`` (finite, ``>= 0``) in place of the bounds.

    Examples
    --------
    >>> x = normal(1_000_000, seed=1)
    >>> bool(abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01)
    True
    """
    mean = _real(mean, "mean")
    std = _std(std)
    target = _Target(shape, dtype, seed, stream, index, offset, out, backend, device)
    dist = Distribution(_stream.NORMAL, _dtypes.is_wide(target.dtype), mean, std,
                        -math.inf, math.inf)
    return target.fill(dist)


def truncated_normal(shape=None, mean=0.0, std=1.0, a=-2.0, b=2.0, *, dtype=None, seed,
                     stream=0, index=None, offset=0, out=None, backend="auto", device=None):
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
    mean = _real(mean, "mean")
    std = _std(std)
    a = _real(a, "a", finite=False)
    b = _real(b, "b", finite=False)
    if not a < b:
        raise ValueError(f"a must be < b. Received: a={a}, b={b}")
    target = _Target(shape, dtype, seed, stream, index, offset, out, backend, device)
    dt = target.dtype
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
    dist = Distribution(_stream.TRUNCATED_NORMAL, _dtypes.is_wide(dt), mean, std, lo, hi,
                        proposal, alpha, beta, rate, m2, sign)
    return target.fill(dist)


# -- validation ----------------------------------------------------------------


def _real(value, name, finite=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number. Received: {name}={value!r}")
    value = float(value)
    if math.isnan(value) or finite and math.isinf(value):
        raise ValueError(f"{name} must be {'finite' if finite else 'a number'}. "
                         f"Received: {name}={value}")
    return value


def _std(std):
    std = _real(std, "std")
    if std < 0:
        raise ValueError(f"std must be >= 0. Received: std={std}")
    return std


class _Target:
    """Where the values go: validated shape, region, dtype, output array and backend."""

    def __init__(self, shape, dtype, seed, stream, index, offset, out, backend, device=None):
        self.key = _stream.derive_key(check_uint64(seed, "seed"), check_uint64(stream, "stream"))
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string. Received: backend={backend!r}")
        self.gpu = _device.route(out, device, backend)  # None: the CPU path
        if out is not None and self.gpu is None:
            if not isinstance(out, np.ndarray):
                raise TypeError("out must be a numpy.ndarray or a GPU array (use the framework "
                                "adapters for other arrays). "
                                f"Received: out of type {type(out).__name__}")
            if not out.flags.writeable:
                raise ValueError("out is read-only. Received: out with writeable=False")
        if shape is None:
            if out is None or index is not None:
                raise TypeError("shape is required unless out is given without index. "
                                "Received: shape=None")
            shape = tuple(out.shape)
        self.shape = _region.normalize_shape(shape)
        self.region = _region.region(self.shape, index, offset)
        out_dtype = None if out is None else (self.gpu.dtype if self.gpu is not None
                                              else out.dtype)
        if dtype is None:
            dtype = out_dtype if out is not None else np.float32
        self.dtype = _dtypes.resolve(dtype)
        if out is not None:
            if out_dtype != self.dtype:
                raise TypeError(f"out has dtype {out_dtype}, expected {self.dtype}. "
                                f"Received: out with dtype {out_dtype}, dtype={dtype!r}")
            if tuple(out.shape) != self.region.shape:
                raise ValueError(f"out has shape {tuple(out.shape)}, expected "
                                 f"{self.region.shape}. Received: out with shape "
                                 f"{tuple(out.shape)}")
        self.backend = self.gpu.backend if self.gpu is not None else backends.get(backend)
        self.out = out

    def fill(self, dist):
        with np.errstate(over="ignore"):  # reported just below, as a ValueError
            params = dist.params()
        if not np.all(np.isfinite(params[:2])):
            raise ValueError(f"parameters overflow {self.dtype.name}'s working precision. "
                             f"Received: loc={dist.loc}, scale={dist.scale}")
        if self.gpu is not None:
            return self.gpu.fill(dist, self.key, self.region, self.dtype)
        out = self.out if self.out is not None else np.empty(self.region.shape, self.dtype)
        if out.size == 0:
            return out
        if out.flags.c_contiguous:
            flat = out.reshape(-1)
            for position, starts, length in self.region.batches(out.size):
                self.backend.fill(dist, self.key, flat[position:position + starts.size * length],
                                  starts, length)
            return out
        # Strided output: through a bounded scratch buffer, in whole slabs along axis 0
        # where a slab fits (a batch of a multiple of `row` elements covers whole slabs,
        # see Region.batches), else element by element.
        row = out.size // out.shape[0]
        step = _SCRATCH_ELEMENTS // row * row if row <= _SCRATCH_ELEMENTS else _SCRATCH_ELEMENTS
        scratch = np.empty(min(out.size, step), dtype=self.dtype)
        copy = getattr(self.backend, "copy_2d", None) if out.ndim == 2 else None
        for position, starts, length in self.region.batches(step):
            n = starts.size * length
            self.backend.fill(dist, self.key, scratch[:n], starts, length)
            if row <= _SCRATCH_ELEMENTS:
                first = position // row
                slab = scratch[:n].reshape((n // row,) + out.shape[1:])
                if copy is not None:
                    copy(out[first:first + n // row], slab)
                else:
                    out[first:first + n // row] = slab
            else:
                out.flat[position:position + n] = scratch[:n]
        return out
