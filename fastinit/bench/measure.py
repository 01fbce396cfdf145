"""How the benchmark measures: timing, peak memory above the output, thread control,
the machine, and the run over every case and implementation."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _progress, _threads
from .._system import available_cores
from .cases import CASES, DEFAULT_BUDGET, DEFAULT_ORTHO_SIZE, DEFAULT_REPEAT, DEFAULT_SIZE, \
    NUMPY_REFERENCE, case_shape, implementations

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import numpy.typing as npt

    from .cases import Context, Factory, Runner

__all__ = ["Result", "run", "peak_rss_above", "machine_info", "machine_line",
           "available_cores", "format_seconds", "BlasThreads", "blas_info"]


def _proc_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` in bytes (Linux), or ``{}``."""
    values = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, number = line.split()[:2]
                    values[key[:-1]] = int(number) * 1024
    except OSError:
        return {}
    return values


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> Callable[[], int] | None:
    """A function returning freed heap memory to the OS (glibc ``malloc_trim``), or None.

    Without it, memory that a warm-up call freed stays resident in the C heap
    (glibc raises its mmap threshold after freeing large blocks), and the next
    call's temporaries would not show in its peak.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class _PeakMeter:
    """Peak RSS of one call above the RSS just before it."""

    def __init__(self) -> None:
        self._before: int | None = None
        self.enabled = bool(_proc_status()) and _reset_peak()
        self._trim = _malloc_trim() if self.enabled else None

    def start(self) -> None:
        if not self.enabled:
            return
        if self._trim is not None:
            self._trim()
        _reset_peak()
        self._before = _proc_status().get("VmRSS")

    def stop(self) -> int | None:
        if not self.enabled or self._before is None:
            return None
        peak = _proc_status().get("VmHWM")
        # VmHWM is updated lazily: a call that needed nothing can read a few pages below 0.
        return None if peak is None else max(0, peak - self._before)


def peak_rss_above(call: Callable[[], object]) -> int | None:
    """Run ``call()`` once; its peak RSS above the RSS just before it, in bytes.

    None where the peak counter cannot be reset (not Linux). Used by the asv
    suite to track the "output plus a small constant" memory rule.
    """
    meter = _PeakMeter()
    meter.start()
    call()
    return meter.stop()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # noqa: BLE001 - a missing distribution name is not an error here
        try:
            return getattr(importlib.import_module(module), "__version__", "unknown")
        except Exception:  # noqa: BLE001
            return "unknown"


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def source_state() -> str | None:
    """``"<commit>"`` or ``"<commit>+dirty:<diff hash>"`` when fastinit runs from a git
    checkout (the numbers belong to that code), else None."""
    import hashlib
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        def git(*args: str) -> bytes:
            return subprocess.run(["git", "-C", root, *args], capture_output=True,
                                  timeout=20, check=True).stdout
        commit = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    if not diff:
        return commit
    return f"{commit}+dirty:{hashlib.sha256(diff).hexdigest()[:10]}"


def _loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages (other work on the machine skews timings)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    from .. import __version__
    return {
        "cpu_model": _cpu_model(),
        "cores": available_cores(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastinit": __version__,
        "fastinit_source": source_state(),
        "numpy": np.__version__,
        "numba": _version("numba"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "keras": _version("keras"),
        "threadpoolctl": _version("threadpoolctl"),
        "blas": blas_info(),
    }


def machine_line(info: dict[str, Any], threads: int) -> str:
    parts = [f"{info['cpu_model']}, {info['cores']} cores (threads={threads})"]
    if info["memory_bytes"]:
        parts.append(f"{info['memory_bytes'] / 2**30:.0f} GiB RAM")
    parts.append(f"{platform.system()} {platform.machine()}")
    parts.append(f"Python {info['python']}")
    for name in ("fastinit", "numpy", "numba", "scipy", "torch", "jax", "keras"):
        if info.get(name):
            parts.append(f"{name} {info[name]}")
            if name == "fastinit" and info.get("fastinit_source"):
                parts[-1] += f" (git {info['fastinit_source']})"
    return ", ".join(parts)


@dataclass
class Result:
    case: str
    implementation: str
    n: int
    dtype: str
    shape: tuple[int, ...] = ()
    seconds: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    error: str = ""
    skipped: str = ""
    note: str = ""
    x_numpy: float | None = None   # rate / NumPy's rate for the case
    x_numba: float | None = None   # rate / fastinit numba's rate for the case

    @property
    def itemsize(self) -> int:
        from .. import _dtypes
        return _dtypes.resolve(self.dtype).itemsize

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds else None

    @property
    def rate(self) -> float | None:
        return self.n / self.best if self.best else None


class _Row:
    """One implementation of a case while it runs: its :class:`Result`, runner and the
    peaks of its timed calls."""

    def __init__(self, result: Result, runner: Runner) -> None:
        self.result = result
        self.runner: Runner | None = runner   # None once the row has ended (buffers freed)
        self.peaks: list[int] = []

    def call(self, meter: _PeakMeter, *, timed: bool) -> None:
        """One call; timed: its seconds and peak RSS recorded."""
        runner = self.runner
        assert runner is not None, "a row is called before it ends"
        if timed:
            meter.start()
        t0 = time.perf_counter()
        result = runner.call()
        if runner.finish is not None:
            runner.finish(result)
        elapsed = time.perf_counter() - t0
        peak = meter.stop() if timed else None
        del result
        if not timed:
            return
        self.result.seconds.append(elapsed)
        if peak is not None:
            if runner.allocates_output:
                # The call's own result is not counted; an allocator that reuses the
                # memory of the previous result can make the difference negative.
                peak = max(0, peak - self.result.n * self.result.itemsize)
            self.peaks.append(peak)

    def done(self, repeat: int, budget: float) -> bool:
        """``repeat`` timed calls made, or another would end past ``budget`` seconds."""
        seconds = self.result.seconds
        return len(seconds) >= repeat or sum(seconds) + min(seconds) > budget

    def finish(self) -> None:
        # A first call may hold one-time allocations: the later calls' peak, when any.
        peaks = self.peaks[1:] or self.peaks
        self.result.peak_bytes = max(peaks) if peaks else None


class BlasThreads:
    """The thread counts of the BLAS libraries loaded in this process (NumPy's and SciPy's
    wheels each bring an OpenBLAS), through ``threadpoolctl``.

    A library is seen once it is loaded, so :meth:`limit` is called again after each
    import (a row's factory calls it after loading its peer); :meth:`restore` puts back
    every count it changed. Without threadpoolctl nothing is limited.
    """

    def __init__(self) -> None:
        self._limiters: list[Any] = []   # threadpoolctl limiters (restore_original_limits)

    def limit(self, threads: int) -> int:
        """Set every loaded BLAS library to ``threads``; how many there are (0: none, or
        no threadpoolctl)."""
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return 0
        blas = ThreadpoolController().select(user_api="blas")
        if blas.lib_controllers:
            self._limiters.append(blas.limit(limits=threads))
        return len(blas.lib_controllers)

    def restore(self) -> None:
        while self._limiters:
            self._limiters.pop().restore_original_limits()


def blas_info() -> list[dict[str, Any]] | None:
    """The BLAS libraries loaded now (threadpoolctl's description), or None without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("internal_api", "version", "threading_layer", "architecture", "num_threads")
    return [{"library": os.path.basename(i["filepath"]), **{k: i.get(k) for k in keys}}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _thread_settings(blas: BlasThreads | None = None) -> Callable[[], None]:
    """A function restoring fastinit's, (if loaded) PyTorch's and the BLAS thread counts as
    they are now (``blas``: the :class:`BlasThreads` that :func:`run` limits)."""
    saved: list[tuple[Callable[[Any], object], int | None]] = [
        (_threads.set_num_threads, _threads.configured())]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        saved.append((torch.set_num_threads, torch.get_num_threads()))

    def restore() -> None:
        for setter, value in saved:
            setter(value)
        if blas is not None:
            blas.restore()
    return restore


def _dtypes_resolve(dtype: str) -> np.dtype[Any]:
    from .. import _dtypes
    return _dtypes.resolve(dtype)


def _make_output(n: int, dtype: str) -> npt.NDArray[Any]:
    from .. import _dtypes
    out = np.empty(n, dtype=_dtypes.resolve(dtype))
    out.view(np.uint8)[:] = 0  # touch every page: the output is resident before measuring
    return out


def run(*, size: int = DEFAULT_SIZE, repeat: int = DEFAULT_REPEAT, dtype: str = "float32",
        threads: int | None = None, cases: Iterable[str] = CASES, progress: bool = False,
        ortho_size: int = DEFAULT_ORTHO_SIZE, skip: Iterable[str] = (),
        budget: float = DEFAULT_BUDGET) -> list[Result]:
    """Run the benchmark; a list of :class:`Result`, one per (case, implementation).

    ``size`` is the element count of the flat cases and of the Glorot kernel,
    ``ortho_size`` the side of the orthogonal matrix (see :func:`case_shape`);
    implementations named in ``skip`` are left out. Within a case the implementations
    take turns, one timed call each per round, so that other work on the machine
    slows them alike; each makes up to ``repeat`` timed calls, fewer once its timed
    calls have taken ``budget`` seconds (at least one: none is started that would end
    past it), after an untimed first call where that call compiles
    (:attr:`Runner.compiles`).
    """
    threads = threads or available_cores()
    blas = BlasThreads()
    ctx: Context = {"threads": threads, "blas": blas, "size": size}
    meter = _PeakMeter()
    rows = {case: [(name, factory) for name, factory in implementations(case)
                   if name not in skip] for case in cases}
    plan = [(case, name) for case in cases for name, _ in rows[case]]
    bar = _progress.Progress(len(plan), enabled=progress, desc="fastinit bench", unit="row")
    results: list[Result] = []
    restore = _thread_settings(blas)
    try:
        for case in cases:
            shape = case_shape(case, size, ortho_size)
            n = math.prod(shape)
            # The model case builds its own tensors: its "output" only carries the dtype.
            out = (np.empty(0, _dtypes_resolve(dtype)) if case == "model"
                   else _make_output(n, dtype).reshape(shape))
            running = []
            for name, factory in rows[case]:
                bar.describe(f"{case}: {name}")
                result = Result(case, name, n, np.dtype(out.dtype).name, shape=shape)
                results.append(result)
                row = _start(result, factory, case, out, ctx, meter)
                if row is None:
                    bar.update(1, note=_progress_note(result))
                else:
                    running.append(row)
            gc.collect()  # garbage of the previous case must not count against this one
            while running:   # rounds: one timed call of each implementation still running
                for row in list(running):
                    bar.describe(f"{case}: {row.result.implementation}")
                    try:
                        row.call(meter, timed=True)
                    except Exception as exc:  # noqa: BLE001 - one failing peer must not stop the table
                        row.result.error = _error(exc)
                    if row.result.error or row.done(repeat, budget):
                        running.remove(row)
                        _end(row, case)
                        bar.update(1, note=_progress_note(row.result))
            del out, running
            gc.collect()
    finally:
        bar.close()
        restore()
    _add_ratios(results)
    return results


def _start(result: Result, factory: Factory, case: str, out: npt.NDArray[Any], ctx: Context,
           meter: _PeakMeter) -> _Row | None:
    """The implementation's :class:`_Row` after its warm-up (if it compiles), or None when
    it is skipped or failed (said in ``result``)."""
    try:
        runner = factory(case, out, ctx)
        if isinstance(runner, str):
            result.skipped = runner
            return None
        result.note = runner.note
        row = _Row(result, runner)
        if runner.compiles:
            row.call(meter, timed=False)
        return row
    except Exception as exc:  # noqa: BLE001 - one failing peer must not stop the table
        result.error = _error(exc)
        return None


def _end(row: _Row, case: str) -> None:
    row.finish()
    result = row.result
    if case == "orthogonal" and result.best:
        result.note = f"{format_seconds(result.best)}/matrix, {result.note}"
    row.runner = None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _progress_note(result: Result) -> str:
    if result.rate:
        return f"{result.rate / 1e9:.3f} G/s [{len(result.seconds)} timed]"
    return result.error or f"skipped ({result.skipped})"


def _add_ratios(results: list[Result]) -> None:
    reference = {r.case: r.rate for r in results
                 if r.implementation == NUMPY_REFERENCE[r.case] and r.rate}
    numba = {r.case: r.rate for r in results if r.implementation == "fastinit numba" and r.rate}
    for r in results:
        r.x_numpy = r.rate / reference[r.case] if r.rate and r.case in reference else None
        r.x_numba = r.rate / numba[r.case] if r.rate and r.case in numba else None




def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"
