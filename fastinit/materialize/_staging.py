"""Atomic replacement of a set of files in a directory, crash-safe.

A run writes its files into a hidden staging directory of the output
directory, then commits: the old files it replaces or retires are moved into
a hidden backup directory (the commit file first, so no old checkpoint is
visible while the new one moves in), the new files are moved in (the commit
file last), and the backup is deleted. A run killed at any point leaves its
directories behind; the next run in that directory finds them by the dead
pid in their names and rolls the commit forward (it had moved its commit
file in) or back (the backup is restored). So the directory holds the old
set of files or the new one, never a mix, apart from the window of the
commit itself, during which the commit file (the index) is absent.
"""

import json
import os
import re
import secrets
import shutil

__all__ = ["Transaction", "STAGING_PREFIX", "BACKUP_PREFIX", "fsync_dir"]

STAGING_PREFIX = ".fastinit-tmp-"
BACKUP_PREFIX = ".fastinit-old-"
_MANIFEST = "manifest.json"
_NAME = re.compile(r"(?P<kind>" + re.escape(STAGING_PREFIX) + "|" + re.escape(BACKUP_PREFIX)
                   + r")(?P<pid>[0-9]{1,20})-(?P<token>[0-9a-f]+)(-.+)?", re.S)


def fsync_dir(path):
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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no process can have this number
        return False
    except OSError:  # alive, but not ours
        return True
    return True


class Transaction:
    """Stage files for ``out_dir`` and commit them all at once.

    Use :meth:`path` to write each new file into the staging directory, then
    :meth:`commit`; :meth:`close` (or leaving the ``with`` block) removes
    whatever was not committed.
    """

    def __init__(self, out_dir):
        out_dir = os.fspath(out_dir)
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise NotADirectoryError(f"The output path exists and is not a directory: "
                                     f"{out_dir!r}")
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.makedirs(out_dir, exist_ok=True)
            recover(out_dir)
            self.staging = os.path.join(out_dir, STAGING_PREFIX + self.token)
            os.mkdir(self.staging)
        except PermissionError as exc:
            raise PermissionError(f"The output directory {out_dir!r} is not writable: "
                                  f"{exc.strerror}. Nothing was written.") from None
        except OSError as exc:
            raise OSError(exc.errno, f"Cannot create the output directory {out_dir!r}: "
                                     f"{exc.strerror}. Nothing was written.") from None
        self.out_dir = out_dir
        self.committed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def path(self, name):
        """Where to write the new file ``name`` (a plain file name)."""
        return os.path.join(self.staging, name)

    def commit(self, names, retire=()):
        """Move the staged files ``names`` into place, the last one last (the commit file).

        Existing files of those names and the files ``retire`` (an old set's
        files that the new set does not have) are moved aside first and deleted
        after the commit. Returns the paths of the new files.
        """
        names = list(names)
        old = [n for n in [names[-1], *retire, *names[:-1]]
               if os.path.lexists(os.path.join(self.out_dir, n))]
        old = list(dict.fromkeys(old))
        backup = os.path.join(self.out_dir, BACKUP_PREFIX + self.token)
        os.mkdir(backup)
        _write_json(os.path.join(backup, _MANIFEST), {"new": names, "old": old})
        fsync_dir(backup)
        for name in old:      # the old commit file first: no old set is visible from now
            os.replace(os.path.join(self.out_dir, name), os.path.join(backup, name))
        for name in names:    # the new commit file last
            os.replace(self.path(name), os.path.join(self.out_dir, name))
        fsync_dir(self.out_dir)
        self.committed = True
        shutil.rmtree(backup, ignore_errors=True)
        return [os.path.join(self.out_dir, n) for n in names]

    def close(self):
        shutil.rmtree(self.staging, ignore_errors=True)


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())


def recover(out_dir):
    """Finish or undo what dead runs left in ``out_dir`` (their staging and backup folders)."""
    entries = os.listdir(out_dir)
    for entry in entries:
        m = _NAME.fullmatch(entry)
        if not m or m["kind"] != BACKUP_PREFIX or m.group(4) or _pid_alive(int(m["pid"])):
            continue
        backup = os.path.join(out_dir, entry)
        staging = os.path.join(out_dir, STAGING_PREFIX + f"{m['pid']}-{m['token']}")
        try:
            with open(os.path.join(backup, _MANIFEST), encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError):  # died before its manifest: nothing was moved
            manifest = {"new": [], "old": []}
        new, old = manifest.get("new", []), manifest.get("old", [])
        if new and os.path.lexists(os.path.join(staging, new[-1])):
            # The new commit file never moved in: undo (new files out, old ones back).
            for name in new:
                target = os.path.join(out_dir, name)
                if not os.path.lexists(os.path.join(staging, name)) and os.path.lexists(target):
                    os.unlink(target)
            for name in old:
                source = os.path.join(backup, name)
                if os.path.lexists(source):
                    os.replace(source, os.path.join(out_dir, name))
            fsync_dir(out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    for entry in entries:
        m = _NAME.fullmatch(entry)
        if m and m["kind"] == STAGING_PREFIX and not _pid_alive(int(m["pid"])):
            path = os.path.join(out_dir, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:  # a single staged file (fastinit.dask.store_npy)
                try:
                    os.unlink(path)
                except OSError:
                    pass
