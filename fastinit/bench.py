"""Side-by-side benchmark: fastinit against NumPy (and PyTorch / JAX when installed).

Everything runs in ONE process, one implementation after the other, on
the same machine and with the same thread count, and the result is printed
as a table::

    python -m fastinit bench --size 1e8
    python -m fastinit bench --quick            # n = 1e6, one repeat: a few seconds
    python -m fastinit bench --cases normal --threads 1 --json bench.json
    python -m fastinit bench --cases orthogonal --ortho-size 4096
    python -m fastinit bench --quick --plot bench.png   # also a bar chart (needs matplotlib)

The cases:

- ``normal``, ``uniform``, ``truncated_normal`` (on ``[-2, 2]`` std): a flat
  output of ``n`` elements;
- ``variance_scaling``: a Glorot-uniform (Xavier) kernel, ``n`` elements as a
  ``(n // 4096, 4096)`` matrix (:func:`case_shape`), against NumPy's
  ``Generator`` (``random`` into the output, then scaled to ``[-limit, limit)``
  in place), ``torch.nn.init.xavier_uniform_``, JAX's ``glorot_uniform`` and
  Keras 3's ``GlorotUniform`` on its NumPy backend;
- ``orthogonal``: one square matrix of side ``--ortho-size`` (2048; 256 with
  ``--quick``), against ``numpy.linalg.qr`` of a Gaussian matrix with the sign
  fix (the reference), ``scipy.linalg.qr``, ``torch.nn.init.orthogonal_`` and
  JAX's ``orthogonal``. Its rate is still elements/s; the note column gives the
  seconds per matrix.

What is measured, per case and implementation:

- elements/s: the case's element count divided by the best of ``--repeat`` timed calls
  (``time.perf_counter``), after one untimed warm-up call that fills the same
  output (so Numba compilation and JAX tracing are excluded, and the output's
  pages are already resident);
- ``x NumPy``: that rate divided by NumPy's rate for the same case (the
  ``numpy Generator`` row; for the truncated normal the NumPy rejection row,
  for the orthogonal matrix the ``numpy.linalg.qr`` row);
- peak RSS above the output: the output buffer is allocated and touched
  first; the kernel's peak-RSS counter is reset (``5`` written to
  ``/proc/self/clear_refs``), the call runs, and ``VmHWM`` minus the ``VmRSS``
  before the call is the extra memory the implementation needed (for an
  implementation that allocates its own result, JAX, the size of the output
  is subtracted too). The largest value over the repeats is reported; where
  the counter cannot be reset (not Linux) the column shows ``n/a``.

Numba, PyTorch and the OpenBLAS libraries of NumPy and SciPy (the orthogonal
case's LAPACK) run with ``--threads`` threads; JAX uses XLA's own pool. On a
machine that other work keeps busy, multi-threaded OpenBLAS can be very slow for
small matrices (threads waiting for descheduled peers): compare with
``--threads 1`` there.

``--plot PATH`` also writes the results as a PNG bar chart: elements/s on a log
scale, one group of bars per case and one bar per implementation (the same
numbers as the table; skipped and failed rows have no bar). It needs
matplotlib (``pip install "fastinit-ml[bench]"``), imported only then and
drawn with the Agg renderer, without ``pyplot`` (no window, no change to the
process's matplotlib backend).

PyTorch, JAX, SciPy and Keras are imported only when installed
(``importlib.util.find_spec``) and only when their rows run; Keras is imported
with ``KERAS_BACKEND=numpy`` (its row is skipped when Keras was already imported
with another backend). ``import fastinit`` never imports this module.
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
           "numpy_truncated_normal", "numpy_orthogonal", "case_shape", "write_plot", "CASES"]

CASES = ("normal", "uniform", "truncated_normal", "variance_scaling", "orthogonal")
_FLAT_CASES = ("normal", "uniform", "truncated_normal")  # a flat output of --size elements
TRUNCATION = 2.0  # truncated normal on [-TRUNCATION, TRUNCATION] std, as torch's default
SEED = 0
DEFAULT_SIZE = 10**8   # fastinit demo (the README's first command)
BENCH_SIZE = 10**7  # fastinit bench: under a minute on 2 cores with the peers installed
QUICK_SIZE = 10**6
DEFAULT_REPEAT = 3
KERNEL_COLUMNS = 4096   # the variance-scaling kernel is (n // KERNEL_COLUMNS, KERNEL_COLUMNS)
DEFAULT_ORTHO_SIZE = 2048
QUICK_ORTHO_SIZE = 256
DTYPES = ("float32", "float64", "float16", "bfloat16")
MiB = float(1 << 20)

_NUMPY_REFERENCE = {"normal": "numpy Generator", "uniform": "numpy Generator",
                    "truncated_normal": "numpy rejection",
                    "variance_scaling": "numpy Generator", "orthogonal": "numpy.linalg.qr"}


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
               "truncated": "truncated_normal", "glorot": "variance_scaling",
               "glorot_uniform": "variance_scaling", "xavier": "variance_scaling",
               "xavier_uniform": "variance_scaling", "ortho": "orthogonal"}
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
                        help="threads for Numba, PyTorch and OpenBLAS (NumPy's and SciPy's "
                             "QR in the orthogonal case) (default: all cores, "
                             f"{available_cores()} here)")
    parser.add_argument("--cases", type=_parse_cases, default=list(CASES), metavar="LIST",
                        help=f"comma-separated cases (default {','.join(CASES)})")
    parser.add_argument("--ortho-size", type=_positive_int, default=None, metavar="M",
                        help=f"side of the square matrix of the orthogonal case (default "
                             f"{DEFAULT_ORTHO_SIZE}; {QUICK_ORTHO_SIZE} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"n = {QUICK_SIZE:.0e}, a {QUICK_ORTHO_SIZE}x{QUICK_ORTHO_SIZE} "
                             "orthogonal matrix and 1 repeat: finishes in a few seconds")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write all numbers and machine information to PATH")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also write a PNG bar chart of elements/s per case and "
                             "implementation (log scale) to PATH; needs matplotlib")
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
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "keras": _version("keras"),
    }


def _machine_line(info, threads):
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
    shape: tuple = ()
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


def _threads(ctx):
    return "1 thread" if ctx["threads"] == 1 else f"{ctx['threads']} threads"


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
        note = f"{_threads(ctx)}" if backend == "numba" else "single-threaded"
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
    return _Runner(call, note=f"{name}, {_threads(ctx)}")


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


# -- variance scaling: a Glorot-uniform kernel ---------------------------------------


def case_shape(case, size, ortho_size=DEFAULT_ORTHO_SIZE):
    """The output shape of ``case``: ``(size,)``; ``(size // 4096, 4096)`` for the Glorot
    kernel (``(1, size)`` below 4096 elements); ``(ortho_size, ortho_size)`` for the
    orthogonal matrix."""
    if case == "variance_scaling":
        cols = min(KERNEL_COLUMNS, size)
        return (size // cols, cols)
    if case == "orthogonal":
        return (ortho_size, ortho_size)
    return (size,)


def _glorot_limit(shape):
    """``sqrt(6 / (fan_in + fan_out))`` of a 2-D kernel (the same in either layout)."""
    return math.sqrt(6.0 / (shape[0] + shape[1]))


def _fastinit_glorot(backend):
    def make(case, out, ctx):
        from .initializers import GlorotUniform
        if backend == "numba":
            import numba
            numba.set_num_threads(ctx["threads"])
        init = GlorotUniform(seed=SEED)
        note = f"{_threads(ctx)}" if backend == "numba" else "single-threaded"
        return _Runner(lambda: init(out.shape, out=out, backend=backend),
                       note=f"initializers.GlorotUniform, {note}")
    return make


def _numpy_glorot(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    limit = _glorot_limit(out.shape)

    def call():
        # Generator.uniform has neither out= nor dtype=: random() into the output, then
        # low + (high - low) * u in place (Generator.uniform's formula).
        gen.random(dtype=out.dtype, out=out)
        np.multiply(out, 2.0 * limit, out=out)
        np.subtract(out, limit, out=out)
        return out
    return _Runner(call, note="random(out=) * 2 limit - limit, single-threaded")


def _torch_glorot(case, out, ctx):
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    # torch's (out, in) layout: the transposed shape has the same fans (and Glorot's
    # bound is symmetric in them anyway).
    t = torch.empty(out.shape[::-1], dtype=getattr(torch, out.dtype.name))
    return _Runner(lambda: torch.nn.init.xavier_uniform_(t),
                   note=f"nn.init.xavier_uniform_, {_threads(ctx)}")


def _jax_glorot(case, out, ctx):
    import jax
    import jax.numpy as jnp
    if out.dtype == np.float64 and not jax.config.jax_enable_x64:
        return "float64 needs jax_enable_x64"
    dtype, shape = getattr(jnp, out.dtype.name), out.shape
    init = jax.nn.initializers.glorot_uniform()
    fn = jax.jit(lambda k: init(k, shape, dtype))
    key = jax.random.PRNGKey(SEED)
    return _Runner(lambda: fn(key), allocates_output=True,
                   finish=lambda r: r.block_until_ready(),
                   note="nn.initializers.glorot_uniform, jit, XLA's own threads")


def _import_keras_numpy():
    """Keras 3 on its NumPy backend, or a reason to skip (a str).

    ``KERAS_BACKEND=numpy`` is set only for the import (Keras reads it then) and only
    when Keras is not imported yet; a Keras already running another backend is left alone.
    """
    if "keras" not in sys.modules:
        saved = os.environ.get("KERAS_BACKEND")
        os.environ["KERAS_BACKEND"] = "numpy"
        try:
            importlib.import_module("keras")
        finally:
            if saved is None:
                os.environ.pop("KERAS_BACKEND", None)
            else:
                os.environ["KERAS_BACKEND"] = saved
    keras = sys.modules["keras"]
    backend = keras.backend.backend()
    if backend != "numpy":
        return f"keras already imported with the {backend} backend"
    return keras


def _keras_glorot(case, out, ctx):
    keras = _import_keras_numpy()
    if isinstance(keras, str):
        return keras
    init = keras.initializers.GlorotUniform(seed=SEED)
    shape, dtype = out.shape, out.dtype.name
    return _Runner(lambda: init(shape, dtype=dtype), allocates_output=True,
                   note="GlorotUniform, numpy backend: float64 uniform + astype")


# -- orthogonal -------------------------------------------------------------------------


def _blas_note(ctx):
    """Limit the loaded OpenBLAS libraries to the run's threads; the note saying so."""
    if ctx["blas"].limit(ctx["threads"]):
        return f"{_threads(ctx)}"
    return "BLAS's own threads"


def _fastinit_orthogonal(case, out, ctx):
    from .initializers import Orthogonal
    if importlib.util.find_spec("numba") is not None:
        import numba
        numba.set_num_threads(ctx["threads"])
    init = Orthogonal(seed=SEED)
    init((2, 2))  # loads SciPy's LAPACK (if any), so that its threads can be limited
    return _Runner(lambda: init(out.shape, out=out),
                   note=f"initializers.Orthogonal, {_blas_note(ctx)}")


def numpy_orthogonal(gen, out):
    """A Haar orthogonal matrix into the square ``out``: ``numpy.linalg.qr`` of a Gaussian.

    The plain reference (what Keras, PyTorch and JAX compute): the Gaussian matrix is
    drawn into ``out``, factorised by ``numpy.linalg.qr`` (``Q`` and ``R`` are new
    arrays), and ``Q`` times ``sign(diag(R))`` (Mezzadri's sign fix) is written back.
    """
    gen.standard_normal(dtype=out.dtype, out=out)
    q, r = np.linalg.qr(out)
    np.multiply(q, np.sign(np.diagonal(r)), out=out)
    return out


def _numpy_orthogonal(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.linalg.qr"
    gen = np.random.Generator(np.random.PCG64(SEED))
    return _Runner(lambda: numpy_orthogonal(gen, out),
                   note=f"Generator + linalg.qr + sign fix, {_blas_note(ctx)}")


def _scipy_orthogonal(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in scipy.linalg.qr"
    import scipy.linalg
    gen = np.random.Generator(np.random.PCG64(SEED))

    def call():
        gen.standard_normal(dtype=out.dtype, out=out)
        # out.T is Fortran-ordered: LAPACK factorises it in place (overwrite_a).
        q, r = scipy.linalg.qr(out.T, overwrite_a=True, mode="economic", check_finite=False)
        np.multiply(q, np.sign(np.diagonal(r)), out=out)
        return out
    return _Runner(call, note=f"qr(overwrite_a, economic) + sign fix, {_blas_note(ctx)}")


def _torch_orthogonal(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} QR in torch.linalg (CPU)"
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    t = torch.empty(out.shape, dtype=getattr(torch, out.dtype.name))
    return _Runner(lambda: torch.nn.init.orthogonal_(t),
                   note=f"nn.init.orthogonal_, {_threads(ctx)}")


def _jax_orthogonal(case, out, ctx):
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} QR in jax.numpy.linalg"
    import jax
    import jax.numpy as jnp
    if out.dtype == np.float64 and not jax.config.jax_enable_x64:
        return "float64 needs jax_enable_x64"
    dtype, shape = getattr(jnp, out.dtype.name), out.shape
    init = jax.nn.initializers.orthogonal()
    fn = jax.jit(lambda k: init(k, shape, dtype))
    key = jax.random.PRNGKey(SEED)
    return _Runner(lambda: fn(key), allocates_output=True,
                   finish=lambda r: r.block_until_ready(),
                   note="nn.initializers.orthogonal, jit, XLA's own threads")


def _installed(module):
    return importlib.util.find_spec(module) is not None


def implementations(case):
    """``(name, factory)`` for the rows of ``case``; optional peers only when installed."""
    if case == "variance_scaling":
        rows = [("fastinit numba", _fastinit_glorot("numba")),
                ("fastinit numpy", _fastinit_glorot("numpy")),
                ("numpy Generator", _numpy_glorot)]
        for module, name, factory in (("torch", "torch", _torch_glorot),
                                      ("jax", "jax", _jax_glorot),
                                      ("keras", "keras (numpy)", _keras_glorot)):
            if _installed(module):
                rows.append((name, factory))
        return rows
    if case == "orthogonal":
        rows = [("fastinit", _fastinit_orthogonal), ("numpy.linalg.qr", _numpy_orthogonal)]
        for module, name, factory in (("scipy", "scipy.linalg.qr", _scipy_orthogonal),
                                      ("torch", "torch", _torch_orthogonal),
                                      ("jax", "jax", _jax_orthogonal)):
            if _installed(module):
                rows.append((name, factory))
        return rows
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


class _BlasThreads:
    """The thread counts of the OpenBLAS libraries loaded in this process (NumPy's and
    SciPy's wheels each bring one), set through their own ``*_set_num_threads``.

    What ``threadpoolctl`` does, for OpenBLAS only and without the dependency; a library
    is found in ``/proc/self/maps`` once it is loaded, so :meth:`limit` is called again
    after each import. Elsewhere (no ``/proc``, another BLAS) it does nothing.
    """

    _SYMBOLS = [(f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}")
                for prefix in ("openblas", "scipy_openblas") for suffix in ("", "64_")]

    def __init__(self):
        self._saved = {}   # path -> (setter, original count)

    @staticmethod
    def _loaded():
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split(None, 5)[5].strip() for line in f
                         if line.count(" ") >= 5 and "openblas" in line.rsplit("/", 1)[-1]}
        except OSError:
            return []
        return sorted(p for p in paths if p.startswith("/") and ".so" in p)

    def limit(self, threads):
        """Set every loaded OpenBLAS to ``threads``; how many libraries were set."""
        import ctypes
        done = 0
        for path in self._loaded():
            if path not in self._saved:
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                for get_name, set_name in self._SYMBOLS:
                    getter, setter = getattr(lib, get_name, None), getattr(lib, set_name, None)
                    if getter is not None and setter is not None:
                        getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                        self._saved[path] = (setter, getter())
                        break
                else:
                    continue
            self._saved[path][0](threads)
            done += 1
        return done

    def restore(self):
        for setter, value in self._saved.values():
            setter(value)


def _thread_settings(blas=None):
    """A function restoring Numba's, (if loaded) PyTorch's and the BLAS thread counts as
    they are now (``blas``: the :class:`_BlasThreads` that :func:`run` limits)."""
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
        if blas is not None:
            blas.restore()
    return restore


def _make_output(n, dtype):
    from . import _dtypes
    out = np.empty(n, dtype=_dtypes.resolve(dtype))
    out.view(np.uint8)[:] = 0  # touch every page: the output is resident before measuring
    return out


def run(*, size=DEFAULT_SIZE, repeat=DEFAULT_REPEAT, dtype="float32", threads=None,
        cases=CASES, progress=False, ortho_size=DEFAULT_ORTHO_SIZE):
    """Run the benchmark; a list of :class:`Result`, one per (case, implementation).

    ``size`` is the element count of the flat cases and of the Glorot kernel,
    ``ortho_size`` the side of the orthogonal matrix (see :func:`case_shape`).
    """
    threads = threads or available_cores()
    blas = _BlasThreads()
    ctx = {"threads": threads, "blas": blas}
    meter = _PeakMeter()
    plan = [(case, name, factory) for case in cases for name, factory in implementations(case)]
    bar = _Progress(len(plan), progress)
    results = []
    restore = _thread_settings(blas)
    try:
        for case in cases:
            shape = case_shape(case, size, ortho_size)
            n = math.prod(shape)
            out = _make_output(n, dtype).reshape(shape)
            for name, factory in implementations(case):
                gc.collect()  # garbage of the previous row must not count against this one
                bar.begin(case, name)
                result = Result(case, name, n, np.dtype(out.dtype).name, shape=shape)
                try:
                    runner = factory(case, out, ctx)
                    if isinstance(runner, str):
                        result.skipped = runner
                    else:
                        result.note = runner.note
                        result.seconds, result.peak_bytes = _measure(
                            runner, n, repeat, out.dtype.itemsize, meter)
                        if case == "orthogonal":
                            result.note = (f"{_format_seconds(result.best)}/matrix, "
                                           f"{result.note}")
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
               "truncated_normal": f"trunc normal +-{TRUNCATION:g}",
               "variance_scaling": "glorot uniform", "orthogonal": "orthogonal"}


def _case_label(result):
    if result.case == "orthogonal" and len(result.shape) == 2:
        return f"orthogonal {result.shape[0]}x{result.shape[1]}"
    return _CASE_LABEL[result.case]


def _format_seconds(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def _shape_lines(results, dtype):
    """What the cases with their own shapes measure (their n differs from --size)."""
    shapes = {}
    for r in results:
        shapes.setdefault(r.case, (r.shape, r.n))
    lines = []
    if "variance_scaling" in shapes:
        shape, n = shapes["variance_scaling"]
        lines.append(f"glorot uniform: a {shape[0]:,} x {shape[1]:,} {dtype} kernel "
                     f"({n:,} elements, {n * _itemsize(dtype) / MiB:,.1f} MiB), "
                     f"limit sqrt(6 / (fan_in + fan_out)); torch fills the transposed "
                     f"(out, in) shape")
    if "orthogonal" in shapes:
        shape, n = shapes["orthogonal"]
        lines.append(f"orthogonal: one {shape[0]:,} x {shape[1]:,} {dtype} matrix "
                     f"({n:,} elements, {n * _itemsize(dtype) / MiB:,.1f} MiB); rate in "
                     f"elements/s, the time per matrix in the note")
    return lines


def format_table(results, *, info, command, size, dtype, repeat, threads, peak_ok):
    lines = [
        "fastinit side-by-side benchmark",
        f"machine: {_machine_line(info, threads)}",
        f"command: {command}",
        (f"n = {size:,} {dtype} elements ({size * _itemsize(dtype) / MiB:,.1f} MiB output), "
         if any(r.case in _FLAT_CASES for r in results) else f"{dtype}, ")
        + f"best of {repeat}, threads = {threads}",
        *_shape_lines(results, dtype),
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
        rows.append((_case_label(r), r.implementation, rate, ratio, peak, note))
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
        "the truncated normal; numpy.linalg.qr for the orthogonal matrix).",
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


def to_json(results, *, info, command, argv, size, dtype, repeat, threads, peak_ok,
            ortho_size=DEFAULT_ORTHO_SIZE):
    return {
        "benchmark": "fastinit.bench",
        "command": command,
        "argv": list(argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "settings": {"size": size, "dtype": dtype, "repeat": repeat, "threads": threads,
                     "seed": SEED, "truncation_std": TRUNCATION, "ortho_size": ortho_size,
                     "kernel_columns": KERNEL_COLUMNS, "peak_rss_measured": peak_ok},
        "results": [{
            "case": r.case,
            "implementation": r.implementation,
            "n": r.n,
            "shape": list(r.shape),
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


_PLOT_MISSING = ("--plot needs matplotlib, which is not installed: pip install matplotlib "
                 "(or pip install \"fastinit-ml[bench]\")")


def write_plot(results, path, *, title=None):
    """Write ``results`` (from :func:`run`) as a PNG bar chart to ``path``.

    One group of bars per case, one bar per implementation (the same colour for
    an implementation in every case), elements/s on a log scale; rows without a
    rate (skipped or failed) have no bar. Matplotlib is imported here, and the
    figure is drawn with the Agg renderer without ``pyplot``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_PLOT_MISSING) from exc
    cases, labels, names = [], {}, []
    for r in results:
        if r.case not in labels:
            cases.append(r.case)
            labels[r.case] = _case_label(r)
        if r.implementation not in names:
            names.append(r.implementation)
    rates = {(r.case, r.implementation): r.rate for r in results if r.rate}
    groups = [[r.implementation for r in results if r.case == case and r.rate]
              for case in cases]  # each case's rows, in the table's order
    width = 0.8 / max([1] + [len(g) for g in groups])
    fig = Figure(figsize=(max(6.4, 1.5 + 0.25 * len(rates)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}
    labelled = set()
    for i, (case, group) in enumerate(zip(cases, groups)):
        for j, name in enumerate(group):  # the case's bars, centred on its tick
            ax.bar(i + (j - (len(group) - 1) / 2) * width, rates[(case, name)], width=width,
                   color=colour[name], label=None if name in labelled else name)
            labelled.add(name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)), [labels[c] for c in cases])
    ax.set_ylabel("elements / s (log scale)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize="medium")
    if rates:
        ax.legend(fontsize="small", ncols=min(len(names), 4), loc="upper center",
                  bbox_to_anchor=(0.5, -0.1))
    fig.savefig(path, format="png", dpi=120)
    return path


def _plot_title(results, info, *, size, dtype, repeat, threads):
    n = f"n = {size:,} " if any(r.case in _FLAT_CASES for r in results) else ""
    return (f"fastinit bench: {n}{dtype}, best of {repeat}, threads = {threads}\n"
            f"{info['cpu_model']}")


def run_from_args(args, *, command, argv=()):
    """Run with parsed options (see :func:`add_arguments`), print the table; exit status."""
    size = args.size or (QUICK_SIZE if args.quick else args.size_default)
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    ortho_size = args.ortho_size or (QUICK_ORTHO_SIZE if args.quick else DEFAULT_ORTHO_SIZE)
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
    plot = getattr(args, "plot", None)
    if plot and importlib.util.find_spec("matplotlib") is None:
        print(f"error: {_PLOT_MISSING}", file=sys.stderr)  # before the run, not after it
        return 2
    progress = args.progress if args.progress is not None else size >= 10**7
    peak_ok = _PeakMeter().enabled
    load_before = _loadavg()
    results = run(size=size, repeat=repeat, dtype=args.dtype, threads=threads,
                  cases=args.cases, progress=progress, ortho_size=ortho_size)
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
            json.dump(to_json(results, argv=argv, ortho_size=ortho_size, **common), f,
                      indent=2)
            f.write("\n")
    if plot:
        write_plot(results, plot, title=_plot_title(results, info, size=size, dtype=args.dtype,
                                                    repeat=repeat, threads=threads))
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
