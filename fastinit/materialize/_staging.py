"""The commit protocol: a set of files replaced in a directory at once, crash-safe.

A run holds the directory's lock (:mod:`._lock`) from start to end, so everything
below happens with no other run in the directory. It works in a run folder
``OUT/.fastinit-run-<16 hex>/`` of its own:

1. ``plan.json`` (the names it will write; written to a temporary name, fsync-ed,
   renamed), then ``new/``, where the files are written and fsync-ed.
2. ``commit.json``: each new file and each old file it replaces or retires, with its
   identity (device, inode, size, mtime); fsync-ed before the first rename.
3. The old files move into ``old/`` (the old set's commit file first: from then on no
   old set is visible), the new files move in (the new commit file last: the commit
   point), the directory is fsync-ed.
4. Settling (:func:`recover_run`) removes the old files and the run folder.

Settling is also what the run does after an exception or a held signal
(:mod:`._signals`) anywhere in step 3, and what the next run does with a folder that a
killed run left: if the new commit file is in place (its identity matches), finish
(any new file still staged moves in, the old ones are deleted); else undo (the new
files, recognised by identity, are removed, the old ones move back, their commit file
last); without ``commit.json`` nothing was moved and only the staged files go.
Settling touches only the names ``plan.json`` and ``commit.json`` list, validated as
plain names (no separators, ``..`` or leading dot), only regular files (never
following a symbolic link), and in the directory only files whose identity it
recorded; a folder not owned by this user, or whose records are not valid, is left
alone (with a warning), and so is anything else found in a run folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import warnings
from typing import TYPE_CHECKING, Any, Literal

from ._lock import DirectoryLock
from ._signals import held

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .._typing import StrPath

    #: The files of a directory listing that an earlier set retires (``Transaction``).
    Retired = Callable[[list[str]], list[str]]

__all__ = ["Transaction", "recover", "recover_run", "check_name", "check_out_dir", "fsync_dir",
           "RUN_PREFIX"]

RUN_PREFIX = ".fastinit-run-"
_RUN_NAME = re.compile(re.escape(RUN_PREFIX) + "[0-9a-f]{16}")
_PLAN, _COMMIT, _NEW, _OLD = "plan.json", "commit.json", "new", "old"


def fsync_dir(path: StrPath) -> None:
    """Flush a directory's entries (renames) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def check_name(name: object) -> str:
    """A plain file name of the output directory (what the protocol may touch)."""
    if not isinstance(name, str) or name in ("", ".", "..") or name.startswith(".") \
            or any(c in name for c in "/\\\0") or len(name.encode("utf-8", "replace")) > 255:
        raise ValueError(f"Not a plain file name for the output directory. Received: {name!r}")
    return name


def check_out_dir(out_dir: StrPath) -> str:
    """An output directory: a path that does not exist yet or is a directory."""
    path = os.fspath(out_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"The output path exists and is not a directory: {path!r}")
    return path


def _identity(path: StrPath) -> list[int] | None:
    """``[dev, ino, size, mtime_ns]`` of a regular file (not following a link), else None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def check_targets(out_dir: str, names: Iterable[str]) -> None:
    """Refuse a run that would replace or retire anything but a regular file."""
    for name in names:
        path = os.path.join(out_dir, name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(
                errno.EISDIR, f"{path!r} is a directory: fastinit replaces only the files of a "
                f"checkpoint and never deletes a directory. Remove or rename it, or write "
                f"elsewhere. Received: an existing directory {name!r}. Nothing was written.")
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise FileExistsError(
                errno.EEXIST, f"{path!r} is {kind}: fastinit replaces only regular files. "
                f"Remove or rename it, or write elsewhere. Received: {name!r}. "
                "Nothing was written.")


def _write_json(path: str, data: object) -> None:
    """Write ``path`` whole or not at all: a temporary name, fsync, rename."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        view = memoryview(json.dumps(data).encode("utf-8"))
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Transaction:
    """Stage files for ``out_dir`` and commit them all at once (the module's protocol).

    ``names``: the files of the new set, the commit file (index or single file) last.
    ``retired(listing)``: the files of the directory listing that belong to the old set
    without being replaced (an older checkpoint's other shards), its commit file first.
    The constructor only checks its arguments; :meth:`open` takes the directory's lock
    (held until :meth:`close`). Write each file at :meth:`path`, then :meth:`commit`::

        staging = Transaction(out_dir, names)
        try:
            staging.open()
            ...
            staging.commit()
        finally:
            staging.close()

    (``staging`` exists before the lock is taken, so no signal can leave the lock held.)
    Only the process that opened it settles or commits it: a forked child's
    :meth:`close` does nothing and its :meth:`commit` raises.
    """

    def __init__(self, out_dir: StrPath, names: Sequence[str], retired: Retired | None = None,
                 lock_timeout: float | None = 0.0) -> None:
        self.names = [check_name(n) for n in names]
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"A commit needs distinct file names. Received: {self.names!r}")
        self.retired: Retired = retired or (lambda listing: [])
        self.out_dir = os.fspath(out_dir)
        self.lock = DirectoryLock(self.out_dir, lock_timeout)
        self.run: str | None = None
        self.committed = False
        self.pid = os.getpid()

    def open(self) -> Transaction:
        """Create the directory, wait for its lock (signals are delivered while waiting),
        settle what killed runs left and create the run folder (signals held)."""
        out_dir = check_out_dir(self.out_dir)
        try:
            os.makedirs(out_dir, exist_ok=True)
        except PermissionError as exc:
            raise PermissionError(f"The output directory {out_dir!r} is not writable: "
                                  f"{exc.strerror}. Nothing was written.") from None
        except OSError as exc:
            raise OSError(exc.errno, f"Cannot create the output directory {out_dir!r}: "
                                     f"{exc.strerror}. Nothing was written.") from None
        try:
            try:
                self.lock.acquire()
            except PermissionError as exc:
                raise PermissionError(f"The output directory {out_dir!r} is not writable: "
                                      f"{exc.strerror}. Nothing was written.") from None
            with held():
                if self.lock.locked_by_kernel:
                    _recover_locked(out_dir)
                check_targets(out_dir, self.names + self._retire())
                self.run = self._create_run_folder()
        except BaseException:
            self.close()
            raise
        return self

    def _retire(self) -> list[str]:
        return [n for n in self.retired(os.listdir(self.out_dir)) if n not in self.names]

    def _create_run_folder(self) -> str:
        name = RUN_PREFIX + secrets.token_hex(8)
        run = os.path.join(self.out_dir, name)
        os.mkdir(run, 0o700)
        try:
            _write_json(os.path.join(run, _PLAN), {"version": 1, "new": self.names})
            os.mkdir(os.path.join(run, _NEW))
            fsync_dir(run)
            fsync_dir(self.out_dir)
        except BaseException:
            recover_run(self.out_dir, name)
            raise
        return name

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def _run_folder(self) -> str:
        if self.run is None:
            raise ValueError("This commit is closed: its staged files are gone. Received: "
                             f"a closed transaction of {self.out_dir!r}")
        return self.run

    def path(self, name: str) -> str:
        """Where to write the new file ``name`` (one of the names given)."""
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this commit's files {self.names!r}")
        return os.path.join(self.out_dir, self._run_folder(), _NEW, name)

    def commit(self) -> list[str]:
        """Move the staged files into place at once; the paths of the new files."""
        if os.getpid() != self.pid:
            raise RuntimeError("A forked child cannot commit its parent's files: the parent "
                               f"commits them. Received: a commit of {self.out_dir!r} opened "
                               f"by pid {self.pid}, in pid {os.getpid()}")
        out, run = self.out_dir, os.path.join(self.out_dir, self._run_folder())
        with held():
            retire = self._retire()
            old = [n for n in dict.fromkeys([self.names[-1], *retire, *self.names[:-1]])
                   if os.path.lexists(os.path.join(out, n))]
            check_targets(out, old)
            record = {"new": [[n, _identity(self.path(n))] for n in self.names],
                      "old": [[n, _identity(os.path.join(out, n))] for n in old]}
            missing = [n for n, ident in record["new"] if ident is None]
            if missing:
                raise FileNotFoundError(errno.ENOENT, f"Not staged: {missing}")
            _write_json(os.path.join(run, _COMMIT), record)
            os.mkdir(os.path.join(run, _OLD))
            fsync_dir(run)
            try:
                for n in old:  # the old commit file first: no old set is visible from now
                    os.replace(os.path.join(out, n), os.path.join(run, _OLD, n))
                for n in self.names:  # the new commit file last: the commit point
                    os.replace(self.path(n), os.path.join(out, n))
                fsync_dir(out)
            finally:
                self.committed = recover_run(out, self._run_folder())
        return [os.path.join(out, n) for n in self.names]

    def close(self) -> None:
        """Settle an uncommitted run (staged files removed) and release the lock; in a
        forked child, nothing (the parent's run and lock are the parent's)."""
        if os.getpid() != self.pid:
            return
        with held():
            try:
                if self.run is not None and not self.committed:
                    recover_run(self.out_dir, self.run)
                self.run = None
            finally:
                self.lock.release()


def recover(out_dir: StrPath, lock_timeout: float | None = 0.0) -> None:
    """Settle what killed runs left in ``out_dir``, holding its lock (none held by
    another run is touched: a busy directory raises ``DirectoryBusyError``)."""
    with DirectoryLock(out_dir, lock_timeout) as lock:
        if lock.locked_by_kernel:
            with held():
                _recover_locked(os.fspath(out_dir))


def _recover_locked(out_dir: str) -> None:
    for entry in sorted(os.listdir(out_dir)):
        if _RUN_NAME.fullmatch(entry):
            recover_run(out_dir, entry)


def _read_record(path: str, check: Callable[[Any], None]) -> Any:
    """A run's record, validated by ``check``; None if absent; raises ValueError if bad."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 24).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable {os.path.basename(path)}: {exc}") from None
    check(data)
    return data


def _check_plan(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("new"), list):
        raise ValueError("plan.json is not a plan")
    for n in data["new"]:
        check_name(n)


def _check_commit(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError("commit.json is not a commit record")
    for key in ("new", "old"):
        entries = data.get(key)
        if not isinstance(entries, list) or (key == "new" and not entries):
            raise ValueError(f"commit.json has no list {key!r}")
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)
                    and len(entry[1]) == 4 and all(type(v) is int for v in entry[1])):
                raise ValueError(f"commit.json: bad entry {entry!r}")
            check_name(entry[0])


def recover_run(out_dir: str, name: str) -> bool:
    """Settle the run folder ``name`` of ``out_dir`` (see the module's protocol); True if
    its commit had happened (the new set is in place). Never raises ``OSError``: what
    cannot be settled is left, with a warning, for the next run."""
    run = os.path.join(out_dir, name)
    try:
        try:
            st = os.lstat(run)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            _leave(run, "it belongs to another user")
            return False
        plan = _read_record(os.path.join(run, _PLAN), _check_plan)
        record = _read_record(os.path.join(run, _COMMIT), _check_commit)
    except ValueError as exc:
        _leave(run, f"not a folder fastinit wrote ({exc})")
        return False
    except OSError as exc:
        _leave(run, str(exc))
        return False
    committed = False
    try:
        if record is not None:
            committed = _settle(out_dir, run, record)
        _remove_run_folder(run, plan, record, committed)
    except OSError as exc:
        _leave(run, str(exc))
    return committed


def _settle(out_dir: str, run: str, record: dict[str, Any]) -> bool:
    """Finish or undo an interrupted commit; True if it is finished."""
    new, old = record["new"], record["old"]
    commit_name, commit_id = new[-1]
    committed = _identity(os.path.join(out_dir, commit_name)) == commit_id
    if committed:
        for n, ident in new:  # after a power loss, a rename may be missing
            staged, target = os.path.join(run, _NEW, n), os.path.join(out_dir, n)
            if _identity(staged) == ident and not os.path.lexists(target):
                os.replace(staged, target)
        fsync_dir(out_dir)
        for n, ident in old:
            path = os.path.join(run, _OLD, n)
            if _identity(path) == ident:
                os.unlink(path)
        return True
    for n, ident in reversed(new):
        target = os.path.join(out_dir, n)
        if _identity(target) == ident:
            os.unlink(target)
    for n, ident in reversed(old):  # the old commit file last
        source, target = os.path.join(run, _OLD, n), os.path.join(out_dir, n)
        if _identity(source) == ident and not os.path.lexists(target):
            os.replace(source, target)
    fsync_dir(out_dir)
    return False


def _remove_run_folder(run: str, plan: dict[str, Any] | None, record: dict[str, Any] | None,
                       committed: bool) -> None:
    """Remove the run's own files (regular files of the names it recorded), then its
    folders; a folder that is not empty then is left."""
    staged = list(plan["new"]) if plan else []
    staged += [n for n, _ in record["new"]] if record else []
    for n in dict.fromkeys(staged):
        _unlink_regular(os.path.join(run, _NEW, n))
    for sub in (_NEW, _OLD):  # the records stay while anything is left in these
        path = os.path.join(run, sub)
        if os.path.lexists(path):
            _rmdir(path, run, "an old file could not be put back" if sub == _OLD
                   and not committed else "it holds files fastinit did not write")
    for n in (_COMMIT, _COMMIT + ".tmp", _PLAN, _PLAN + ".tmp"):
        _unlink_regular(os.path.join(run, n))
    _rmdir(run, run, "it holds files fastinit did not write")
    fsync_dir(os.path.dirname(run))


def _unlink_regular(path: str) -> None:
    if _identity(path) is not None:
        os.unlink(path)


def _rmdir(path: str, run: str, why: str) -> None:
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise OSError(exc.errno, f"{why} ({os.path.relpath(path, os.path.dirname(run))})") \
                from None
        raise


def _leave(run: str, why: str) -> None:
    warnings.warn(f"fastinit left {run!r} in place: {why}. Remove it once you have checked "
                  "what it holds.", RuntimeWarning, stacklevel=3)
