"""Staging, writing and committing a checkpoint's files, shared by every writer of
:mod:`fastinit.materialize` (specs, ``.npy`` files, torch modules).

:func:`write_safetensors` lays tensors out in safetensors files (and the
index), checks the disk and memory first, writes through the
:class:`~fastinit.materialize._writer.Engine` in a staging directory
and commits the set atomically (:class:`~fastinit.materialize._staging.Transaction`).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from .. import _progress
from .._checks import check_flag
from .._system import available_memory
from ._lock import check_timeout
from ._plan import Plan, free_space
from ._safetensors import INDEX_SUFFIX, header, index, plan_files, shard_pattern
from ._spec import check_file_names
from ._staging import Transaction
from ._writer import ALIGN, N_BUFFERS, Engine

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .._typing import Backend, StrPath
    from ._spec import TensorSpec
    from ._staging import Retired

__all__ = ["run", "write_safetensors", "chunk_size", "check_prefix", "write_bytes"]


def write_safetensors(out_dir: StrPath, tensors: Sequence[TensorSpec],
                      metadata: Mapping[str, object], *, max_shard_size: int | None = None,
                      prefix: str = "model", chunk_bytes: int, backend: Backend = "auto",
                      progress: bool | None = None, check_space: bool = True,
                      extra: Sequence[tuple[str, str]] = (), lock_timeout: float | None = 0.0,
                      dry_run: bool = False) -> list[str] | Plan:
    """Write ``tensors`` (:class:`~fastinit.materialize._spec.TensorSpec`) as a safetensors
    checkpoint in ``out_dir``, with the text files ``extra`` (``(name, text)`` pairs, such
    as a ``config.json``) in the same commit. Returns the paths written (``dry_run``: the
    :class:`~fastinit.materialize._plan.Plan`, nothing written)."""
    chunk_bytes = chunk_size(chunk_bytes)
    check_prefix(prefix)
    files = plan_files(tensors, max_shard_size, prefix)
    headers = [header(group, metadata) for _, group in files]  # size limits checked here
    texts = [(name, text.encode("utf-8")) for name, text in extra]
    if len(files) > 1:
        texts.append((prefix + INDEX_SUFFIX, index(files).encode("utf-8")))
    sizes = [(name, len(text)) for name, text in texts[:len(extra)]]
    sizes += [(name, len(head) + sum(t.nbytes for t in group))
              for (name, group), head in zip(files, headers)]
    sizes += [(name, len(text)) for name, text in texts[len(extra):]]  # the index last

    def write(staging: Transaction, engine: Engine) -> None:
        for name, text in texts:
            write_bytes(staging.path(name), text)
        for (name, group), head in zip(files, headers):
            engine.write_file(staging.path(name), head, group)

    return run(out_dir, tensors, sizes, write, chunk_bytes=chunk_bytes, backend=backend,
               progress=progress, check_space=check_space, retired=_retired(prefix),
               lock_timeout=lock_timeout, dry_run=dry_run)


def _retired(prefix: str) -> Retired:
    """The files of an earlier checkpoint with ``prefix`` in a directory listing (replaced
    whole), its commit file (the index) first."""
    pattern = shard_pattern(prefix)

    def retired(listing: list[str]) -> list[str]:
        index = [f for f in listing if f == prefix + INDEX_SUFFIX]
        return index + sorted(f for f in listing if pattern.fullmatch(f))
    return retired


def check_flags(progress: object, check_space: object, dry_run: object) -> None:
    """The yes/no options of every writer, checked before anything is written."""
    check_flag(progress, "progress", allow_none=True)
    check_flag(check_space, "check_space")
    check_flag(dry_run, "dry_run")


def run(out_dir: StrPath, tensors: Sequence[TensorSpec], files: Sequence[tuple[str, int]],
        write: Callable[[Transaction, Engine], None], *, chunk_bytes: int, backend: Backend,
        progress: bool | None, check_space: bool, retired: Retired | None = None,
        lock_timeout: float | None = 0.0, dry_run: bool = False) -> list[str] | Plan:
    """Stage, write (``write(staging, engine)``) and commit ``files`` (``(name, bytes)``,
    the commit file last) in ``out_dir``, holding its lock (``lock_timeout`` seconds of
    waiting for another run, None: no limit). ``dry_run``: the
    :class:`~fastinit.materialize._plan.Plan`, nothing written."""
    check_timeout(lock_timeout)
    check_flags(progress, check_space, dry_run)
    total = sum(n for _, n in files)
    if dry_run:
        return Plan(os.fspath(out_dir), tuple(files), tuple(tensors), chunk_bytes, N_BUFFERS,
                    backend)
    if check_space:
        check_resources(out_dir, tensors, total, chunk_bytes)
    enabled = _progress.enabled_by_default() if progress is None else bool(progress)
    staging = Transaction(out_dir, [name for name, _ in files], retired, lock_timeout)
    bar = _progress.Progress(total, enabled=enabled, desc="fastinit materialize", unit="B")
    try:
        staging.open()  # waiting for the lock, a signal is delivered at once
        engine = Engine(chunk_bytes, backend, bar)
        try:
            write(staging, engine)
            engine.finish()
        except BaseException:
            engine.abort()
            raise
        return staging.commit()
    finally:
        staging.close()
        bar.close()


def chunk_size(chunk_bytes: Any) -> int:
    try:
        value = float(chunk_bytes)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 4096 or value >= 1 << 40:
        raise ValueError("chunk_bytes must be a number of bytes in [4096, 2**40). "
                         f"Received: chunk_bytes={chunk_bytes!r}")
    value = int(value)
    return value - value % ALIGN  # whole blocks: direct I/O


def check_prefix(prefix: object) -> None:
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string. Received: prefix={prefix!r}")
    check_file_names([prefix], ".safetensors")


def check_resources(out_dir: StrPath, tensors: Sequence[TensorSpec], total: int,
                    chunk_bytes: int) -> None:
    """Refuse, before writing, a run that cannot fit on the disk or in memory."""
    from .. import sharding
    directory, free = free_space(out_dir)
    if free is not None and total > free:
        raise ValueError(f"The files need {total / 2**30:.2f} GiB but {directory!r} has "
                         f"{free / 2**30:.2f} GiB free (pass check_space=False or "
                         f"--no-space-check to try anyway). Nothing was written.")
    memory = available_memory()
    whole = [t for t in tensors if not sharding.is_elementwise(t.initializer)]
    need = max((2 * t.nbytes for t in whole), default=0) + N_BUFFERS * chunk_bytes
    if memory is not None and whole and need > memory:
        big = max(whole, key=lambda t: t.nbytes)
        raise ValueError(f"Tensor {big.name!r} ({type(big.initializer).__name__}, computed "
                         f"whole) needs about {need / 2**30:.2f} GiB of memory but "
                         f"{memory / 2**30:.2f} GiB are available (pass check_space=False "
                         "or --no-space-check to try anyway). Nothing was written.")


def write_bytes(path: StrPath, data: bytes) -> None:
    """A small file, written whole and fsync-ed (configs, the index)."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
