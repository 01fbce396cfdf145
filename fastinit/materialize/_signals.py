"""Holding SIGINT and SIGTERM while a commit (or its undoing) runs, then delivering them.

A Ctrl-C (``KeyboardInterrupt``) or a ``SIGTERM`` turned into an exception can
otherwise stop a commit between two renames and, worse, stop the code that undoes
it. Inside :func:`held`, both signals are recorded instead of handled; when the block
ends the previous handlers are back and each recorded signal is raised again, so it
acts as it would have (an exception, the default action that ends the process, or
nothing when ignored), only later; ``SIGTERM`` first, so that when both came, a
termination is not turned into a ``KeyboardInterrupt``. Python calls a signal's
handler in the main thread, through whatever handler is installed *when it runs*, so a signal that
arrived just before the block is held too. Outside the main thread handlers cannot be
changed: there a signal does not interrupt the block anyway, except a default
``SIGTERM``, which ends the process like ``SIGKILL`` (the next run recovers).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

__all__ = ["held"]

_SIGTERM = getattr(signal, "SIGTERM", None)
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous: dict[signal.Signals, Any] = {}  # a handler, or SIG_DFL / SIG_IGN
    try:
        for sig in _SIGNALS:
            handler = signal.getsignal(sig)
            if handler is None:  # installed outside Python: cannot be put back
                continue
            previous[sig] = handler
            signal.signal(sig, record)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # SIGTERM first: the first that raises ends the delivery, and a KeyboardInterrupt
        # must not take the place of a termination (exit status 143, not 130)
        for sig in sorted(set(received), key=lambda s: s != _SIGTERM):
            signal.raise_signal(sig)
