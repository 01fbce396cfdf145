"""The Numba backend: small serial kernels, compiled per use, run on fastinit's threads.

Each ``(distribution, precision, output kind)`` (and truncated-normal
proposal) has its own kernel (:mod:`._kernels`), compiled on its first use
with the options of :mod:`._jit` and cached on disk (:mod:`._cache`), so a
call compiles only what it needs. The kernels release the GIL; :mod:`._pool`
runs them on ``fastinit.get_num_threads()`` threads, the calling thread
included, and small calls run on the calling thread alone. Numba's own
threading layer is never used (it does not survive ``fork`` and aborts when
several Python threads call it at once). Results do not depend on the
thread count.

``backend="numba"`` waits for a kernel it does not have yet. ``"auto"``
(:mod:`._auto`) does not for calls of at most :data:`SMALL` elements: their
values come from the NumPy backend (the same bits) while the kernel is made
in the background (:mod:`._background`). Importing this package does not
import Numba. Under ``NUMBA_DISABLE_JIT=1`` every call is computed by NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ... import _threads, stream
from .. import numpy_backend
from . import _background, _pool
from ._spec import (COPY_TILE, OUT_BFLOAT16, OUT_FLOAT16, OUT_NATIVE, TASK, copy_tiles,
                    fill_job)

if TYPE_CHECKING:
    from .. import Distribution

# Below this many elements per thread, a call is not worth a thread hand-off.
MIN_CHUNK_ELEMENTS = 1 << 16
CHUNKS_PER_THREAD = 8  # hand-out granularity: a slow (shared) core takes fewer chunks
# Calls of at most this many elements do not wait for their kernel under "auto": tens of
# milliseconds of NumPy (a 1024 x 1024 matrix), even beside a compile in the background.
SMALL = 1 << 20


def fill(dist: Distribution, key: tuple[int, int], out: np.ndarray, run_starts: np.ndarray,
         run_length: int, *, wait: bool = True) -> None:
    """Fill ``out`` with runs of the stream (see ``fastinit.backends``).

    ``wait=False``: a call of at most :data:`SMALL` elements whose kernel is not
    made yet is computed by the NumPy backend, and the kernel made in the background.
    """
    if out.dtype.itemsize != 2:
        target, out_kind = out, OUT_NATIVE
    else:
        target = out.view(np.uint16)
        out_kind = OUT_FLOAT16 if out.dtype == np.float16 else OUT_BFLOAT16
    if not (target.flags.c_contiguous and target.flags.aligned):  # never from fastinit.random
        tmp = np.empty(target.shape, target.dtype)
        fill(dist, key, tmp.view(out.dtype), run_starts, run_length, wait=wait)
        target[...] = tmp
        return
    truncated = dist.kind == stream.TRUNCATED_NORMAL
    job = fill_job(dist.kind, dist.wide, out_kind, dist.proposal)
    kernel = _background.kernel(job, wait or len(run_starts) * run_length > SMALL)
    if kernel is None:  # not made yet, or no kernels at all (NUMBA_DISABLE_JIT)
        numpy_backend.fill(dist, key, out, run_starts, run_length)
        return
    run_starts = np.ascontiguousarray(run_starts, dtype=np.int64)
    ftype = np.float64 if dist.wide else np.float32
    keys = tuple(stream.key_schedule(*key).astype(np.uint64))  # the kernels' key type
    p = dist.params()
    o = (p[0], p[1], p[2], p[3], p[8])  # loc, scale, lo, hi, sign
    tn = (int(dist.proposal), p[4], p[5], p[6], p[7])  # proposal, alpha, beta, rate, m2
    lanes = stream.LANES_F64 if dist.wide else stream.LANES_F32
    tasks_per_run = -(-run_length // TASK)
    n_tasks = run_starts.size * tasks_per_run
    per_task = min(run_length, TASK)
    threads = _threads.get_num_threads()
    chunk = max(-(-MIN_CHUNK_ELEMENTS // per_task),
                n_tasks // (threads * CHUNKS_PER_THREAD))

    def work(t0: int, t1: int) -> None:  # one thread's range of tasks, with its own scratch
        n = TASK if truncated else 0  # the resampling scratch
        edge = np.empty(lanes, target.dtype)
        kernel(target, run_starts, run_length, t0, t1, keys, o, tn, edge,
               np.empty(n, np.int64), np.empty(n, ftype), np.empty(n, np.uint8))

    _pool.run(work, n_tasks, threads, chunk)


def copy_2d(dst: np.ndarray, src: np.ndarray, *, wait: bool = True) -> None:
    """``dst[...] = src`` for 2-D arrays of the same shape and dtype, any strides, tiled.

    ``wait=False``: NumPy's assignment while the tiled kernel is not made yet.
    """
    itemsize = dst.dtype.itemsize
    kernel = _background.kernel(("copy", itemsize), wait or dst.size > SMALL)
    if kernel is None:
        dst[...] = src
        return
    unsigned = np.dtype(f"u{itemsize}")
    dst, src = dst.view(unsigned), src.view(unsigned)
    n_tiles = copy_tiles(*src.shape)
    tile = COPY_TILE ** 2
    threads = _threads.get_num_threads()
    chunk = max(-(-MIN_CHUNK_ELEMENTS // tile), n_tiles // (threads * CHUNKS_PER_THREAD))
    _pool.run(lambda t0, t1: kernel(dst, src, t0, t1), n_tiles, threads, chunk)
