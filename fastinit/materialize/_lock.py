"""One writer per output directory: an exclusive lock that the kernel releases when its
holder dies.

The lock is ``flock`` on ``OUT_DIR/.fastinit-lock``. Every process that shares the
file system sees it where the file system has ``flock`` (local file systems, also
across containers; NFS, where the Linux client emulates it with POSIX locks that the
server arbitrates between hosts); a registry inside the process makes two threads of
one process exclude each other on every file system. A dead holder's lock is free at
once: there are no pids to judge. The holder removes the file when it releases the
lock; one that died leaves it, unlocked, and the next holder takes it over. A waiter
that locked a file the holder has just removed sees that the name no longer leads to
its file and tries again, so two holders never hold two different files.

A forked child does not hold its parent's lock (its copy of the descriptor is closed).
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
import time
import warnings
from typing import TYPE_CHECKING, Literal

from ._signals import held

if TYPE_CHECKING:
    from .._typing import StrPath

__all__ = ["DirectoryLock", "DirectoryBusyError", "LOCK_NAME", "check_timeout"]

LOCK_NAME = ".fastinit-lock"

_registry_lock = threading.Lock()
# (st_dev, st_ino) of a locked directory -> its DirectoryLock, in this process
_held: dict[tuple[int, int], DirectoryLock] = {}


class DirectoryBusyError(BlockingIOError):
    """Another run holds the output directory's lock."""


def check_timeout(timeout: float | None) -> float | None:
    """``None`` (wait as long as it takes) or a number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout >= 0 or timeout == float("inf"):
        raise ValueError("lock_timeout must be a finite number of seconds >= 0, or None to "
                         f"wait as long as it takes. Received: lock_timeout={timeout!r}")
    return float(timeout)


class DirectoryLock:
    """``with DirectoryLock(directory, timeout):`` holds the directory's lock.

    ``timeout``: seconds to wait for another holder (0: fail at once; None: wait as
    long as it takes), then :class:`DirectoryBusyError`. ``locked_by_kernel`` is False
    on a file system without ``flock`` (a warning says so): then only the threads of
    this process are kept apart, and recovery must leave other runs' folders alone.
    """

    def __init__(self, directory: StrPath, timeout: float | None = 0.0) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.timeout = check_timeout(timeout)
        self.fd: int | None = None
        self.key: tuple[int, int] | None = None
        self.locked_by_kernel: bool | None = False

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.release()
        return False

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                with held():  # an attempt is never cut short; the waits between them may be
                    if self._try():
                        return
            except BaseException:  # a signal held during a successful attempt
                self.release()
                raise
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise DirectoryBusyError(errno.EWOULDBLOCK, self._busy_message())
            time.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(2 * delay, 0.25)

    def _try(self) -> bool:
        st = os.stat(self.directory)
        key = (st.st_dev, st.st_ino)
        with _registry_lock:
            if key in _held:
                return False  # another thread of this process
            _held[key] = self
        try:
            got = self._lock_file()
        except BaseException:
            self._forget(key)
            raise
        if not got:
            self._forget(key)
            return False
        self.key = key
        return True

    def _lock_file(self) -> bool:
        """Lock the lock file; False if another process holds it (or has just removed it)."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise FileExistsError(
                    exc.errno, f"{self.path!r} is not a regular file (fastinit's lock file of "
                               "the directory): remove or rename it. Nothing was written.") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileExistsError(errno.EEXIST, f"{self.path!r} is not a regular file "
                                      "(fastinit's lock file of the directory): remove or "
                                      "rename it. Nothing was written.")
            self.locked_by_kernel = _flock(fd, self.path)
            if self.locked_by_kernel is None:
                os.close(fd)
                return False
            try:
                now = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)  # the holder removed it as we locked it: lock the new one
                return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:
            note = f"pid {os.getpid()} on host {socket.gethostname()} since " \
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
        except BaseException:
            self.release()
            raise
        return True

    def release(self) -> None:
        """Remove the lock file (while still holding it) and unlock."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            mine = os.fstat(fd)
            now = os.stat(self.path, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            try:
                os.close(fd)
            except OSError:  # the descriptor is freed all the same
                pass
            self._forget(self.key)

    def _forget(self, key: tuple[int, int] | None) -> None:
        with _registry_lock:
            if key is not None and _held.get(key) is self:
                del _held[key]

    def _busy_message(self) -> str:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                note = f.read(200).strip()
        except OSError:
            note = ""
        holder = f" (its lock file says: {note})" if note else ""
        return (f"Another run is writing to {self.directory!r}{holder}. One run writes to a "
                "directory at a time: wait for it to end, or give a lock timeout "
                f"(lock_timeout=SECONDS, --lock-timeout SECONDS) to wait for it. Received: "
                f"lock_timeout={self.timeout!r}. Nothing was written.")


def _flock(fd: int, path: str) -> bool | None:
    """True: locked; None: held by another process; False: no ``flock`` here (warned)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    warnings.warn(f"The file system of {path!r} has no flock: only this process's threads are "
                  "kept from writing to the directory at the same time, and folders that other "
                  "runs left are not recovered.", RuntimeWarning, stacklevel=4)
    return False


def _close_in_child() -> None:
    """A forked child must not hold (nor later release) its parent's locks."""
    global _registry_lock
    for lock in list(_held.values()):
        if lock.fd is not None:
            try:
                os.close(lock.fd)
            except OSError:
                pass
            lock.fd = None
    _held.clear()
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
