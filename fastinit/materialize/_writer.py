"""The checkpoint engine: files produced chunk by chunk into aligned buffers, written
with direct I/O where the file system allows it, generation and writes overlapped.

A file is a byte stream: its header, then its tensors back to back. The stream is cut
into chunks of ``chunk_bytes`` (a multiple of :data:`ALIGN`); each chunk is filled in
one of a few page-aligned reusable buffers (elements generated in place by fastinit's
kernels on its thread pool; an element that a chunk boundary splits, or a tensor whose
start is not aligned for its dtype, through a small scratch array) and handed to the
writer threads, which ``pwrite`` it at its offset while the next chunk is generated.

Files are opened buffered and switched to ``O_DIRECT`` where the file system takes it
(not tmpfs before Linux 6.6, for one; never with ``FASTINIT_DIRECT_IO=0``): every write is then a whole number of aligned blocks from an
aligned buffer at an aligned offset, the last one padded with zeros and the file cut
to its size at the end, and the data bypass the page cache. Where ``O_DIRECT`` is
refused (at the switch or by a write) the same writes go through the page cache: the
same bytes either way. Each file is fsync-ed and closed by the writer thread that
finishes its last write, while the producer goes on with the next file, so more than
one file is in flight.

The writer threads own the descriptors: a file is closed only after its last queued
write. After any error, queued writes are dropped and :meth:`Engine.close` waits for
the writes in flight, so no chunk reaches a descriptor number that was reused.
"""

from __future__ import annotations

import errno
import math
import mmap
import os
import queue
import threading
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np

from ._signals import held

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import numpy.typing as npt

    from .._progress import Progress
    from .._typing import Backend

    Bytes = npt.NDArray[np.uint8]
    #: A queued write: the file, its offset, the buffer (None: the file's last item) and
    #: the bytes of it to write; None stops a writer thread.
    Work = Union[tuple["_File", int, Union[Bytes, None], int], None]

__all__ = ["Engine", "TensorLike", "ALIGN", "N_BUFFERS", "N_WRITERS", "flat_boxes"]

ALIGN = 4096  # bytes: O_DIRECT's offsets, lengths and buffer addresses (>= any block size)
N_BUFFERS = 4
N_WRITERS = 2


class TensorLike(Protocol):
    """What the engine (and the safetensors layout) need of a tensor: a
    ``fastinit.materialize._spec.TensorSpec``."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def initializer(self) -> Callable[..., Any]: ...

    @property
    def stream(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


def flat_boxes(shape: Sequence[int], start: int, stop: int
               ) -> Iterator[tuple[tuple[int | slice, ...], tuple[int, ...]]]:
    """``(index, box_shape)`` covering flat C-order elements ``[start, stop)`` of ``shape``
    in order, each box contiguous (at most ``2 * ndim - 1`` of them).

    >>> [i for i, _ in flat_boxes((3, 4), 2, 11)]
    [(0, slice(2, 4, None)), (slice(1, 2, None),), (2, slice(0, 3, None))]
    """
    if start >= stop:
        return
    if not shape:
        yield (), ()
        return
    inner = math.prod(shape[1:])
    first, head = divmod(start, inner)
    last, tail = divmod(stop, inner)
    if first == last:
        for index, box in flat_boxes(shape[1:], head, tail):
            yield (first,) + index, box
        return
    if head:
        for index, box in flat_boxes(shape[1:], head, inner):
            yield (first,) + index, box
        first += 1
    if last > first:
        yield (slice(first, last),), (last - first,) + tuple(shape[1:])
    if tail:
        for index, box in flat_boxes(shape[1:], 0, tail):
            yield (last,) + index, box


class _Aborted(Exception):
    """Set as the engine's error when the producer failed: queued writes are dropped."""


class _File:
    """A file being written: its descriptor (owned by the writer threads once queued)."""

    def __init__(self, path: str, size: int, direct: bool = True) -> None:
        self.path, self.size = path, size
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                          | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            self.direct = direct and _enable_direct(self.fd)
        except BaseException:
            os.close(self.fd)
            raise
        self.pending = 1  # writes queued and not done, plus one until the last is queued
        self.lock = threading.Lock()
        self.buffered = threading.Lock()  # buffered writes to one file go one at a time


def _enable_direct(fd: int) -> bool:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
        return True
    except (ImportError, OSError):  # tmpfs, some network file systems
        return False


def _pwrite(fd: int, data: memoryview, offset: int) -> int:
    """``os.pwrite``; where the platform lacks it (Windows: no direct I/O either, so every
    write to a file holds that file's lock), a seek and a write."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - not POSIX
    return os.write(fd, data)  # pragma: no cover


def _disable_direct(fd: int) -> None:
    import fcntl
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


class Engine:
    """Writes files (header bytes and :class:`TensorSpec` tensors) through reusable aligned
    buffers and writer threads. :meth:`write_file` returns when the file's last chunk is
    queued; :meth:`finish` waits until every file is written, fsync-ed and closed."""

    def __init__(self, chunk_bytes: int, backend: Backend = "auto",
                 progress: Progress | None = None, n_buffers: int = N_BUFFERS,
                 n_writers: int = N_WRITERS, direct: bool = True) -> None:
        self.chunk = max(ALIGN, chunk_bytes - chunk_bytes % ALIGN)
        # FASTINIT_DIRECT_IO=0: the page cache always (a file system that takes O_DIRECT
        # but misbehaves with it; the benchmark of the buffered path)
        direct = direct and os.environ.get("FASTINIT_DIRECT_IO", "1") != "0"
        self.backend, self.progress, self.direct = backend, progress, direct
        self._maps = [mmap.mmap(-1, self.chunk) for _ in range(n_buffers)]  # page-aligned
        self.free: queue.Queue[Bytes] = queue.Queue()
        for m in self._maps:
            self.free.put(np.frombuffer(m, dtype=np.uint8))
        self.todo: queue.Queue[Work] = queue.Queue()
        self.error: BaseException | None = None
        self._scratch: Bytes | None = None
        self._whole_of: TensorLike | None = None
        self._whole_bytes: Bytes | None = None
        self.threads = [threading.Thread(target=self._run, name=f"fastinit-writer-{i}",
                                         daemon=True) for i in range(n_writers)]
        for t in self.threads:
            t.start()

    # -- writer threads ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self.todo.get()
            if item is None:
                return
            f, offset, buf, n = item
            try:
                if self.error is None:
                    self._pwrite(f, buf, n, offset)
            except BaseException as exc:  # noqa: BLE001 - reported by the producer
                self.error = self.error or exc
            finally:
                if buf is not None:
                    self.free.put(buf)
                self._done(f)

    def _pwrite(self, f: _File, buf: Bytes | None, n: int, offset: int) -> None:
        if buf is None:
            return
        if f.direct:
            self._pwrite_blocks(f, buf, n, offset)
            return
        with f.buffered:  # the page cache serialises writes to a file anyway: one at a time
            self._pwrite_blocks(f, buf, n, offset)

    def _pwrite_blocks(self, f: _File, buf: Bytes, n: int, offset: int) -> None:
        length = n
        if f.direct:
            length = -(-n // ALIGN) * ALIGN  # whole blocks: the padding is cut at the end
            buf[n:length] = 0
        view = buf.data[:length]
        while view:
            try:
                written = _pwrite(f.fd, view, offset)
            except OSError as exc:
                if not f.direct or exc.errno != errno.EINVAL:  # direct I/O refused here
                    raise
                _disable_direct(f.fd)
                f.direct = False
                view = view[:n - (length - len(view))]
                continue
            view, offset = view[written:], offset + written

    def _done(self, f: _File) -> None:
        with f.lock:
            f.pending -= 1
            last = f.pending == 0
        if last:
            self._close(f)

    def _close(self, f: _File) -> None:
        """The file's last write is done: cut the padding, fsync, close (its thread)."""
        try:
            if self.error is None:
                os.ftruncate(f.fd, f.size)
                os.fsync(f.fd)
        except BaseException as exc:  # noqa: BLE001
            self.error = self.error or exc
        finally:
            os.close(f.fd)
            f.fd = -1  # closed

    # -- the producer ----------------------------------------------------------------------

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def _buffer(self) -> Bytes:
        self._check()
        buf = self.free.get()
        if self.error is not None:
            self.free.put(buf)
            self._check()
        return buf

    def write_file(self, path: str, header: bytes, tensors: Sequence[TensorLike]) -> None:
        """Queue the file ``path``: ``header`` bytes, then ``tensors`` back to back."""
        self._check()
        segments: list[tuple[int, bytes | TensorLike]] = [(0, bytes(header))]
        size = len(header)
        for t in tensors:
            segments.append((size, t))
            size += t.nbytes
        # Signals are held where a Ctrl-C would leave a descriptor that nothing closes: from
        # the open to the assignment, between counting a write and queueing it, and while
        # queueing the close.
        f = None
        try:
            with held():
                f = _File(path, size, self.direct)
            for start in range(0, size, self.chunk):
                n = min(self.chunk, size - start)
                buf = self._buffer()
                try:
                    self._fill(buf, start, n, segments)
                except BaseException:
                    self.free.put(buf)
                    raise
                with held():
                    with f.lock:
                        f.pending += 1
                    self.todo.put((f, start, buf, n))
                if self.progress is not None:
                    self.progress.update(n)
        finally:  # the writer threads close it after its last queued write
            if f is not None:
                with held():
                    self.todo.put((f, 0, None, 0))

    def _fill(self, buf: Bytes, start: int, n: int,
              segments: list[tuple[int, bytes | TensorLike]]) -> None:
        stop = start + n
        for offset, item in segments:
            end = offset + (len(item) if isinstance(item, bytes) else item.nbytes)
            if end <= start or offset >= stop or end == offset:
                continue
            a, b = max(start, offset), min(stop, end)
            if isinstance(item, bytes):
                buf[a - start:b - start] = np.frombuffer(item, np.uint8)[a - offset:b - offset]
            else:
                self._fill_tensor(buf[a - start:b - start], item, a - offset, b - offset)

    def _fill_tensor(self, dst: Bytes, t: TensorLike, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` of tensor ``t`` into ``dst``."""
        from .. import sharding
        if not sharding.is_elementwise(t.initializer):
            dst[:] = self._whole(t)[lo:hi]
            return
        k = t.dtype.itemsize
        first, last = -(-lo // k), hi // k  # the elements whole in [lo, hi)
        if first < last:
            inner = dst[first * k - lo:last * k - lo]
            if inner.ctypes.data % k == 0:  # in place (the tensor starts aligned)
                self._generate(t, first, last, inner.view(t.dtype))
            else:
                scratch = self._scratch_of(inner.size)
                self._generate(t, first, last, scratch.view(t.dtype))
                inner[:] = scratch
        for e in {lo // k, (hi - 1) // k}:  # elements cut by a chunk boundary
            a, b = max(lo, e * k), min(hi, (e + 1) * k)
            if b - a < k:
                one = np.empty(1, t.dtype)
                self._generate(t, e, e + 1, one)
                dst[a - lo:b - lo] = one.view(np.uint8)[a - e * k:b - e * k]

    def _generate(self, t: TensorLike, first: int, last: int, out: npt.NDArray[Any]) -> None:
        from ..initializers.base import call_initializer
        pos = 0
        for index, box in flat_boxes(t.shape, first, last):
            size = math.prod(box)
            call_initializer(t.initializer, t.shape, t.dtype,
                             out=out[pos:pos + size].reshape(box), index=index,
                             stream=t.stream, backend=self.backend)
            pos += size

    def _whole(self, t: TensorLike) -> Bytes:
        """A tensor computed whole (orthogonal, ...), kept while its bytes are copied."""
        from ..initializers.base import call_initializer
        if self._whole_of is not t or self._whole_bytes is None:
            self._whole_bytes = None  # free the previous one first
            whole = call_initializer(t.initializer, t.shape, t.dtype, stream=t.stream,
                                     backend=self.backend)
            self._whole_bytes = np.ascontiguousarray(whole).reshape(-1).view(np.uint8)
            self._whole_of = t
        return self._whole_bytes

    def _scratch_of(self, n: int) -> Bytes:
        """``n`` aligned bytes for a tensor whose start is not aligned for its dtype (an
        odd-sized tensor before it): generated there, then copied."""
        if self._scratch is None or self._scratch.size < n:
            self._scratch = np.empty(max(n, ALIGN), dtype=np.uint8)
        return self._scratch[:n]

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """Wait until every queued file is written, fsync-ed and closed; raise any error."""
        self.close()
        self._check()

    def abort(self) -> None:
        """Drop what is queued, wait for the writes in flight and close every file."""
        self.error = self.error or _Aborted("the run failed")
        self.close()

    def close(self) -> None:
        """Stop the writer threads after what is queued (dropped after an error)."""
        for _ in self.threads:
            self.todo.put(None)
        for t in self.threads:
            t.join()
        self.threads = []
        self._whole_bytes = self._whole_of = None
