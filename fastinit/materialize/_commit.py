"""Staging, writing and committing a checkpoint's files, shared by every writer of
:mod:`fastinit.materialize` (specs, ``.npy`` files, torch modules).

:func:`write_safetensors` lays tensors out in safetensors files (and the
index), checks the disk and memory first, writes through the
:class:`~fastinit.materialize._writer.Writer` thread in a staging directory
and commits the set atomically (:class:`~fastinit.materialize._staging.Transaction`).
"""

import math
import os
import shutil

from .. import _progress
from .._system import available_memory
from ._lock import check_timeout
from ._safetensors import INDEX_SUFFIX, header, index, plan_files, shard_pattern
from ._signals import held
from ._spec import check_file_names
from ._staging import Transaction
from ._writer import Writer, write_file

__all__ = ["run", "write_safetensors", "chunk_size", "check_prefix", "write_text", "free_space"]


def write_safetensors(out_dir, tensors, metadata, *, max_shard_size=None, prefix="model",
                      chunk_bytes, backend="auto", progress=None, check_space=True,
                      extra=(), lock_timeout=0.0):
    """Write ``tensors`` (:class:`~fastinit.materialize._spec.TensorSpec`) as a safetensors
    checkpoint in ``out_dir``, with the files ``extra`` (``(name, write(path))`` pairs,
    such as a ``config.json``) in the same commit. Returns the paths written."""
    chunk_bytes = chunk_size(chunk_bytes)
    check_prefix(prefix)
    files = plan_files(tensors, max_shard_size, prefix)
    headers = [header(group, metadata) for _, group in files]  # size limits checked here
    names = [name for name, _ in extra] + [name for name, _ in files]
    if len(files) > 1:
        names.append(prefix + INDEX_SUFFIX)
    total = sum(t.nbytes for t in tensors)

    def write(staging, writer, bar):
        for name, write_extra in extra:
            write_extra(staging.path(name))
        for (name, group), head in zip(files, headers):
            write_file(staging.path(name), head, group, writer, chunk_bytes, backend, bar)
        if len(files) > 1:
            write_text(staging.path(prefix + INDEX_SUFFIX), index(files))

    return run(out_dir, tensors, total + sum(map(len, headers)), check_space, chunk_bytes,
               progress, names, _retired(prefix), write, lock_timeout)


def _retired(prefix):
    """The files of an earlier checkpoint with ``prefix`` in a directory listing (replaced
    whole), its commit file (the index) first."""
    pattern = shard_pattern(prefix)

    def retired(listing):
        index = [f for f in listing if f == prefix + INDEX_SUFFIX]
        return index + sorted(f for f in listing if pattern.fullmatch(f))
    return retired


def run(out_dir, tensors, total, check_space, chunk_bytes, progress, names, retired, write,
        lock_timeout=0.0):
    """Stage, write and commit ``names`` (the last one last) in ``out_dir``, holding its
    lock (``lock_timeout`` seconds of waiting for another run, None: no limit)."""
    check_timeout(lock_timeout)
    if check_space:
        check_resources(out_dir, tensors, total, chunk_bytes)
    enabled = _progress.enabled_by_default() if progress is None else bool(progress)
    bar = _progress.Progress(total, enabled=enabled, desc="fastinit materialize", unit="B")
    staging = None
    try:
        with held():  # a signal cannot fall between the lock being taken and ``staging``
            staging = Transaction(out_dir, names, retired, lock_timeout)
        writer = Writer(chunk_bytes)
        try:
            write(staging, writer, bar)
        finally:
            writer.close()
        return staging.commit()
    finally:
        if staging is not None:
            staging.close()
        bar.close()


def chunk_size(chunk_bytes):
    try:
        value = float(chunk_bytes)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 4096 or value >= 1 << 40:
        raise ValueError("chunk_bytes must be a number of bytes in [4096, 2**40). "
                         f"Received: chunk_bytes={chunk_bytes!r}")
    value = int(value)
    return value - value % 8


def check_prefix(prefix):
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string. Received: prefix={prefix!r}")
    check_file_names([prefix], ".safetensors")


def check_resources(out_dir, tensors, total, chunk_bytes):
    """Refuse, before writing, a run that cannot fit on the disk or in memory."""
    from .. import sharding
    directory, free = free_space(out_dir)
    if free is not None and total > free:
        raise ValueError(f"The files need {total / 2**30:.2f} GiB but {directory!r} has "
                         f"{free / 2**30:.2f} GiB free (pass check_space=False or "
                         f"--no-space-check to try anyway). Nothing was written.")
    memory = available_memory()
    whole = [t for t in tensors if not sharding.is_elementwise(t.initializer)]
    need = max((2 * t.nbytes for t in whole), default=0) + 3 * chunk_bytes
    if memory is not None and whole and need > memory:
        big = max(whole, key=lambda t: t.nbytes)
        raise ValueError(f"Tensor {big.name!r} ({type(big.initializer).__name__}, computed "
                         f"whole) needs about {need / 2**30:.2f} GiB of memory but "
                         f"{memory / 2**30:.2f} GiB are available (pass check_space=False "
                         "or --no-space-check to try anyway). Nothing was written.")


def free_space(out_dir):
    """``(directory, free bytes or None)`` of ``out_dir``, or of its nearest existing parent."""
    directory = os.path.abspath(os.fspath(out_dir))
    while not os.path.isdir(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    try:
        return directory, shutil.disk_usage(directory).free
    except OSError:  # pragma: no cover - reported when the files are opened
        return directory, None


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
