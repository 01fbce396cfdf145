"""Numba CPU kernels for the stream (imported only when the numba backend is used).

The element math is :mod:`fastinit.stream` itself, compiled: its functions are
registered as jitable here and its array primitives (``where``, bit casts) get
scalar implementations. Work is split into tasks of ``TASK`` consecutive
elements of one run; each Numba thread owns every ``n_threads``-th task and
one scratch buffer. What a task computes depends only on the flat indices it
covers, never on the split.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload, register_jitable

from .. import stream

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


@overload(stream.where, inline="always")
def _where(cond, a, b):
    return lambda cond, a, b: a if cond else b


@overload(stream.f32_bits, inline="always")
def _f32_bits(x):
    return lambda x: _f32_to_u32(np.float32(x))


@overload(stream.bits_f32, inline="always")
def _bits_f32(b):
    return lambda b: _u32_to_f32(np.uint32(b))


@overload(stream.f64_bits, inline="always")
def _f64_bits(x):
    return lambda x: _f64_to_u64(np.float64(x))


@overload(stream.bits_f64, inline="always")
def _bits_f64(b):
    return lambda b: _u64_to_f64(np.uint64(b))


for _fn in (stream.philox_block, stream.uniform_f32, stream.log_of_uniform_f32,
            stream._sin_cos_poly_f32, stream._octant_cos_sin, stream.cos_sin_f32,
            stream.box_muller_f32, stream.uniform_f64, stream.log_of_uniform_f64,
            stream._sin_cos_poly_f64, stream.cos_sin_f64, stream.box_muller_f64,
            stream.uniform_lanes_f32, stream.normal_lanes_f32, stream.uniform_lanes_f64,
            stream.normal_lanes_f64, stream.truncated_normal_candidate):
    register_jitable(forceinline=True)(_fn)

_MASK32 = np.int64(0xFFFFFFFF)
_U32_0 = np.uint32(0)
_NAN32 = np.float32(np.nan)
_NAN64 = np.float64(np.nan)


# -- rounding float32 to 16-bit formats (round to nearest even) ----------------


@register_jitable(inline="always")
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


@register_jitable(inline="always")
def bfloat16_bits(x):
    b = stream.f32_bits(x)
    return np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1)))
                     >> np.uint32(16))


# -- one task ----------------------------------------------------------------------


@register_jitable
def _block_counter(b):
    return np.uint32(b & _MASK32), np.uint32(b >> 32)


@register_jitable
def _fill_blocks_f32(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    """Attempt 0 of every lane of blocks b0..b1-1 into ``buf`` (NaN: rejected)."""
    zero, two = np.float32(0.0), np.float32(2.0)
    if kind == stream.UNIFORM:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 4 * (b - b0)
            buf[j], buf[j + 1], buf[j + 2], buf[j + 3] = stream.uniform_lanes_f32(w0, w1, w2, w3)
    elif kind == stream.NORMAL or proposal == stream.PROPOSAL_NORMAL:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 4 * (b - b0)
            buf[j], buf[j + 1], buf[j + 2], buf[j + 3] = stream.normal_lanes_f32(w0, w1, w2, w3)
        if kind == stream.TRUNCATED_NORMAL:
            for j in range(4 * (b1 - b0)):
                z = buf[j]
                if not (z >= alpha and z <= beta):
                    buf[j] = _NAN32
    else:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            first = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            second = stream.philox_block(c0, c1, np.uint32(1), _U32_0, keys)
            for lane in range(4):
                z, ok = stream.truncated_normal_candidate(
                    proposal, zero, stream.uniform_f32(first[lane]),
                    stream.log_of_uniform_f32(first[lane]),
                    stream.log_of_uniform_f32(second[lane]), alpha, beta, rate, m2, zero, two)
                buf[4 * (b - b0) + lane] = z if ok else _NAN32


@register_jitable
def _resample_f32(index, keys, proposal, alpha, beta, rate, m2):
    """Attempts 1, 2, ... of the element with flat index ``index``."""
    zero, two = np.float32(0.0), np.float32(2.0)
    c0, c1 = _block_counter(index // 4)
    lane = index % 4
    z = zero
    for attempt in range(1, stream.MAX_ATTEMPTS):
        first = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
        if proposal == stream.PROPOSAL_NORMAL:
            z = stream.normal_lanes_f32(first[0], first[1], first[2], first[3])[lane]
            if z >= alpha and z <= beta:
                break
        else:
            second = stream.philox_block(c0, c1, np.uint32(2 * attempt + 1), _U32_0, keys)
            z, ok = stream.truncated_normal_candidate(
                proposal, zero, stream.uniform_f32(first[lane]),
                stream.log_of_uniform_f32(first[lane]),
                stream.log_of_uniform_f32(second[lane]), alpha, beta, rate, m2, zero, two)
            if ok:
                break
    return z


@register_jitable
def _fill_blocks_f64(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2):
    zero, two = np.float64(0.0), np.float64(2.0)
    if kind == stream.UNIFORM:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 2 * (b - b0)
            buf[j], buf[j + 1] = stream.uniform_lanes_f64(w0, w1, w2, w3)
    elif kind == stream.NORMAL or proposal == stream.PROPOSAL_NORMAL:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            w0, w1, w2, w3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            j = 2 * (b - b0)
            buf[j], buf[j + 1] = stream.normal_lanes_f64(w0, w1, w2, w3)
        if kind == stream.TRUNCATED_NORMAL:
            for j in range(2 * (b1 - b0)):
                z = buf[j]
                if not (z >= alpha and z <= beta):
                    buf[j] = _NAN64
    else:
        for b in range(b0, b1):
            c0, c1 = _block_counter(b)
            f0, f1, f2, f3 = stream.philox_block(c0, c1, _U32_0, _U32_0, keys)
            s0, s1, s2, s3 = stream.philox_block(c0, c1, np.uint32(1), _U32_0, keys)
            for lane in range(2):
                hi, lo = (f0, f1) if lane == 0 else (f2, f3)
                hi2, lo2 = (s0, s1) if lane == 0 else (s2, s3)
                z, ok = stream.truncated_normal_candidate(
                    proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
                    stream.log_of_uniform_f64(hi2, lo2), alpha, beta, rate, m2, zero, two)
                buf[2 * (b - b0) + lane] = z if ok else _NAN64


@register_jitable
def _resample_f64(index, keys, proposal, alpha, beta, rate, m2):
    zero, two = np.float64(0.0), np.float64(2.0)
    c0, c1 = _block_counter(index // 2)
    lane = index % 2
    z = zero
    for attempt in range(1, stream.MAX_ATTEMPTS):
        f0, f1, f2, f3 = stream.philox_block(c0, c1, np.uint32(2 * attempt), _U32_0, keys)
        if proposal == stream.PROPOSAL_NORMAL:
            z = stream.normal_lanes_f64(f0, f1, f2, f3)[lane]
            if z >= alpha and z <= beta:
                break
        else:
            s0, s1, s2, s3 = stream.philox_block(c0, c1, np.uint32(2 * attempt + 1), _U32_0,
                                                 keys)
            hi, lo = (f0, f1) if lane == 0 else (f2, f3)
            hi2, lo2 = (s0, s1) if lane == 0 else (s2, s3)
            z, ok = stream.truncated_normal_candidate(
                proposal, zero, stream.uniform_f64(hi, lo), stream.log_of_uniform_f64(hi, lo),
                stream.log_of_uniform_f64(hi2, lo2), alpha, beta, rate, m2, zero, two)
            if ok:
                break
    return z


@register_jitable
def _store(out, position, buf, head, n, out_kind, loc, scale, lo, hi, sign):
    if out_kind == OUT_FLOAT16:
        for j in range(n):
            x = loc + scale * (sign * buf[head + j])
            out[position + j] = float16_bits(min(max(x, lo), hi))
    elif out_kind == OUT_BFLOAT16:
        for j in range(n):
            x = loc + scale * (sign * buf[head + j])
            out[position + j] = bfloat16_bits(min(max(x, lo), hi))
    else:
        for j in range(n):
            x = loc + scale * (sign * buf[head + j])
            out[position + j] = min(max(x, lo), hi)


@register_jitable(forceinline=True)
def _task_bounds(run_starts, run_length, task, tasks_per_run, lanes):
    """Run, first column, length, first flat index and block range of a task."""
    run = task // tasks_per_run
    c = (task - run * tasks_per_run) * TASK
    n = min(TASK, run_length - c)
    first = run_starts[run] + c
    return run, c, n, first, first // lanes, (first + n + lanes - 1) // lanes


@njit(parallel=True, cache=True, nogil=True)
def fill_f32(out, out_kind, run_starts, run_length, keys, kind, proposal, params, n_threads):
    """Fill ``out`` (float32, or uint16 bits of float16/bfloat16) with runs of the stream."""
    loc, scale, lo, hi = params[0], params[1], params[2], params[3]
    alpha, beta, rate, m2, sign = params[4], params[5], params[6], params[7], params[8]
    tasks_per_run = (run_length + TASK - 1) // TASK
    n_tasks = run_starts.size * tasks_per_run
    n_workers = min(n_threads, n_tasks)
    for worker in prange(n_workers):
        buf = np.empty(TASK + 2 * stream.LANES_F32, dtype=np.float32)
        for task in range(worker, n_tasks, n_workers):
            run, c, n, first, b0, b1 = _task_bounds(run_starts, run_length, task,
                                                    tasks_per_run, stream.LANES_F32)
            _fill_blocks_f32(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2)
            head = first - b0 * stream.LANES_F32
            if kind == stream.TRUNCATED_NORMAL:
                for j in range(head, head + n):
                    if buf[j] != buf[j]:
                        buf[j] = _resample_f32(b0 * stream.LANES_F32 + j, keys, proposal,
                                               alpha, beta, rate, m2)
            _store(out, run * run_length + c, buf, head, n, out_kind, loc, scale, lo, hi, sign)


@njit(parallel=True, cache=True, nogil=True)
def fill_f64(out, out_kind, run_starts, run_length, keys, kind, proposal, params, n_threads):
    """Fill float64 ``out`` with runs of the stream."""
    loc, scale, lo, hi = params[0], params[1], params[2], params[3]
    alpha, beta, rate, m2, sign = params[4], params[5], params[6], params[7], params[8]
    tasks_per_run = (run_length + TASK - 1) // TASK
    n_tasks = run_starts.size * tasks_per_run
    n_workers = min(n_threads, n_tasks)
    for worker in prange(n_workers):
        buf = np.empty(TASK + 2 * stream.LANES_F64, dtype=np.float64)
        for task in range(worker, n_tasks, n_workers):
            run, c, n, first, b0, b1 = _task_bounds(run_starts, run_length, task,
                                                    tasks_per_run, stream.LANES_F64)
            _fill_blocks_f64(buf, b0, b1, keys, kind, proposal, alpha, beta, rate, m2)
            head = first - b0 * stream.LANES_F64
            if kind == stream.TRUNCATED_NORMAL:
                for j in range(head, head + n):
                    if buf[j] != buf[j]:
                        buf[j] = _resample_f64(b0 * stream.LANES_F64 + j, keys, proposal,
                                               alpha, beta, rate, m2)
            _store(out, run * run_length + c, buf, head, n, out_kind, loc, scale, lo, hi, sign)
