"""A lock between processes that tells its waiters whether its holder still lives.

Processes that need one kernel at once take turns on a lock file beside it
(an exclusive ``flock``, which the kernel releases when the holder dies):
one compiles, the others load what it wrote. While it holds the lock, the
holder touches the file (its modification time) every :data:`HEARTBEAT`
seconds from a small thread. A waiter gives up when the time has not moved
for :data:`STALLED` seconds (a holder stopped by ``SIGSTOP``, or hung), or
after :data:`MAX_WAIT` seconds in all, and goes on without the lock: it
compiles the kernel itself, and its files replace any others atomically.
Only the change of the time is watched, never its value: the clocks of hosts
that share the directory need not agree.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from types import ModuleType

HEARTBEAT = 0.5    # seconds between the holder's touches of the lock file
STALLED = 10.0     # seconds without a touch: the holder is stopped or hung
MAX_WAIT = 120.0   # seconds of waiting in all, however alive the holder looks
_POLL = 0.05

_held: dict[int, str] = {}  # fd -> path of the locks this process holds (closed in a forked child)
_beat_lock = threading.Lock()
_beating = [False]


@contextlib.contextmanager
def hold(path: str) -> Iterator[bool]:
    """An exclusive lock on the file ``path`` while the body runs, where the OS has
    ``flock``; yields whether it is held (False: given up, or no locks here)."""
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except (ImportError, OSError):
        yield False
        return
    try:
        held = _acquire(fcntl, fd)
        if held:
            _held[fd] = path
            _start_heartbeat()
        yield held
    finally:
        _held.pop(fd, None)
        os.close(fd)  # releases the lock


def _acquire(fcntl: ModuleType, fd: int) -> bool:
    start = seen_at = time.monotonic()
    seen = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError:  # a file system without locks
            return False
        now = time.monotonic()
        try:
            touched = os.fstat(fd).st_mtime_ns
        except OSError:
            touched = None
        if touched != seen:
            seen, seen_at = touched, now
        if now - seen_at > STALLED or now - start > MAX_WAIT:
            return False
        time.sleep(_POLL)


def _start_heartbeat() -> None:
    with _beat_lock:
        if _beating[0]:
            return
        _beating[0] = True
    threading.Thread(target=_heartbeat, name="fastinit-lock-heartbeat", daemon=True).start()


def _heartbeat() -> None:
    while True:
        with _beat_lock:
            if not _held:
                _beating[0] = False
                return
            paths = list(_held.values())
        for path in paths:  # by name: a closed descriptor's number may be another file's now
            try:
                os.utime(path)
            except OSError:
                pass
        time.sleep(HEARTBEAT)


def _reset_after_fork() -> None:
    # A fork during a compile: the child's copy of the lock file would keep the lock held
    # for as long as the child lives (and block its own compiles); it has no heartbeat.
    global _beat_lock
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()
    _beat_lock = threading.Lock()
    _beating[0] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
