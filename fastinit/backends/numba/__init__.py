"""The Numba backend: small serial kernels, compiled per use, run on fastinit's threads.

Each ``(distribution, precision, output kind)`` (and truncated-normal
proposal) has its own kernel (:mod:`._kernels`), compiled on its first use
with the options of :mod:`._jit` and cached on disk, so a call compiles only
what it needs. The kernels release the GIL; :mod:`._pool` runs them on
``fastinit.get_num_threads()`` threads, the calling thread included, and
small calls run on the calling thread alone. Numba's own threading layer is
never used (it does not survive ``fork`` and aborts when several Python
threads call it at once). Results do not depend on the thread count.
"""

import numpy as np

from ... import _threads, stream
from . import _kernels, _pool

# Below this many elements per thread, a call is not worth a thread hand-off.
MIN_CHUNK_ELEMENTS = 1 << 16
CHUNKS_PER_THREAD = 8  # hand-out granularity: a slow (shared) core takes fewer chunks


def fill(dist, key, out, run_starts, run_length):
    """Fill ``out`` with runs of the stream (see ``fastinit.backends``)."""
    if out.dtype.itemsize != 2:
        target, out_kind = out, _kernels.OUT_NATIVE
    else:
        target = out.view(np.uint16)
        out_kind = _kernels.OUT_FLOAT16 if out.dtype == np.float16 else _kernels.OUT_BFLOAT16
    if not (target.flags.c_contiguous and target.flags.aligned):  # never from fastinit.random
        tmp = np.empty(target.shape, target.dtype)
        fill(dist, key, tmp.view(out.dtype), run_starts, run_length)
        target[...] = tmp
        return
    kernel = _kernels.fill_kernel(dist.kind, dist.wide, out_kind, dist.proposal)
    run_starts = np.ascontiguousarray(run_starts, dtype=np.int64)
    ftype = np.float64 if dist.wide else np.float32
    keys = tuple(stream.key_schedule(*key).astype(np.uint64))  # the kernels' key type
    p = dist.params()
    o = (p[0], p[1], p[2], p[3], p[8])  # loc, scale, lo, hi, sign
    tn = (int(dist.proposal), p[4], p[5], p[6], p[7])  # proposal, alpha, beta, rate, m2
    lanes = stream.LANES_F64 if dist.wide else stream.LANES_F32
    tasks_per_run = -(-run_length // _kernels.TASK)
    n_tasks = run_starts.size * tasks_per_run
    per_task = min(run_length, _kernels.TASK)
    threads = _threads.get_num_threads()
    chunk = max(-(-MIN_CHUNK_ELEMENTS // per_task),
                n_tasks // (threads * CHUNKS_PER_THREAD))
    truncated = dist.kind == stream.TRUNCATED_NORMAL

    def work(t0, t1):  # one thread's range of tasks, with its own scratch
        n = _kernels.TASK if truncated else 0  # the resampling scratch
        edge = np.empty(lanes, target.dtype)
        kernel(target, run_starts, run_length, t0, t1, keys, o, tn, edge,
               np.empty(n, np.int64), np.empty(n, ftype), np.empty(n, np.uint8))

    _pool.run(work, n_tasks, threads, chunk)


def copy_2d(dst, src):
    """``dst[...] = src`` for 2-D arrays of the same shape and dtype, any strides, tiled."""
    itemsize = dst.dtype.itemsize
    unsigned = np.dtype(f"u{itemsize}")
    dst, src = dst.view(unsigned), src.view(unsigned)
    kernel = _kernels.copy_kernel(itemsize)
    n_tiles = _kernels.copy_tiles(*src.shape)
    tile = _kernels.COPY_TILE ** 2
    threads = _threads.get_num_threads()
    chunk = max(-(-MIN_CHUNK_ELEMENTS // tile), n_tiles // (threads * CHUNKS_PER_THREAD))
    _pool.run(lambda t0, t1: kernel(dst, src, t0, t1), n_tiles, threads, chunk)
