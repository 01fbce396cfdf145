"""How many threads fastinit's CPU kernels use (no Numba import here).

The count, in order of precedence:

1. :func:`set_num_threads` (``fastinit.set_num_threads``), when called;
2. ``numba.set_num_threads``, when Numba's threading layer was started in
   this process (by that call, or by a ``parallel=True`` function): the
   calling thread's Numba setting is used, so code written for the old
   Numba-threaded backend keeps working; fastinit never starts that layer
   itself;
3. the ``NUMBA_NUM_THREADS`` environment variable;
4. the CPUs this process may run on (``os.sched_getaffinity``).

Results never depend on it: element ``i`` is a function of ``(seed, stream, i)``.
"""

from __future__ import annotations

import os
import sys
from typing import SupportsIndex

from ._checks import check_integer
from ._system import available_cores

_setting: int | None = None


def set_num_threads(n: SupportsIndex | None) -> None:
    """Use ``n`` threads (the calling thread included) in fastinit's CPU kernels.

    ``None`` goes back to the default (see :func:`get_num_threads`). Results do
    not depend on the thread count.

    Examples
    --------
    >>> import fastinit
    >>> fastinit.set_num_threads(1)
    >>> fastinit.get_num_threads()
    1
    >>> fastinit.set_num_threads(None)
    """
    global _setting
    if n is None:
        _setting = None
        return
    count = check_integer(n, "n")
    if count < 1:
        raise ValueError(f"n must be >= 1. Received: n={count}")
    _setting = count


def configured() -> int | None:
    """What :func:`set_num_threads` last set (None: the default), to restore it later."""
    return _setting


def get_num_threads() -> int:
    """The number of threads fastinit's CPU kernels use now (see the module docstring)."""
    if _setting is not None:
        return _setting
    n = _numba_setting()
    return n if n is not None else default_num_threads()


def _numba_setting() -> int | None:
    """``numba.get_num_threads()`` if Numba's threading layer is running, else None.

    ``numba.get_num_threads`` would start the layer (OpenMP, TBB or workqueue,
    which do not survive ``fork``): it is only asked once the layer runs.
    """
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return None
    try:
        return int(parallel.get_num_threads())
    except Exception:  # pragma: no cover - a Numba without thread masking
        return None


def default_num_threads() -> int:
    """``NUMBA_NUM_THREADS`` when set to a positive integer, else the usable CPUs."""
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    return available_cores()
