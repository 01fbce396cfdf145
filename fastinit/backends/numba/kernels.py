"""Numba CPU kernels for the stream (imported only when the numba backend is used).

The element math is :mod:`fastinit.stream` itself, compiled: its functions are
registered as jitable here and its array primitives (bit casts) get
scalar implementations. Work is split into tasks of ``TASK`` consecutive
elements of one run; each Numba thread owns every ``n_threads``-th task and
one scratch buffer. What a task computes depends only on the flat indices it
covers, never on the split.
"""

import hashlib
import pathlib

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload, register_jitable

from ... import stream


def _drop_stale_cache():
    """Remove cached kernels that were compiled from another ``stream.py``.

    Numba's cache checks only the timestamp of this file, but the kernels also
    compile the element math of :mod:`fastinit.stream`; an edit there alone
    would otherwise run stale machine code. Best effort: a read-only install
    is left alone.
    """
    cache = pathlib.Path(__file__).parent / "__pycache__"
    digest = hashlib.sha256(pathlib.Path(stream.__file__).read_bytes()).hexdigest()
    stamp = cache / "kernels.stream-sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        for path in cache.glob("kernels.*.nb[ic]"):
            path.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass


_drop_stale_cache()

TASK = 8192
OUT_NATIVE, OUT_FLOAT16, OUT_BFLOAT16 = 0, 1, 2


def _bitcast(src, dst):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    return cast


_f32_to_u32 = _bitcast(types.float32, types.uint32)
_u32_to_f32 = _bitcast(types.uint32, types.float32)
_f64_to_u64 = _bitcast(types.float64, types.uint64)
_u64_to_f64 = _bitcast(types.uint64, types.float64)


@overload(stream.f32_bits, jit_options={"forceinline": True, "error_model": "numpy"})
def _f32_bits(x):
    return lambda x: _f32_to_u32(np.float32(x))


@overload(stream.bits_f32, jit_options={"forceinline": True, "error_model": "numpy"})
def _bits_f32(b):
    return lambda b: _u32_to_f32(np.uint32(b))


@overload(stream.f64_bits, jit_options={"forceinline": True, "error_model": "numpy"})
def _f64_bits(x):
    return lambda x: _f64_to_u64(np.float64(x))


@overload(stream.bits_f64, jit_options={"forceinline": True, "error_model": "numpy"})
def _bits_f64(b):
    return lambda b: _u64_to_f64(np.uint64(b))


for _fn in (stream.philox_block, stream.uniform_f32, stream.log_of_uniform_f32,
            stream._sin_cos_poly_f32, stream._octant_cos_sin_f32, stream.cos_sin_f32,
            stream.box_muller_f32, stream.uniform_f64, stream.log_of_uniform_f64,
            stream._sin_cos_poly_f64, stream._octant_cos_sin_f64, stream.cos_sin_f64, stream.box_muller_f64,
            stream.uniform_lanes_f32, stream.normal_lanes_f32, stream.uniform_lanes_f64,
            stream.normal_lanes_f64, stream.truncated_normal_candidate):
    register_jitable(forceinline=True, error_model="numpy")(_fn)

_MASK32 = np.int64(0xFFFFFFFF)
_U32_0 = np.uint32(0)
_NAN32 = np.float32(np.nan)
_NAN64 = np.float64(np.nan)


# -- rounding float32 to 16-bit formats (round to nearest even) ----------------


@register_jitable(forceinline=True, error_model="numpy")
def float16_bits(x):
    """IEEE half bits of float32 ``x`` (F. Giesen's float_to_half_fast3_rtne)."""
    b = stream.f32_bits(x)
    sign = b & np.uint32(0x80000000)
    b = np.uint32(b ^ sign)
    if b >= np.uint32(0x47800000):  # >= 65536 (rounds to inf), inf, nan
        o = np.uint32(0x7E00) if b > np.uint32(0x7F800000) else np.uint32(0x7C00)
    elif b < np.uint32(0x38800000):  # below the smallest normal half: let the FPU round
        o = np.uint32(stream.f32_bits(stream.bits_f32(b) + np.float32(0.5))
                      - np.uint32(0x3F000000))
    else:
        odd = (b >> np.uint32(13)) & np.uint32(1)
        o = np.uint32((b + np.uint32(0xC8000FFF) + odd) >> np.uint32(13))
    return np.uint16(o | (sign >> np.uint32(16)))


@register_jitable(forceinline=True, error_model="numpy")
def bfloat16_bits(x):
    b = stream.f32_bits(x)
    return np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1)))
                     >> np.uint32(16))


# -- one task ----------------------------------------------------------------------


@register_jitable(error_model="numpy")
def _block_counter(b):
    return np.uint32(b & _MASK32), np.uint32(b >> 32)


@register_jitable(error_model="numpy")
def _fill_blocks_f32(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    """Attempt 0 of every lane of blocks b0..b1-1 into ``buf``.

    Truncated normal: with the normal proposal ``buf`` holds the raw normals
    (the caller checks the bounds); with the others a rejected lane is NaN.
    """
    zero, two = np.float32(0.0), np.float32(2.0)
    if kind == stream.UNIFORM:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 4 * i
            buf[j], buf[j + 1], buf[j + 2], buf[j + 3] = stream.uniform_lanes_f32(w0, w1, w2, w3)
    elif kind == stream.NORMAL or proposal == stream.PROPOSAL_NORMAL:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 4 * i
            buf[j], buf[j + 1], buf[j + 2], buf[j + 3] = stream.normal_lanes_f32(w0, w1, w2, w3)
    else:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            first = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            second = stream.philox_block(c0, c1, np.uint32(1), _U32_0, keys)
            for lane in range(4):
                z, ok = stream.truncated_normal_candidate(
                    proposal, zero, stream.uniform_f32(first[lane]),
                    stream.log_of_uniform_f32(first[lane]),
                    stream.log_of_uniform_f32(second[lane]), alpha, beta, rate, m2, zero, two)
                buf[4 * i + lane] = z if ok else _NAN32


@register_jitable(error_model="numpy")
def _fill_blocks_f64(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    zero, two = np.float64(0.0), np.float64(2.0)
    if kind == stream.UNIFORM:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 2 * i
            buf[j], buf[j + 1] = stream.uniform_lanes_f64(w0, w1, w2, w3)
    elif kind == stream.NORMAL or proposal == stream.PROPOSAL_NORMAL:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 2 * i
            buf[j], buf[j + 1] = stream.normal_lanes_f64(w0, w1, w2, w3)
    else:
        for i in range(b1 - b0):
            c0, c1 = _block_counter(b0 + i)
            f0, f1, f2, f3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            s0, s1, s2, s3 = stream.philox_block(c0, c1, np.uint32(1), _U32_0, keys)
            for lane in range(2):
                hi, lo = (f0, f1) if lane == 0 else (f2, f3)
                hi2, lo2 = (s0, s1) if lane == 0 else (s2, s3)
                z, ok = stream.truncated_normal_candidate(
                    proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
                    stream.log_of_uniform_f64(hi2, lo2), alpha, beta, rate, m2, zero, two)
                buf[2 * i + lane] = z if ok else _NAN64


# -- truncated normal: attempts 1, 2, ... of the rejected elements -----------------


@register_jitable(forceinline=True, error_model="numpy")
def _lane4(w0, w1, w2, w3, lane):
    return w0 if lane == 0 else (w1 if lane == 1 else (w2 if lane == 2 else w3))


@register_jitable(forceinline=True, error_model="numpy")
def _attempt_normal_f32(g, attempt, keys, alpha, beta):
    """Attempt ``attempt`` of flat element ``g`` with the normal proposal (branch-free)."""
    c0, c1 = _block_counter(g >> 2)
    w0, w1, w2, w3 = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
    # Lanes are selected with bit masks: pending lanes are random, branches mispredict.
    lane = np.uint32(g & 3)
    high_pair = np.uint32(0) - (lane >> np.uint32(1))
    c, s = stream.box_muller_f32((w0 & ~high_pair) | (w2 & high_pair),
                                 (w1 & ~high_pair) | (w3 & high_pair))
    odd = np.uint32(0) - (lane & np.uint32(1))
    z = stream.bits_f32((stream.f32_bits(c) & ~odd) | (stream.f32_bits(s) & odd))
    return z, (z >= alpha) & (z <= beta)


@register_jitable(forceinline=True, error_model="numpy")
def _attempt_tail_f32(g, attempt, keys, proposal, alpha, beta, rate, m2):
    """Attempt ``attempt`` of flat element ``g`` with the uniform or exponential proposal."""
    c0, c1 = _block_counter(g >> 2)
    w0, w1, w2, w3 = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
    v0, v1, v2, v3 = stream.philox_block(c0, c1, np.uint32(2 * attempt + 1), _U32_0, keys)
    lane = g & 3
    w = _lane4(w0, w1, w2, w3, lane)
    zero = np.float32(0.0)
    return stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f32(w), stream.log_of_uniform_f32(w),
        stream.log_of_uniform_f32(_lane4(v0, v1, v2, v3, lane)), alpha, beta, rate, m2, zero,
        np.float32(2.0))


@register_jitable(forceinline=True, error_model="numpy")
def _attempt_normal_f64(g, attempt, keys, alpha, beta):
    c0, c1 = _block_counter(g >> 1)
    w0, w1, w2, w3 = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
    c, s = stream.box_muller_f64(w0, w1, w2, w3)
    z = s if g & 1 else c
    return z, (z >= alpha) & (z <= beta)


@register_jitable(forceinline=True, error_model="numpy")
def _attempt_tail_f64(g, attempt, keys, proposal, alpha, beta, rate, m2):
    c0, c1 = _block_counter(g >> 1)
    w0, w1, w2, w3 = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
    v0, v1, v2, v3 = stream.philox_block(c0, c1, np.uint32(2 * attempt + 1), _U32_0, keys)
    lane = g & 1
    hi, lo = (w2, w3) if lane else (w0, w1)
    zero = np.float64(0.0)
    return stream.truncated_normal_candidate(
        proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
        stream.log_of_uniform_f64(v2 if lane else v0, v3 if lane else v1), alpha, beta, rate,
        m2, zero, np.float64(2.0))


def _attempt_normal(g, attempt, keys, alpha, beta):
    """``_attempt_normal_f32`` or ``_f64``, chosen by the precision of ``alpha``."""


def _attempt_tail(g, attempt, keys, proposal, alpha, beta, rate, m2):
    """``_attempt_tail_f32`` or ``_f64``, chosen by the precision of ``alpha``."""


@overload(_attempt_normal, jit_options={"forceinline": True, "error_model": "numpy"})
def _attempt_normal_by_precision(g, attempt, keys, alpha, beta):
    chosen = _attempt_normal_f64 if alpha == types.float64 else _attempt_normal_f32
    return lambda g, attempt, keys, alpha, beta: chosen(g, attempt, keys, alpha, beta)


@overload(_attempt_tail, jit_options={"forceinline": True, "error_model": "numpy"})
def _attempt_tail_by_precision(g, attempt, keys, proposal, alpha, beta, rate, m2):
    chosen = _attempt_tail_f64 if alpha == types.float64 else _attempt_tail_f32
    return lambda g, attempt, keys, proposal, alpha, beta, rate, m2: chosen(
        g, attempt, keys, proposal, alpha, beta, rate, m2)


@register_jitable(error_model="numpy")
def _resample(buf, head, n, base, keys, proposal, alpha, beta, rate, m2, pending, zs, oks,
              flags):
    """Redo rejected entries of ``buf[head:head+n]``; ``buf[j]`` is element ``base + j``.

    Each pass runs one attempt for every pending element in a loop that
    vectorises, then keeps the still-rejected ones.
    """
    # Rejected positions: flags in a loop that vectorises, then a branch-free
    # compaction with an unsigned count (no negative-index fix-up per store).
    window = buf[head:head + n]
    if proposal == stream.PROPOSAL_NORMAL:
        for j in range(n):
            z = window[j]
            flags[j] = (z < alpha) | (z > beta)
    else:
        for j in range(n):
            flags[j] = window[j] != window[j]
    count = np.uint64(0)
    for j in range(n):
        pending[count] = head + j
        count += np.uint64(flags[j])
    attempt = 1
    while count > 0:
        # One loop per proposal: no branch inside, so each vectorises.
        if proposal == stream.PROPOSAL_NORMAL:
            for p in range(count):
                zs[p], oks[p] = _attempt_normal(base + pending[p], attempt, keys, alpha, beta)
        else:
            for p in range(count):
                zs[p], oks[p] = _attempt_tail(base + pending[p], attempt, keys, proposal, alpha,
                                              beta, rate, m2)
        # Branch-free (acceptance is a coin flip): every candidate is written, a
        # rejected one is overwritten by a later attempt; the last one stays.
        retry = np.uint64(0 if attempt == stream.MAX_ATTEMPTS - 1 else 1)
        kept = np.uint64(0)
        for p in range(count):
            j = pending[p]
            buf[j] = zs[p]
            pending[kept] = j
            kept += retry - (retry & np.uint64(oks[p]))
        count = kept
        attempt += 1


@register_jitable(error_model="numpy")
def _store(out, position, buf, head, n, out_kind, loc, scale, lo, hi, sign):
    # Slices keep every index provably non-negative, so LLVM vectorises the loops.
    dst = out[position:position + n]
    src = buf[head:head + n]
    if out_kind == OUT_FLOAT16:
        for j in range(n):
            x = loc + scale * (sign * src[j])
            dst[j] = float16_bits(min(max(x, lo), hi))
    elif out_kind == OUT_BFLOAT16:
        for j in range(n):
            x = loc + scale * (sign * src[j])
            dst[j] = bfloat16_bits(min(max(x, lo), hi))
    else:
        for j in range(n):
            x = loc + scale * (sign * src[j])
            dst[j] = min(max(x, lo), hi)


@register_jitable(forceinline=True, error_model="numpy")
def _task_bounds(run_starts, run_length, task, tasks_per_run, lanes):
    """Run, first column, length, first flat index and block range of a task."""
    run = task // tasks_per_run
    c = (task - run * tasks_per_run) * TASK
    n = min(TASK, run_length - c)
    first = run_starts[run] + c
    return run, c, n, first, first // lanes, (first + n + lanes - 1) // lanes


def _lanes(x):
    """Lanes per block for the precision of ``x`` (``stream.LANES_F32`` / ``_F64``)."""


@overload(_lanes, jit_options={"forceinline": True})
def _lanes_by_precision(x):
    lanes = stream.LANES_F64 if x == types.float64 else stream.LANES_F32
    return lambda x: lanes


def _fill_blocks(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    """``_fill_blocks_f32`` or ``_f64``, chosen by the precision of ``buf``."""


@overload(_fill_blocks, jit_options={"forceinline": True, "error_model": "numpy"})
def _fill_blocks_by_precision(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    chosen = _fill_blocks_f64 if buf.dtype == types.float64 else _fill_blocks_f32
    return lambda buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2: chosen(
        buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def fill(out, out_kind, run_starts, run_length, keys, kind, proposal, params, n_threads):
    """Fill ``out`` with runs of the stream (the backend contract, compiled).

    ``params`` (kernel order, see ``backends.Distribution.params``) is float32
    for the f32 family, float64 for f64; ``out`` is float32 or float64, or the
    uint16 bits of float16/bfloat16 (``out_kind``).
    """
    loc, scale, lo, hi = params[0], params[1], params[2], params[3]
    alpha, beta, rate, m2, sign = params[4], params[5], params[6], params[7], params[8]
    lanes = _lanes(loc)
    tasks_per_run = (run_length + TASK - 1) // TASK
    n_tasks = run_starts.size * tasks_per_run
    n_workers = min(n_threads, n_tasks)
    for worker in prange(n_workers):
        buf = np.empty(TASK + 2 * lanes, dtype=params.dtype)
        pending = np.empty(TASK, dtype=np.int64)
        zs = np.empty(TASK, dtype=params.dtype)
        oks = np.empty(TASK, dtype=np.bool_)
        flags = np.empty(TASK, dtype=np.uint8)
        for task in range(worker, n_tasks, n_workers):
            run, c, n, first, b0, b1 = _task_bounds(run_starts, run_length, task,
                                                    tasks_per_run, lanes)
            _fill_blocks(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2)
            head = first - b0 * lanes
            if kind == stream.TRUNCATED_NORMAL:
                _resample(buf, head, n, b0 * lanes, keys, proposal, alpha, beta, rate, m2,
                          pending, zs, oks, flags)
            _store(out, run * run_length + c, buf, head, n, out_kind, loc, scale, lo, hi, sign)


COPY_TILE = 64


@njit(parallel=True, cache=True, nogil=True)
def copy_2d(dst, src):
    """``dst[...] = src`` for 2-D arrays of any strides, in square tiles.

    Writing a C-ordered scratch buffer into a transposed view (a strided
    output) element by element misses the cache on one side; a tile of both
    stays in cache. Threads take tiles.
    """
    rows, cols = src.shape
    tiles_c = (cols + COPY_TILE - 1) // COPY_TILE
    n_tiles = ((rows + COPY_TILE - 1) // COPY_TILE) * tiles_c
    for tile in prange(n_tiles):
        r0 = (tile // tiles_c) * COPY_TILE
        c0 = (tile % tiles_c) * COPY_TILE
        r1 = min(rows, r0 + COPY_TILE)
        c1 = min(cols, c0 + COPY_TILE)
        for c in range(c0, c1):
            for r in range(r0, r1):
                dst[r, c] = src[r, c]
