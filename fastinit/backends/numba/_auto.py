"""``backend="auto"`` for NumPy outputs: the Numba backend, without waiting for small calls.

The backend object that ``fastinit.backends.get("auto")`` returns when Numba
is installed: a call of at most ``SMALL`` elements whose kernel is not made
yet gets its values from the NumPy backend (the same bits) while the kernel
is made in the background; every other call runs the kernel (see
:mod:`fastinit.backends.numba`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import copy_2d as _copy_2d, fill as _fill

if TYPE_CHECKING:
    from .. import Distribution


def fill(dist: Distribution, key: tuple[int, int], out: np.ndarray, run_starts: np.ndarray,
         run_length: int) -> None:
    """``fastinit.backends.numba.fill`` with ``wait=False``."""
    _fill(dist, key, out, run_starts, run_length, wait=False)


def copy_2d(dst: np.ndarray, src: np.ndarray) -> None:
    """``fastinit.backends.numba.copy_2d`` with ``wait=False``."""
    _copy_2d(dst, src, wait=False)
