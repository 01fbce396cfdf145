"""Numba CPU kernels for the stream: one small serial kernel per specialisation.

A kernel is compiled for one ``(distribution, precision, output kind)`` and,
for the truncated normal, one proposal: :func:`fill_kernel` makes it on first
use (and finds it in the disk cache when it was compiled before). Every
kernel is serial and releases the GIL; :mod:`fastinit.backends.numba` runs
ranges of tasks on fastinit's threads. A task is ``TASK`` consecutive
elements of one run: what it computes depends only on the flat indices it
covers, never on the split.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numba import types

from ... import stream
from . import _math
from ._jit import jitable, kernel
from ._spec import (COPY_TILE, OUT_BFLOAT16, OUT_FLOAT16, OUT_NAMES, OUT_NATIVE, TASK,
                    fill_job, kernel_name)

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from ...stream import F32, F64, U32
    from ._jit import Kernel
    from ._math import Keys
    from ._spec import FillSpec

    Float = np.floating[Any]   # the working precision: float32 or float64
    #: The output stage ``(loc, scale, lo, hi, sign)`` and the truncated normal's
    #: ``(proposal, alpha, beta, rate, m2)``, in the working precision.
    Stage = tuple[Float, Float, Float, Float, Float]
    Truncation = tuple[int, Float, Float, Float, Float]
    #: The values of one block's lanes, and a candidate with its acceptance.
    Values = Callable[[int, Keys, Truncation], tuple[Any, ...]]
    Candidate = tuple[Any, Any]
    Array1 = npt.NDArray[Any]

_Fn = TypeVar("_Fn", bound="Callable[..., Any]")

_U32_1 = np.uint32(1)
_NAN32 = np.float32(np.nan)
_NAN64 = np.float64(np.nan)


def _named(fn: _Fn, name: str) -> _Fn:
    """``fn`` (a closure) under a name of its own, before Numba compiles it.

    Numba names a compiled function after its qualified name, its argument
    types and a per-process counter: two closures of one factory, compiled in
    two processes and cached, can get one name, and a process that loads both
    kernels links both to one of the functions (a kernel then computes another
    one's values). Each closure therefore gets its specialisation's name.
    """
    fn.__name__ = fn.__qualname__ = name
    return fn


# -- the values of one block --------------------------------------------------------
#
# A "values" function gives the standardized values of every lane of block b
# in the first attempt (rounds 0 and 1): a tuple of LANES_F32 or LANES_F64
# floats; a truncated-normal candidate that is rejected is NaN.


@jitable
def _uniform_f32(b: int, ks: Keys, tn: Truncation) -> tuple[F32, F32, F32, F32]:
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    return stream.uniform_lanes_f32(w0, w1, w2, w3)


@jitable
def _normal_f32(b: int, ks: Keys, tn: Truncation) -> tuple[F32, F32, F32, F32]:
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    return stream.normal_lanes_f32(w0, w1, w2, w3)


@jitable
def _uniform_f64(b: int, ks: Keys, tn: Truncation) -> tuple[F64, F64]:
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    return stream.uniform_lanes_f64(w0, w1, w2, w3)


@jitable
def _normal_f64(b: int, ks: Keys, tn: Truncation) -> tuple[F64, F64]:
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    return stream.normal_lanes_f64(w0, w1, w2, w3)


@jitable
def _trunc_normal_f32(b: int, ks: Keys, tn: Truncation) -> tuple[F32, F32, F32, F32]:
    """Normal proposal: the normal values, NaN outside ``[alpha, beta]``."""
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    z0, z1, z2, z3 = stream.normal_lanes_f32(w0, w1, w2, w3)
    return (z0 if (z0 >= alpha) & (z0 <= beta) else _NAN32,
            z1 if (z1 >= alpha) & (z1 <= beta) else _NAN32,
            z2 if (z2 >= alpha) & (z2 <= beta) else _NAN32,
            z3 if (z3 >= alpha) & (z3 <= beta) else _NAN32)


@jitable
def _trunc_normal_f64(b: int, ks: Keys, tn: Truncation) -> tuple[F64, F64]:
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    z0, z1 = stream.normal_lanes_f64(w0, w1, w2, w3)
    return (z0 if (z0 >= alpha) & (z0 <= beta) else _NAN64,
            z1 if (z1 >= alpha) & (z1 <= beta) else _NAN64)


@jitable
def _tail_lane_f32(w: U32, v: U32, tn: Truncation) -> F32:
    """Candidate of one lane (round-0 word ``w``, round-1 word ``v``); NaN if rejected."""
    proposal, alpha, beta, rate, m2 = tn
    zero = np.float32(0.0)
    z, ok = stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f32(w), stream.log_of_uniform_f32(w),
        stream.log_of_uniform_f32(v), alpha, beta, rate, m2, zero, np.float32(2.0))
    return z if ok else _NAN32


@jitable
def _trunc_tail_f32(b: int, ks: Keys, tn: Truncation) -> tuple[F32, F32, F32, F32]:
    """Uniform or exponential proposal: candidates, NaN when rejected."""
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    v0, v1, v2, v3 = _math.philox_words(b, 1, ks)
    return (_tail_lane_f32(w0, v0, tn), _tail_lane_f32(w1, v1, tn),
            _tail_lane_f32(w2, v2, tn), _tail_lane_f32(w3, v3, tn))


@jitable
def _tail_lane_f64(hi: U32, lo: U32, hi2: U32, lo2: U32, tn: Truncation) -> F64:
    proposal, alpha, beta, rate, m2 = tn
    zero = np.float64(0.0)
    z, ok = stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
        stream.log_of_uniform_f64(hi2, lo2), alpha, beta, rate, m2, zero, np.float64(2.0))
    return z if ok else _NAN64


@jitable
def _trunc_tail_f64(b: int, ks: Keys, tn: Truncation) -> tuple[F64, F64]:
    w0, w1, w2, w3 = _math.philox_words(b, 0, ks)
    v0, v1, v2, v3 = _math.philox_words(b, 1, ks)
    return _tail_lane_f64(w0, w1, v0, v1, tn), _tail_lane_f64(w2, w3, v2, v3, tn)


# -- truncated normal: attempts 1, 2, ... of the rejected elements -----------------


@jitable
def _lane4(w0: U32, w1: U32, w2: U32, w3: U32, lane: int) -> U32:
    return w0 if lane == 0 else (w1 if lane == 1 else (w2 if lane == 2 else w3))


@jitable
def _attempt_normal_f32(g: int, attempt: int, ks: Keys, tn: Truncation) -> Candidate:
    """Attempt ``attempt`` of flat element ``g`` with the normal proposal (branch-free)."""
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(g >> 2, 2 * attempt, ks)
    # Lanes are selected with bit masks: pending lanes are random, branches mispredict.
    lane = np.uint32(g & 3)
    high_pair = np.uint32(0) - (lane >> _U32_1)
    c, s = stream.box_muller_f32((w0 & ~high_pair) | (w2 & high_pair),
                                 (w1 & ~high_pair) | (w3 & high_pair))
    odd = np.uint32(0) - (lane & _U32_1)
    z = stream.bits_f32((stream.f32_bits(c) & ~odd) | (stream.f32_bits(s) & odd))
    return z, (z >= alpha) & (z <= beta)


@jitable
def _attempt_tail_f32(g: int, attempt: int, ks: Keys, tn: Truncation) -> Candidate:
    """Attempt ``attempt`` of flat element ``g`` with the uniform or exponential proposal."""
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(g >> 2, 2 * attempt, ks)
    v0, v1, v2, v3 = _math.philox_words(g >> 2, 2 * attempt + 1, ks)
    lane = g & 3
    w = _lane4(w0, w1, w2, w3, lane)
    zero = np.float32(0.0)
    return stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f32(w), stream.log_of_uniform_f32(w),
        stream.log_of_uniform_f32(_lane4(v0, v1, v2, v3, lane)), alpha, beta, rate, m2, zero,
        np.float32(2.0))


@jitable
def _attempt_normal_f64(g: int, attempt: int, ks: Keys, tn: Truncation) -> Candidate:
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(g >> 1, 2 * attempt, ks)
    c, s = stream.box_muller_f64(w0, w1, w2, w3)
    z = s if g & 1 else c
    return z, (z >= alpha) & (z <= beta)


@jitable
def _attempt_tail_f64(g: int, attempt: int, ks: Keys, tn: Truncation) -> Candidate:
    proposal, alpha, beta, rate, m2 = tn
    w0, w1, w2, w3 = _math.philox_words(g >> 1, 2 * attempt, ks)
    v0, v1, v2, v3 = _math.philox_words(g >> 1, 2 * attempt + 1, ks)
    lane = g & 1
    hi, lo = (w2, w3) if lane else (w0, w1)
    zero = np.float64(0.0)
    return stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
        stream.log_of_uniform_f64(v2 if lane else v0, v3 if lane else v1), alpha, beta, rate,
        m2, zero, np.float64(2.0))


# -- output stage: x = loc + scale * (sign * z), clamped, rounded to the output -----


@functools.lru_cache(maxsize=None)  # one per output kind: compiled once per process
def _make_emit(out_kind: int) -> Callable[[Any, Stage], Any]:
    to_f16, to_bf16 = out_kind == OUT_FLOAT16, out_kind == OUT_BFLOAT16

    def emit(z: Any, out: Stage) -> Any:
        """The output value of ``z``: ``min(max(x, lo), hi)`` as Python (and Numba)
        compute it, so NaN stays NaN; written out, it needs no compiled ``min``."""
        loc, scale, lo, hi, sign = out
        x = loc + scale * (sign * z)
        x = lo if lo > x else x
        x = hi if hi < x else x
        if to_f16:  # constants: Numba compiles one branch
            return _math.float16_bits(x)
        if to_bf16:
            return _math.bfloat16_bits(x)
        return x

    return jitable(_named(emit, f"emit_{OUT_NAMES[out_kind]}"))


# -- whole blocks ---------------------------------------------------------------------


def _make_blocks(values: Values, emit: Callable[[Any, Stage], Any], lanes: int,
                 name: str) -> Callable[[Array1, int, Keys, Truncation, Stage], None]:
    """``blocks(dst, b0, ks, tn, out)``: every lane of blocks ``b0, b0 + 1, ...`` into
    ``dst`` (its size a multiple of ``lanes``), in one loop that vectorises across
    blocks (every call in it inlined, the lanes' stores interleaved).

    Not inlined itself: the kernel calls it for the whole blocks of a segment and
    for a partial block at either end, through a small buffer, with one copy of
    the math.
    """
    if lanes == 4:
        def blocks(dst: Array1, b0: int, ks: Keys, tn: Truncation, out: Stage) -> None:
            for i in range(dst.size // 4):
                z0, z1, z2, z3 = values(b0 + i, ks, tn)
                dst[4 * i] = emit(z0, out)
                dst[4 * i + 1] = emit(z1, out)
                dst[4 * i + 2] = emit(z2, out)
                dst[4 * i + 3] = emit(z3, out)
    else:
        def blocks(dst: Array1, b0: int, ks: Keys, tn: Truncation, out: Stage) -> None:
            for i in range(dst.size // 2):
                z0, z1 = values(b0 + i, ks, tn)
                dst[2 * i] = emit(z0, out)
                dst[2 * i + 1] = emit(z1, out)

    return jitable(_named(blocks, f"blocks_{name}"), forceinline=False)


def _make_resample(attempt: Callable[[int, int, Keys, Truncation], Candidate],
                   emit: Callable[[Any, Stage], Any], out_kind: int,
                   name: str) -> Callable[..., None]:
    """Attempts 1, 2, ... of the elements of ``dst`` whose first attempt was rejected
    (NaN in ``dst``); ``dst[j]`` is element ``first + j``."""
    f16, bf16 = out_kind == OUT_FLOAT16, out_kind == OUT_BFLOAT16

    def resample(dst: Array1, first: int, ks: Keys, tn: Truncation, out: Stage,
                 pending: Array1, zs: Array1, flags: Array1) -> None:
        n = dst.size
        for j in range(n):  # the rejected: NaN (constants: Numba compiles one branch)
            if f16:
                flags[j] = (dst[j] & np.uint16(0x7FFF)) > np.uint16(0x7C00)
            elif bf16:
                flags[j] = (dst[j] & np.uint16(0x7FFF)) > np.uint16(0x7F80)
            else:
                flags[j] = dst[j] != dst[j]
        # Branch-free compaction with an unsigned count (no negative-index fix-up).
        count = np.uint64(0)
        for j in range(n):
            pending[count] = j
            count += np.uint64(flags[j])
        attempt_ = 1
        while count > 0:
            # One attempt for every pending element, in a loop that vectorises.
            for p in range(count):
                zs[p], flags[p] = attempt(first + pending[p], attempt_, ks, tn)
            # Every candidate is written (acceptance is a coin flip, a branch would
            # mispredict); a rejected one is overwritten by a later attempt and the
            # last one stays.
            retry = np.uint64(0 if attempt_ == stream.MAX_ATTEMPTS - 1 else 1)
            kept = np.uint64(0)
            for p in range(count):
                j = pending[p]
                dst[j] = emit(zs[p], out)
                pending[kept] = j
                kept += retry - (retry & np.uint64(flags[p]))
            count = kept
            attempt_ += 1

    return jitable(_named(resample, f"resample_{name}"), forceinline=False)


# -- the kernels --------------------------------------------------------------------------

# The precision dispatch, in one place: the functions of each family.
_F32: dict[str, Callable[..., Any]] = {
    "uniform": _uniform_f32, "normal": _normal_f32, "trunc_normal": _trunc_normal_f32,
    "trunc_tail": _trunc_tail_f32, "attempt_normal": _attempt_normal_f32,
    "attempt_tail": _attempt_tail_f32}
_F64: dict[str, Callable[..., Any]] = {
    "uniform": _uniform_f64, "normal": _normal_f64, "trunc_normal": _trunc_normal_f64,
    "trunc_tail": _trunc_tail_f64, "attempt_normal": _attempt_normal_f64,
    "attempt_tail": _attempt_tail_f64}


def _make_fill(kind: int, wide: bool, out_kind: int, proposal: int) -> Callable[..., None]:
    """The kernel of one specialisation: tasks ``t0 .. t1-1`` of the backend contract.

    Task ``t`` is elements ``c .. c + n - 1`` (``c = (t % tasks_per_run) * TASK``)
    of run ``r = t // tasks_per_run``; element ``c`` of run ``r`` is flat element
    ``run_starts[r] + c`` of the stream and goes to ``out[r * run_length + c]``.
    ``ks`` is the key schedule, ``o`` the output stage ``(loc, scale, lo, hi,
    sign)`` and ``tn`` the truncated normal's ``(proposal, alpha, beta, rate,
    m2)``, in the working precision; ``out`` is float32 or float64, or the uint16
    bits of float16/bfloat16 (``out_kind``). ``edge`` (``lanes`` elements) holds a
    partial block; ``pending``, ``zs`` and ``flags`` (``TASK`` elements) are the
    truncated normal's resampling scratch (empty for the other distributions).
    """
    lanes = stream.LANES_F64 if wide else stream.LANES_F32
    family = _F64 if wide else _F32
    truncated = kind == stream.TRUNCATED_NORMAL
    if not truncated:
        values = family["uniform" if kind == stream.UNIFORM else "normal"]
    else:
        how = "normal" if proposal == stream.PROPOSAL_NORMAL else "tail"
        values, attempt = family["trunc_" + how], family["attempt_" + how]
    name = kernel_name(kind, wide, out_kind, proposal)
    emit = _make_emit(out_kind)
    blocks = _make_blocks(values, emit, lanes, name)
    resample = _make_resample(attempt, emit, out_kind, name) if truncated else None

    def fill(out: Array1, run_starts: Array1, run_length: int, t0: int, t1: int, ks: Keys,
             o: Stage, tn: Truncation, edge: Array1, pending: Array1, zs: Array1,
             flags: Array1) -> None:
        tasks_per_run = (run_length + TASK - 1) // TASK
        for task in range(t0, t1):
            run = task // tasks_per_run
            c = (task - run * tasks_per_run) * TASK
            n = TASK if run_length - c > TASK else run_length - c
            position = run * run_length + c
            dst = out[position:position + n]
            first = run_starts[run] + c
            b = first // lanes
            head = first - b * lanes  # lane of the first element
            j = 0
            if head:  # a partial block first, through edge
                blocks(edge, b, ks, tn, o)
                while head < lanes and j < n:
                    dst[j] = edge[head]
                    head += 1
                    j += 1
                b += 1
            full = (n - j) // lanes * lanes
            blocks(dst[j:j + full], b, ks, tn, o)
            j += full
            if j < n:  # and a partial block last
                blocks(edge, b + full // lanes, ks, tn, o)
                for k in range(n - j):
                    dst[j + k] = edge[k]
            if truncated:  # a constant: Numba compiles this only where it is True (and
                # resample is None elsewhere)
                resample(dst, first, ks, tn, o, pending, zs, flags)  # type: ignore[misc]

    return fill


def _signature(wide: bool, out_kind: int) -> Any:
    """The kernel's Numba signature (see :func:`_make_fill`)."""
    f = types.float64 if wide else types.float32
    o = f if out_kind == OUT_NATIVE else types.uint16
    c1 = lambda t: types.Array(t, 1, "C")  # noqa: E731
    return types.void(c1(o), c1(types.int64), types.int64, types.int64, types.int64,
                      types.UniTuple(types.uint64, 2 * stream.PHILOX_ROUNDS),
                      types.UniTuple(f, 5), types.Tuple((types.int64, f, f, f, f)), c1(o),
                      c1(types.int64), c1(f), c1(types.uint8))


_kernels: dict[FillSpec, Kernel | None] = {}
_lock = threading.Lock()


def _reset_after_fork() -> None:  # a lock held by another thread at fork stays held in the child
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def fill_kernel(kind: int, wide: bool, out_kind: int, proposal: int = 0) -> Kernel | None:
    """The compiled kernel of one specialisation (made, or loaded from the cache, once);
    None under ``NUMBA_DISABLE_JIT``."""
    spec = fill_job(kind, wide, out_kind, proposal)[1]
    try:
        return _kernels[spec]
    except KeyError:
        pass
    with _lock:
        if spec not in _kernels:
            _kernels[spec] = kernel(_make_fill(*spec), kernel_name(*spec),
                                    _signature(*spec[1:3]))
        return _kernels[spec]


def _make_copy() -> Callable[..., None]:
    def copy_2d(dst: Array1, src: Array1, t0: int, t1: int) -> None:
        """Tiles ``t0 .. t1-1`` of ``dst[...] = src`` (2-D, any strides), in square tiles.

        Writing a C-ordered scratch buffer into a transposed view (a strided
        output) element by element misses the cache on one side; a tile of both
        stays in cache.
        """
        rows, cols = src.shape
        tiles_c = (cols + COPY_TILE - 1) // COPY_TILE
        for tile in range(t0, t1):
            r0 = (tile // tiles_c) * COPY_TILE
            c0 = (tile % tiles_c) * COPY_TILE
            r1 = rows if r0 + COPY_TILE > rows else r0 + COPY_TILE
            c1 = cols if c0 + COPY_TILE > cols else c0 + COPY_TILE
            for c in range(c0, c1):
                for r in range(r0, r1):
                    dst[r, c] = src[r, c]

    return copy_2d


_copy_kernels: dict[int, Kernel | None] = {}


def copy_kernel(itemsize: int) -> Kernel | None:
    """The tiled 2-D copy for elements of ``itemsize`` bytes (copied as unsigned integers);
    None under ``NUMBA_DISABLE_JIT``."""
    try:
        return _copy_kernels[itemsize]
    except KeyError:
        pass
    with _lock:
        if itemsize not in _copy_kernels:
            a2 = types.Array(getattr(types, f"uint{8 * itemsize}"), 2, "A")
            _copy_kernels[itemsize] = kernel(_make_copy(), f"copy_2d_u{8 * itemsize}",
                                             types.void(a2, a2, types.int64, types.int64))
        return _copy_kernels[itemsize]
