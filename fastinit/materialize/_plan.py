"""What a checkpoint run would write and need, without writing (``--dry-run``).

A :class:`Plan` lists the files (names and bytes, in commit order) and the tensors; its
:meth:`~Plan.describe` adds the memory the run needs (this process now, with its plan,
plus the engine's buffers and any tensor computed whole) and an estimated time from the
generation rate measured here on a short fill of the plan's main dtype. The disk's
write speed is not measured (that would write): the time is the generation bound,
which a disk slower than it lengthens.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .._typing import Backend, StrPath
    from ._spec import TensorSpec

__all__ = ["Plan", "free_space"]


@dataclass(frozen=True)
class Plan:
    """The files of a run (``(name, bytes)``, the commit file last) and its tensors."""

    out_dir: str
    files: tuple[tuple[str, int], ...]
    tensors: tuple[TensorSpec, ...]
    chunk_bytes: int
    n_buffers: int
    backend: Backend = "auto"

    @property
    def total(self) -> int:
        return sum(n for _, n in self.files)

    @property
    def whole_bytes(self) -> int:
        """The largest tensor computed whole (orthogonal, ...): held in memory once."""
        from .. import sharding
        return max((t.nbytes for t in self.tensors
                    if not sharding.is_elementwise(t.initializer)), default=0)

    def memory(self) -> int:
        """Bytes of memory the run needs: this process now, the buffers, whole tensors."""
        return _rss() + self.n_buffers * self.chunk_bytes + 2 * self.whole_bytes

    def generation_rate(self, seconds: float = 0.3) -> float | None:
        """Bytes per second of the kernels filling the plan's main dtype (a normal fill)."""
        import numpy as np

        import fastinit.random as fr
        by_dtype: dict[np.dtype[Any], int] = {}
        for t in self.tensors:
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.nbytes
        if not by_dtype:
            return None
        dtype = max(by_dtype, key=lambda d: by_dtype[d])
        if dtype.kind != "f" and dtype.name != "bfloat16":
            return None
        buf = np.empty(min(self.chunk_bytes, 64 << 20) // dtype.itemsize, dtype)
        fr.normal(out=buf[:16], seed=0, backend=self.backend)  # load the kernel
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fr.normal(out=buf, seed=0, offset=done // dtype.itemsize, backend=self.backend)
            done += buf.nbytes
        return done / (time.perf_counter() - start)

    def describe(self) -> str:
        """A few lines: files, bytes, memory, estimated time."""
        lines = [f"fastinit materialize --dry-run: nothing written to {self.out_dir!r}"]
        width = max((len(n) for n, _ in self.files), default=0)
        for name, n in self.files:
            lines.append(f"  {name:<{width}}  {_size(n):>10}")
        lines.append(f"{len(self.files)} files, {_size(self.total)} ({self.total:,} bytes), "
                     f"{len(self.tensors)} tensors")
        rate = self.generation_rate()  # first: the kernels it loads count in the memory
        where, free = free_space(self.out_dir)
        if free is not None:
            lines.append(f"disk: {_size(free)} free at {where!r}"
                         + ("" if free >= self.total else "  (NOT ENOUGH)"))
        lines.append(f"memory: about {_size(self.memory())} (this process with its plan, "
                     f"{self.n_buffers} buffers of {_size(self.chunk_bytes)}"
                     + (f", {_size(self.whole_bytes)} computed whole twice" if self.whole_bytes
                        else "") + ")")
        if rate:
            lines.append(f"time: about {self.total / rate:,.1f} s to write at the generation rate "
                         f"measured here ({rate / 1e9:.2f} GB/s), more if the disk is slower")
        return "\n".join(lines)


def free_space(out_dir: StrPath) -> tuple[str, int | None]:
    """``(directory, free bytes or None)`` of ``out_dir``, or of its nearest existing parent."""
    directory = os.path.abspath(os.fspath(out_dir))
    while not os.path.isdir(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    try:
        return directory, shutil.disk_usage(directory).free
    except OSError:  # pragma: no cover - reported when the files are opened
        return directory, None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1024
    return f"{n:,.2f} TiB"


def _rss() -> int:
    """This process's resident memory (Linux), else 0."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0
