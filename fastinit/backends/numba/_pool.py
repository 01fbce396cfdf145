"""A small thread pool for kernels that release the GIL.

:func:`run` splits ``n`` items (tasks of a kernel) into chunks of consecutive
items and runs ``work(start, stop)`` on them, on the calling thread and on up
to ``threads - 1`` pool threads. Chunks are handed out one at a time, so a
thread slowed down by other work on the machine takes fewer of them; which
thread ran which chunk never changes a result (kernels compute each element
from its flat index alone).

Calls from several Python threads at once each get their own job and share
the pool threads; the calling thread always works on its own job, so a call
never waits for a pool thread to become free. The pool threads are created
on first use and do not survive ``fork``: a forked child starts with an empty
pool (``os.register_at_fork``), and creates its own threads when it needs
them.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    #: ``work(start, stop)``: one chunk of items.
    Work = Callable[[int, int], object]


class _Job:
    __slots__ = ("work", "n", "chunk", "next", "running", "lock", "done", "error")

    def __init__(self, work: Work, n: int, chunk: int) -> None:
        self.work, self.n, self.chunk = work, n, chunk
        self.next = 0
        self.running = 0
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.error: BaseException | None = None

    def _take(self) -> tuple[int, int] | None:
        with self.lock:
            start = self.next
            if start >= self.n or self.error is not None:
                return None
            self.next = min(self.n, start + self.chunk)
            self.running += 1
            return start, self.next

    def _finish(self, error: BaseException | None) -> None:
        with self.lock:
            self.running -= 1
            if error is not None and self.error is None:
                self.error = error
            if self.running == 0 and (self.next >= self.n or self.error is not None):
                self.done.notify_all()

    def work_on(self) -> None:
        """Run chunks of this job until none is left."""
        while True:
            chunk = self._take()
            if chunk is None:
                return
            error = None
            try:
                self.work(*chunk)
            except BaseException as exc:  # re-raised in the calling thread
                error = exc
            self._finish(error)

    def wait(self) -> None:
        with self.lock:
            while self.running:
                self.done.wait()
        if self.error is not None:
            raise self.error


class _Pool:
    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def _worker(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job.work_on()

    def ensure(self, helpers: int) -> None:
        if len(self.threads) >= helpers:
            return
        with self.lock:
            while len(self.threads) < helpers:
                t = threading.Thread(target=self._worker, name=f"fastinit-{len(self.threads)}",
                                     daemon=True)
                t.start()
                self.threads.append(t)


_pool = _Pool()


def _reset_after_fork() -> None:
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def run(work: Work, n: int, threads: int, chunk: int) -> None:
    """``work(start, stop)`` over ``0 .. n-1`` in chunks of ``chunk`` items, on ``threads``
    threads (the calling one included); returns when all are done.

    With one thread, or a single chunk, everything runs on the calling thread.
    """
    if n <= 0:
        return
    chunk = max(1, int(chunk))
    helpers = min(threads, -(-n // chunk)) - 1
    if helpers <= 0:
        work(0, n)
        return
    pool = _pool
    pool.ensure(helpers)
    job = _Job(work, n, chunk)
    for _ in range(helpers):
        pool.jobs.put(job)
    job.work_on()
    job.wait()


def pool_threads() -> list[threading.Thread]:
    """The pool threads alive now (for tests)."""
    return [t for t in _pool.threads if t.is_alive()]
