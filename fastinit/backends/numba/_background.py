"""Kernels made on demand or in the background, and what a fork waits for.

A kernel is a job: ``("fill", (kind, wide, out_kind, proposal))`` or
``("copy", itemsize)`` (the jobs of :mod:`._warmup` too). :func:`kernel`
returns a job's kernel when this process has made it; otherwise it makes it
now (``wait=True``: loaded from the disk cache or compiled), or asks for it
in the background and returns None, and the caller computes with NumPy
meanwhile (the same bits: NumPy is the reference). None also stands for
"no kernels at all" (``NUMBA_DISABLE_JIT=1``). This module imports no Numba
itself: a first small call never waits for ``import numba``.

One worker thread makes the asked-for kernels one after another; it starts
when there is work and ends when there is none. A kernel made in the
background competes with the calling thread for the interpreter lock (Numba
compiles in Python), so only small calls take NumPy's values meanwhile
(``fastinit.backends.numba.SMALL``); large ones wait for their kernel. At
exit, the interpreter waits for the kernel being made (its cache files
complete, no compiler running during shutdown), not for the queued ones.

Fork: the forking thread first waits for any kernel being made (by the
worker or by a calling thread), then takes Numba's compiler lock (for a
compile of other code in any other thread), so a child never inherits a
half-made kernel, a half-imported Numba, or a compiler lock held by a thread
it does not have. The child starts with no worker and no queue,
and asks again for what it needs.
"""

from __future__ import annotations

import atexit
import collections
# logging's own fork hook takes its lock, which Numba's compiler needs: imported before
# this module registers its hook, it runs after it (hooks run in reverse order), so a
# fork never holds logging's lock while it waits for a compile.
import logging  # noqa: F401
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._jit import Kernel
    from ._spec import Job

_MISSING: Any = object()
_KERNELS = f"{__package__}._kernels"

_lock = threading.Lock()        # guards the state below
_making = threading.RLock()     # held while any thread makes a kernel (a fork waits for it)
_queue: collections.deque[Job] = collections.deque()   # jobs asked for, not started
_asked: set[Job] = set()        # jobs queued or being made: never asked for twice
_failed: set[Job] = set()       # jobs that failed in the background: made on demand only
_worker: list[threading.Thread | None] = [None]
_closing = [False]


def kernel(job: Job, wait: bool) -> Kernel | None:
    """``job``'s kernel; made now when ``wait``, else asked for in the background (then
    None). None also when this process makes no kernels (``NUMBA_DISABLE_JIT``)."""
    made = _made(job)
    if made is not _MISSING:
        return made
    if wait:
        return make(job)
    ask(job)
    return None


def make(job: Job) -> Kernel | None:
    """Make ``job``'s kernel in this thread (once per process; loads or compiles it)."""
    with _making:  # importing Numba included: a fork never inherits it half done
        from . import _kernels
        if job[0] == "fill":
            return _kernels.fill_kernel(*job[1])
        return _kernels.copy_kernel(job[1])


def _made(job: Job) -> Kernel | None:
    """``job``'s kernel if this process made it (None: no kernels here), else _MISSING."""
    # The worker may be importing it: a partial module has no tables yet
    table = getattr(sys.modules.get(_KERNELS), "_kernels" if job[0] == "fill" else
                    "_copy_kernels", None)
    return _MISSING if table is None else table.get(job[1], _MISSING)


def ask(job: Job) -> None:
    """Have the worker make ``job``'s kernel (no-op if asked already, or at exit)."""
    with _lock:
        if job in _asked or job in _failed or _closing[0]:
            return
        _asked.add(job)
        _queue.append(job)
        if _worker[0] is None:
            worker = threading.Thread(target=_work, name="fastinit-kernels", daemon=True)
            _worker[0] = worker
            worker.start()


def _work() -> None:
    while True:
        with _making:  # taken before the job: exit and fork see it taken, or none started
            with _lock:
                if not _queue or _closing[0]:
                    _worker[0] = None
                    return
                job = _queue.popleft()
            try:
                make(job)
            except Exception:  # made on demand from now on, where the error is raised
                with _lock:
                    _failed.add(job)
            with _lock:
                _asked.discard(job)


def pending() -> set[Job]:
    """The jobs asked for and not made yet (for tests and benchmarks)."""
    with _lock:
        return set(_asked)


def _at_exit() -> None:
    with _lock:
        _closing[0] = True
    with _making:  # the kernel being made, if any
        pass


atexit.register(_at_exit)


# -- fork -----------------------------------------------------------------------------

_forking: list[Any] = [None]  # Numba's compiler lock, when the forking thread took it


def _compiler_lock() -> Any:
    module = sys.modules.get("numba.core.compiler_lock")
    return None if module is None else module.global_compiler_lock


def _before_fork() -> None:
    _making.acquire()
    lock = _compiler_lock()
    if lock is not None:
        lock.acquire()
    _forking[0] = lock


def _after_fork_in_parent() -> None:
    if _forking[0] is not None:
        _forking[0].release()
        _forking[0] = None
    _making.release()


def _after_fork_in_child() -> None:
    global _lock, _making
    if _forking[0] is not None:
        _forking[0].release()  # held by this (the forking) thread
        _forking[0] = None
    _lock, _making = threading.Lock(), threading.RLock()
    _queue.clear()
    _asked.clear()
    _worker[0] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
