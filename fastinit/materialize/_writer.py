"""Producing tensors chunk by chunk into reusable buffers, written by a background thread."""

import math
import os
import queue
import threading

import numpy as np

from .. import _region, sharding

__all__ = ["Writer", "write_tensor", "N_BUFFERS"]

N_BUFFERS = 3


class Writer:
    """Writes filled buffers to file descriptors in a background thread (double buffering).

    The thread also closes each file (:meth:`close_file`), after everything queued for
    it: a descriptor is never closed with writes pending, so no queued chunk can reach
    another file that is given the same number. After an error, queued chunks are
    dropped.
    """

    def __init__(self, chunk_bytes, n_buffers=N_BUFFERS):
        self.free = queue.Queue()
        self.n_buffers = n_buffers
        for _ in range(n_buffers):
            self.free.put(np.empty(chunk_bytes, dtype=np.uint8))
        self.todo = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="fastinit-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.todo.get()
            if item is None:
                return
            fd, buf, n = item
            if buf is None:  # close_file
                os.close(fd)
                continue
            try:
                if self.error is None:
                    view = memoryview(buf)[:n]
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
            except BaseException as exc:  # noqa: BLE001 - reported in the main thread
                self.error = exc
            finally:
                self.free.put(buf)

    def buffer(self):
        self._check()
        return self.free.get()

    def submit(self, fd, buf, n):
        self._check()
        self.todo.put((fd, buf, n))

    def close_file(self, fd):
        """Close ``fd`` once everything queued for it is done (or dropped)."""
        self.todo.put((fd, None, 0))

    def write(self, fd, data):
        """Queue a copy of small ``data`` (bytes) through the buffers, in order."""
        data = memoryview(data).cast("B")
        pos = 0
        while pos < len(data):
            buf = self.buffer()
            n = min(len(buf), len(data) - pos)
            buf[:n] = np.frombuffer(data[pos:pos + n], dtype=np.uint8)
            self.submit(fd, buf, n)
            pos += n

    def drain(self):
        """Wait until everything queued is written; raise the writer's error if any."""
        bufs = [self.free.get() for _ in range(self.n_buffers)]
        for b in bufs:
            self.free.put(b)
        self._check()

    def close(self):
        self.todo.put(None)
        self.thread.join()

    def _check(self):
        if self.error is not None:
            raise self.error


def write_tensor(t, fd, writer, chunk_bytes, backend, progress):
    """Stream tensor ``t`` to ``fd`` through the writer's buffers."""
    from ..initializers.base import call_initializer

    if t.nbytes == 0:
        return
    if not sharding.is_elementwise(t.initializer):
        whole = np.ascontiguousarray(call_initializer(
            t.initializer, t.shape, t.dtype, stream=t.stream, backend=backend))
        raw = whole.reshape(-1).view(np.uint8)
        for pos in range(0, raw.size, chunk_bytes):
            buf = writer.buffer()
            n = min(chunk_bytes, raw.size - pos)
            buf[:n] = raw[pos:pos + n]
            writer.submit(fd, buf, n)
            progress.update(n)
        return
    for index, region_shape in _region.boxes(t.shape, chunk_bytes // t.dtype.itemsize):
        buf = writer.buffer()
        n = math.prod(region_shape) * t.dtype.itemsize
        out = buf[:n].view(t.dtype).reshape(region_shape)
        call_initializer(t.initializer, t.shape, t.dtype, out=out, index=index,
                         stream=t.stream, backend=backend)
        writer.submit(fd, buf, n)
        progress.update(n)


def write_file(path, header, tensors, writer, chunk_bytes, backend, progress):
    """Write a file: ``header`` bytes, then ``tensors`` one after the other, fsync-ed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        writer.write(fd, header)
        for t in tensors:
            write_tensor(t, fd, writer, chunk_bytes, backend, progress)
        writer.drain()
        os.fsync(fd)
    finally:
        writer.close_file(fd)
