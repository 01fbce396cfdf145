"""One progress display for long runs (checkpoints, benchmarks): tqdm when installed,
else a line on stderr at most once a second."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "enabled_by_default"]


def enabled_by_default() -> bool:
    """Show progress when stderr is a terminal."""
    return sys.stderr is not None and sys.stderr.isatty()


class Progress:
    """``total`` units of work; ``update(n)`` as they are done.

    ``unit="B"`` shows bytes (KiB, MiB, ...). A disabled one does nothing.
    """

    def __init__(self, total: int, *, enabled: bool, desc: str, unit: str = "it") -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar: Any = None   # a tqdm bar (tqdm ships no types)
        self.desc, self.unit, self._last = desc, unit, 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        scale = unit == "B"
        self.bar = tqdm(total=total, unit=unit, unit_scale=scale,
                        unit_divisor=1024 if scale else 1000, desc=desc, file=sys.stderr,
                        leave=scale)

    def describe(self, text: str) -> None:
        """Say what is being done now."""
        if self.bar is not None:
            self.bar.set_description(text)
        self.desc = text

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and (note or now - self._last > 1.0 or self.done == self.total):
            self._last = now
            if self.unit == "B":
                amount = f"{self.done / 2**30:.2f} / {self.total / 2**30:.2f} GiB"
            else:
                amount = f"{self.done} / {self.total}"
            print(f"{self.desc}: {amount} {note}".rstrip(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
