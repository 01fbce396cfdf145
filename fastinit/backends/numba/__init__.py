"""The Numba backend: parallel JIT kernels (``fastinit.kernels.numba_kernels``).

Threads are Numba's: ``numba.set_num_threads`` sets how many are used. The
result does not depend on it.
"""

import numba
import numpy as np

from ... import stream
from . import kernels


def fill(dist, key, out, run_starts, run_length):
    """Fill ``out`` with runs of the stream (see ``fastinit.backends``)."""
    run_starts = np.ascontiguousarray(run_starts, dtype=np.int64)
    keys = stream.key_schedule(*key)
    if out.dtype.itemsize != 2:
        target, out_kind = out, kernels.OUT_NATIVE
    else:
        target = out.view(np.uint16)
        out_kind = kernels.OUT_FLOAT16 if out.dtype == np.float16 else kernels.OUT_BFLOAT16
    kernels.fill(target, out_kind, run_starts, run_length, keys, dist.kind, dist.proposal,
                 dist.params(), numba.get_num_threads())


def copy_2d(dst, src):
    """``dst[...] = src`` for 2-D arrays of the same shape and dtype, any strides, tiled."""
    if dst.dtype.itemsize == 2:  # float16 / bfloat16: copy the bits
        dst, src = dst.view(np.uint16), src.view(np.uint16)
    kernels.copy_2d(dst, src)
