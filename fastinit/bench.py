"""Side-by-side benchmark: fastinit against NumPy (and PyTorch / JAX when installed).

Everything runs in ONE process, one implementation after the other, on
the same machine and with the same thread count, and the result is printed
as a table::

    python -m fastinit bench --size 1e8
    python -m fastinit bench --quick            # n = 1e6, one repeat: a few seconds
    python -m fastinit bench --cases normal --threads 1 --json bench.json

What is measured, per case (``normal``, ``uniform``, ``truncated_normal`` on
``[-2, 2]`` std) and implementation:

- elements/s: ``n`` divided by the best of ``--repeat`` timed calls
  (``time.perf_counter``), after one untimed warm-up call that fills the same
  output (so Numba compilation and JAX tracing are excluded, and the output's
  pages are already resident);
- ``x NumPy``: that rate divided by NumPy's rate for the same case (the
  ``numpy Generator`` row; for the truncated normal the NumPy rejection row);
- peak RSS above the output: the output buffer is allocated and touched
  first; the kernel's peak-RSS counter is reset (``5`` written to
  ``/proc/self/clear_refs``), the call runs, and ``VmHWM`` minus the ``VmRSS``
  before the call is the extra memory the implementation needed (for an
  implementation that allocates its own result, JAX, the size of the output
  is subtracted too). The largest value over the repeats is reported; where
  the counter cannot be reset (not Linux) the column shows ``n/a``.

PyTorch and JAX are imported only when installed (``importlib.util.find_spec``)
and only when their rows run; ``import fastinit`` never imports this module.
"""

import argparse
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["main", "run", "add_arguments", "parse_size", "peak_rss_above",
           "numpy_truncated_normal", "CASES"]

CASES = ("normal", "uniform", "truncated_normal")
TRUNCATION = 2.0  # truncated normal on [-TRUNCATION, TRUNCATION] std, as torch's default
SEED = 0
DEFAULT_SIZE = 10**8
QUICK_SIZE = 10**6
DEFAULT_REPEAT = 3
DTYPES = ("float32", "float64", "float16", "bfloat16")
MiB = float(1 << 20)

_NUMPY_REFERENCE = {"normal": "numpy Generator", "uniform": "numpy Generator",
                    "truncated_normal": "numpy rejection"}


# -- options -------------------------------------------------------------------


def parse_size(text):
    """A positive element count from ``"100000000"``, ``"1e8"``, ``"100_000_000"`` or ``"2**20"``."""
    s = str(text).strip().replace("_", "").replace(",", "")
    try:
        if "**" in s:
            base, exp = s.split("**", 1)
            value = int(base) ** int(exp)
        else:
            try:
                value = int(s)
            except ValueError:
                f = float(s)
                if not math.isfinite(f) or f != int(f):
                    raise ValueError from None
                value = int(f)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be a whole number of elements such as 1e8 or 100000000. "
            f"Received: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive. Received: {text!r}")
    return value


def _parse_cases(text):
    cases = [c.strip() for c in str(text).split(",") if c.strip()]
    aliases = {"trunc_normal": "truncated_normal", "truncnorm": "truncated_normal",
               "truncated": "truncated_normal"}
    cases = [aliases.get(c, c) for c in cases]
    bad = [c for c in cases if c not in CASES]
    if bad or not cases:
        raise argparse.ArgumentTypeError(
            f"cases must be a comma-separated list of {', '.join(CASES)}. Received: {text!r}")
    return list(dict.fromkeys(cases))


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def available_cores():
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def add_arguments(parser, *, size_default=DEFAULT_SIZE):
    """Add the benchmark options to ``parser`` (shared by ``bench`` and ``demo``)."""
    parser.add_argument("--size", "-n", type=parse_size, default=None, metavar="N",
                        help=f"elements per tensor, e.g. 1e8 (default {size_default:.0e}; "
                             f"{QUICK_SIZE:.0e} with --quick)")
    parser.add_argument("--repeat", "-r", type=_positive_int, default=None, metavar="R",
                        help=f"timed repeats, the best is reported (default {DEFAULT_REPEAT}; "
                             f"1 with --quick)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="output dtype (default float32); peers without it are skipped")
    parser.add_argument("--threads", "-t", type=_positive_int, default=None, metavar="T",
                        help="threads for Numba and PyTorch (default: all cores, "
                             f"{available_cores()} here)")
    parser.add_argument("--cases", type=_parse_cases, default=list(CASES), metavar="LIST",
                        help=f"comma-separated cases (default {','.join(CASES)})")
    parser.add_argument("--quick", action="store_true",
                        help=f"n = {QUICK_SIZE:.0e} and 1 repeat: finishes in a few seconds")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write all numbers and machine information to PATH")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show progress on stderr (default: for runs of 1e7 elements "
                             "or more)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress on stderr")
    parser.set_defaults(size_default=size_default)
    return parser


# -- memory --------------------------------------------------------------------


def _proc_status():
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


def _reset_peak():
    """Reset the kernel's peak-RSS counter to the current RSS; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim():
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

    def __init__(self):
        self.enabled = bool(_proc_status()) and _reset_peak()
        self._trim = _malloc_trim() if self.enabled else None

    def start(self):
        if not self.enabled:
            return
        if self._trim is not None:
            self._trim()
        _reset_peak()
        self._before = _proc_status().get("VmRSS")

    def stop(self):
        if not self.enabled or self._before is None:
            return None
        peak = _proc_status().get("VmHWM")
        return None if peak is None else peak - self._before


def peak_rss_above(call):
    """Run ``call()`` once; its peak RSS above the RSS just before it, in bytes.

    None where the peak counter cannot be reset (not Linux). Used by the asv
    suite to track the "output plus a small constant" memory rule.
    """
    meter = _PeakMeter()
    meter.start()
    call()
    return meter.stop()


# -- machine -------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(module):
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


def _memory_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def source_state():
    """``"<commit>"`` or ``"<commit>+dirty:<diff hash>"`` when fastinit runs from a git
    checkout (the numbers belong to that code), else None."""
    import hashlib
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        def git(*args):
            return subprocess.run(["git", "-C", root, *args], capture_output=True,
                                  timeout=20, check=True).stdout
        commit = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    if not diff:
        return commit
    return f"{commit}+dirty:{hashlib.sha256(diff).hexdigest()[:10]}"


def _loadavg():
    """1, 5 and 15-minute load averages (other work on the machine skews timings)."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info():
    """What the numbers were measured on."""
    from . import __version__
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
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
    }


def _machine_line(info, threads):
    parts = [f"{info['cpu_model']}, {info['cores']} cores (threads={threads})"]
    if info["memory_bytes"]:
        parts.append(f"{info['memory_bytes'] / 2**30:.0f} GiB RAM")
    parts.append(f"{platform.system()} {platform.machine()}")
    parts.append(f"Python {info['python']}")
    for name in ("fastinit", "numpy", "numba", "torch", "jax"):
        if info[name]:
            parts.append(f"{name} {info[name]}")
            if name == "fastinit" and info.get("fastinit_source"):
                parts[-1] += f" (git {info['fastinit_source']})"
    return ", ".join(parts)


# -- implementations -----------------------------------------------------------


@dataclass
class _Runner:
    """One implementation of one case, ready to run."""

    call: object                     # the timed call
    allocates_output: bool = False   # the call returns a new output of n elements
    finish: object = None            # called with the call's result (e.g. block_until_ready)
    note: str = ""


@dataclass
class Result:
    case: str
    implementation: str
    n: int
    dtype: str
    seconds: list = field(default_factory=list)
    peak_bytes: object = None
    error: str = ""
    skipped: str = ""
    note: str = ""
    x_numpy: object = None   # rate / NumPy's rate for the case
    x_numba: object = None   # rate / fastinit numba's rate for the case

    @property
    def best(self):
        return min(self.seconds) if self.seconds else None

    @property
    def rate(self):
        return self.n / self.best if self.best else None


def _fastinit(backend):
    def make(case, out, ctx):
        from . import random as fr
        if backend == "numba":
            import numba
            numba.set_num_threads(ctx["threads"])
        if case == "normal":
            def call():
                return fr.normal(out=out, seed=SEED, backend=backend)
        elif case == "uniform":
            def call():
                return fr.uniform(out=out, seed=SEED, backend=backend)
        else:
            def call():
                return fr.truncated_normal(out=out, a=-TRUNCATION, b=TRUNCATION, seed=SEED,
                                           backend=backend)
        note = f"{ctx['threads']} threads" if backend == "numba" else "single-threaded"
        return _Runner(call, note=note)
    return make


def _numpy_generator(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    if case == "normal":
        def call():
            return gen.standard_normal(out.size, dtype=out.dtype, out=out)
    else:
        def call():
            return gen.random(out.size, dtype=out.dtype, out=out)
    return _Runner(call, note="single-threaded")


def numpy_truncated_normal(gen, out, a=-TRUNCATION, b=TRUNCATION):
    """Standard normal conditioned on ``[a, b]`` into ``out`` by vectorised rejection.

    Draws everything, then redraws the elements outside ``[a, b]`` until none
    is left: what a NumPy user writes. Needs a boolean mask and an index
    array besides ``out``.
    """
    gen.standard_normal(out.size, dtype=out.dtype, out=out)
    mask = out < a
    mask |= out > b
    redo = np.flatnonzero(mask)
    del mask
    while redo.size:
        draw = gen.standard_normal(redo.size, dtype=out.dtype)
        out[redo] = draw
        redo = redo[(draw < a) | (draw > b)]
    return out


def _numpy_rejection(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    return _Runner(lambda: numpy_truncated_normal(gen, out), note="single-threaded")


def _torch(case, out, ctx):
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    t = torch.empty(out.size, dtype=getattr(torch, out.dtype.name))
    if case == "normal":
        call, name = t.normal_, "Tensor.normal_"
    elif case == "uniform":
        call, name = t.uniform_, "Tensor.uniform_"
    else:
        def call():
            return torch.nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=-TRUNCATION,
                                               b=TRUNCATION)
        name = "nn.init.trunc_normal_"
    return _Runner(call, note=f"{name}, {ctx['threads']} threads")


def _jax(case, out, ctx):
    import jax
    import jax.numpy as jnp
    if out.dtype == np.float64 and not jax.config.jax_enable_x64:
        return "float64 needs jax_enable_x64"
    dtype = getattr(jnp, out.dtype.name)
    shape = (out.size,)
    if case == "normal":
        fn = jax.jit(lambda k: jax.random.normal(k, shape, dtype))
    elif case == "uniform":
        fn = jax.jit(lambda k: jax.random.uniform(k, shape, dtype))
    else:
        fn = jax.jit(lambda k: jax.random.truncated_normal(k, -TRUNCATION, TRUNCATION, shape,
                                                          dtype))
    key = jax.random.PRNGKey(SEED)
    return _Runner(lambda: fn(key), allocates_output=True,
                   finish=lambda r: r.block_until_ready(), note="jit, XLA's own threads")


def implementations(case):
    """``(name, factory)`` for the rows of ``case``; optional peers only when installed."""
    rows = [("fastinit numba", _fastinit("numba")), ("fastinit numpy", _fastinit("numpy"))]
    if case == "truncated_normal":
        rows.append(("numpy rejection", _numpy_rejection))
    else:
        rows.append(("numpy Generator", _numpy_generator))
    if importlib.util.find_spec("torch") is not None:
        rows.append(("torch", _torch))
    if importlib.util.find_spec("jax") is not None:
        rows.append(("jax", _jax))
    return rows


# -- running -------------------------------------------------------------------


def _measure(runner, n, repeat, itemsize, meter):
    """Warm up once, then ``repeat`` timed calls; (seconds list, peak bytes or None)."""
    result = runner.call()
    if runner.finish is not None:
        runner.finish(result)
    del result
    seconds, peaks = [], []
    for _ in range(repeat):
        meter.start()
        t0 = time.perf_counter()
        result = runner.call()
        if runner.finish is not None:
            runner.finish(result)
        elapsed = time.perf_counter() - t0
        peak = meter.stop()
        del result
        seconds.append(elapsed)
        if peak is not None:
            if runner.allocates_output:
                # The call's own result is not counted; an allocator that reuses the
                # memory of the previous result can make the difference negative.
                peak = max(0, peak - n * itemsize)
            peaks.append(peak)
    return seconds, (max(peaks) if peaks else None)


class _Progress:
    def __init__(self, total, enabled):
        self.total, self.done, self.bar = total, 0, None
        self.enabled = enabled
        if enabled and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=sys.stderr, unit="row", leave=False)

    def begin(self, case, name):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(f"{case}: {name}")
        else:
            print(f"[{self.done + 1}/{self.total}] {case}: {name} ... ", end="",
                  file=sys.stderr, flush=True)
        self._t0 = time.perf_counter()

    def end(self, result):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            if result.rate:
                msg = f"{result.rate / 1e9:.3f} G/s"
            else:
                msg = result.error or f"skipped ({result.skipped})"
            print(f"{msg} [{time.perf_counter() - self._t0:.1f} s]", file=sys.stderr,
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _thread_settings():
    """A function restoring Numba's and (if loaded) PyTorch's thread counts as they are now."""
    saved = []
    if importlib.util.find_spec("numba") is not None:
        import numba
        saved.append((numba.set_num_threads, numba.get_num_threads()))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        saved.append((torch.set_num_threads, torch.get_num_threads()))

    def restore():
        for setter, value in saved:
            setter(value)
    return restore


def _make_output(n, dtype):
    from . import _dtypes
    out = np.empty(n, dtype=_dtypes.resolve(dtype))
    out.view(np.uint8)[:] = 0  # touch every page: the output is resident before measuring
    return out


def run(*, size=DEFAULT_SIZE, repeat=DEFAULT_REPEAT, dtype="float32", threads=None,
        cases=CASES, progress=False):
    """Run the benchmark; a list of :class:`Result`, one per (case, implementation)."""
    threads = threads or available_cores()
    ctx = {"threads": threads}
    meter = _PeakMeter()
    plan = [(case, name, factory) for case in cases for name, factory in implementations(case)]
    bar = _Progress(len(plan), progress)
    results = []
    restore = _thread_settings()
    try:
        for case in cases:
            out = _make_output(size, dtype)
            for name, factory in implementations(case):
                gc.collect()  # garbage of the previous row must not count against this one
                bar.begin(case, name)
                result = Result(case, name, size, np.dtype(out.dtype).name)
                try:
                    runner = factory(case, out, ctx)
                    if isinstance(runner, str):
                        result.skipped = runner
                    else:
                        result.note = runner.note
                        result.seconds, result.peak_bytes = _measure(
                            runner, size, repeat, out.dtype.itemsize, meter)
                except Exception as exc:  # noqa: BLE001 - one failing peer must not stop the table
                    result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                runner = None
                results.append(result)
                bar.end(result)
            del out
            gc.collect()
    finally:
        bar.close()
        restore()
    _add_ratios(results)
    return results


def _add_ratios(results):
    reference = {r.case: r.rate for r in results
                 if r.implementation == _NUMPY_REFERENCE[r.case] and r.rate}
    numba = {r.case: r.rate for r in results if r.implementation == "fastinit numba" and r.rate}
    for r in results:
        r.x_numpy = r.rate / reference[r.case] if r.rate and r.case in reference else None
        r.x_numba = r.rate / numba[r.case] if r.rate and r.case in numba else None


# -- output --------------------------------------------------------------------

_CASE_LABEL = {"normal": "normal", "uniform": "uniform",
               "truncated_normal": f"trunc normal +-{TRUNCATION:g}"}


def format_table(results, *, info, command, size, dtype, repeat, threads, peak_ok):
    lines = [
        "fastinit side-by-side benchmark",
        f"machine: {_machine_line(info, threads)}",
        f"command: {command}",
        f"n = {size:,} {dtype} elements ({size * _itemsize(dtype) / MiB:,.1f} MiB output), "
        f"best of {repeat}, threads = {threads}",
        "",
    ]
    header = ("case", "implementation", "G elem/s", "x NumPy", "peak MiB", "note")
    rows = []
    for r in results:
        if r.rate:
            rate = _format_rate(r.rate)
            ratio = f"{r.x_numpy:.2f}x" if r.x_numpy else "-"
            peak = f"{r.peak_bytes / MiB:.1f}" if r.peak_bytes is not None else "n/a"
            note = r.note
        else:
            rate = ratio = peak = "-"
            note = f"skipped: {r.skipped}" if r.skipped else f"error: {r.error}"
        rows.append((_CASE_LABEL[r.case], r.implementation, rate, ratio, peak, note))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    right = (False, False, True, True, True, False)

    def fmt(row):
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        return "  ".join(cells).rstrip()

    lines.append(fmt(header))
    lines.append(fmt(tuple("-" * w for w in widths)))
    previous = None
    for raw, row in zip(results, rows):
        if previous is not None and raw.case != previous:
            lines.append("")
        previous = raw.case
        lines.append(fmt(row))
    lines += [
        "",
        "G elem/s: elements per second (1e9) from the best timed call after one warm-up "
        "(Numba compile excluded).",
        "x NumPy: rate / NumPy's rate for the same case (numpy Generator; numpy rejection for "
        "the truncated normal).",
        ("peak MiB: peak RSS during the call above the RSS before it, the (resident) output "
         "excluded." if peak_ok else
         "peak MiB: n/a (the peak-RSS counter cannot be reset on this system)."),
    ]
    return "\n".join(lines)


def _format_rate(rate):
    g = rate / 1e9
    return f"{g:.3f}" if g >= 0.001 else f"{g:.1e}"


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def to_json(results, *, info, command, argv, size, dtype, repeat, threads, peak_ok):
    return {
        "benchmark": "fastinit.bench",
        "command": command,
        "argv": list(argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "settings": {"size": size, "dtype": dtype, "repeat": repeat, "threads": threads,
                     "seed": SEED, "truncation_std": TRUNCATION,
                     "peak_rss_measured": peak_ok},
        "results": [{
            "case": r.case,
            "implementation": r.implementation,
            "n": r.n,
            "dtype": r.dtype,
            "seconds_best": r.best,
            "seconds_all": r.seconds,
            "elements_per_second": r.rate,
            "x_numpy": r.x_numpy,
            "x_fastinit_numba": r.x_numba,
            "peak_rss_above_output_bytes": r.peak_bytes,
            "peak_rss_above_output_mib": (None if r.peak_bytes is None
                                          else r.peak_bytes / MiB),
            "note": r.note,
            "skipped": r.skipped or None,
            "error": r.error or None,
        } for r in results],
    }


def run_from_args(args, *, command, argv=()):
    """Run with parsed options (see :func:`add_arguments`), print the table; exit status."""
    size = args.size or (QUICK_SIZE if args.quick else args.size_default)
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    threads = args.threads or available_cores()
    if importlib.util.find_spec("numba") is not None:
        import numba
        limit = numba.config.NUMBA_NUM_THREADS
        if threads > limit:
            print(f"error: --threads {threads} exceeds Numba's maximum of {limit} "
                  f"(set NUMBA_NUM_THREADS to raise it)", file=sys.stderr)
            return 2
    if args.dtype == "bfloat16" and importlib.util.find_spec("ml_dtypes") is None:
        print("error: --dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes)",
              file=sys.stderr)
        return 2
    progress = args.progress if args.progress is not None else size >= 10**7
    peak_ok = _PeakMeter().enabled
    load_before = _loadavg()
    results = run(size=size, repeat=repeat, dtype=args.dtype, threads=threads,
                  cases=args.cases, progress=progress)
    info = machine_info()
    info["loadavg_before"], info["loadavg_after"] = load_before, _loadavg()
    common = dict(info=info, command=command, size=size, dtype=args.dtype, repeat=repeat,
                  threads=threads, peak_ok=peak_ok)
    try:
        print(format_table(results, **common), flush=True)
    except BrokenPipeError:  # e.g. piped into head: not an error of the benchmark
        sys.stderr.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(to_json(results, argv=argv, **common), f, indent=2)
            f.write("\n")
    return 0


def _command(prog, argv):
    import shlex
    return " ".join([prog] + [shlex.quote(a) for a in argv])


def main(argv=None, prog=None):
    """``python -m fastinit.bench [options]``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or "python -m fastinit.bench"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, command=_command(prog, argv), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
