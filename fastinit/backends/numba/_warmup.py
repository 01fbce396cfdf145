"""Compile the Numba kernels ahead of use (``fastinit.warmup``, ``fastinit warmup``).

Each ``(distribution, precision, output kind)`` (and truncated-normal
proposal) is its own kernel, compiled on first use and cached on disk (see
:mod:`._jit` for where); warming up compiles the named ones now, for a
container image or a CI cache, so that no later process pays for it. A
kernel already in the cache is only loaded.
"""

import sys
import time

from ... import _checks, _dtypes, stream
from . import _kernels

DISTRIBUTIONS = {"uniform": stream.UNIFORM, "normal": stream.NORMAL,
                 "truncated_normal": stream.TRUNCATED_NORMAL}
_OUT_KIND = {"float16": _kernels.OUT_FLOAT16, "bfloat16": _kernels.OUT_BFLOAT16,
             "float32": _kernels.OUT_NATIVE, "float64": _kernels.OUT_NATIVE}
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def _names(value, known, what):
    if value is None or value == "all":
        return list(known)
    if isinstance(value, str):
        value = [value]
    names = []
    for v in value:
        name = _dtypes.resolve(v).name if what == "dtypes" else v
        if name not in known:
            raise ValueError(f"Unknown {what[:-1]}: expected 'all' or some of "
                             f"{', '.join(known)}. Received: {what}={value!r}")
        names.append(name)
    return list(dict.fromkeys(names))


def plan(distributions=None, dtypes=None):
    """The kernels that :func:`warmup` compiles: ``("fill", spec)`` and ``("copy", itemsize)``."""
    dists = _names(distributions, DISTRIBUTIONS, "distributions")
    dts = _names(dtypes, _dtypes.SUPPORTED, "dtypes")
    jobs = []
    for dt in dts:
        wide = dt == "float64"
        for name in dists:
            kind = DISTRIBUTIONS[name]
            proposals = (_kernels.PROPOSAL_NAMES if kind == stream.TRUNCATED_NORMAL else (0,))
            for proposal in proposals:
                jobs.append(("fill", (kind, wide, _OUT_KIND[dt], proposal)))
    for size in sorted({_ITEMSIZE[dt] for dt in dts}):
        jobs.append(("copy", size))
    return jobs


def _name(job):
    kind, arg = job
    return _kernels.kernel_name(*arg) if kind == "fill" else f"copy_2d_u{8 * arg}"


def compile_jobs(jobs):
    """Compile (or load) ``jobs`` in this process; seconds per kernel name."""
    seconds = {}
    for job in jobs:
        t0 = time.perf_counter()
        if job[0] == "fill":
            _kernels.fill_kernel(*job[1])
        else:
            _kernels.copy_kernel(job[1])
        seconds[_name(job)] = time.perf_counter() - t0
    return seconds


def warmup(distributions=None, dtypes=None, *, processes=1, verbose=False):
    """:func:`fastinit.warmup`: seconds per kernel name."""
    processes = _checks.check_integer(processes, "processes")
    if processes < 1:
        raise ValueError(f"processes must be >= 1. Received: processes={processes}")
    from . import _jit
    jobs = plan(distributions, dtypes)
    if processes > 1 and len(jobs) > 1 and _jit.cache_dir() is not None:
        import concurrent.futures
        import multiprocessing
        parts = [jobs[i::processes] for i in range(processes)]
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited state
        with concurrent.futures.ProcessPoolExecutor(len(parts), mp_context=ctx) as pool:
            for seconds in pool.map(compile_jobs, parts):
                if verbose:
                    for name, s in seconds.items():
                        print(f"{name:45s} {s:7.3f} s (pid pool)", flush=True)
    seconds = {}
    for job in jobs:
        seconds.update(compile_jobs([job]))
        if verbose:
            name = _name(job)
            print(f"{name:45s} {seconds[name]:7.3f} s", flush=True)
    return seconds


def main(args):
    """``fastinit warmup``: the command line of :func:`fastinit.warmup`."""
    from . import _jit
    t0 = time.perf_counter()
    dists = None if args.all or not args.distributions else args.distributions.split(",")
    dts = None if args.all or not args.dtypes else args.dtypes.split(",")
    try:
        seconds = warmup(dists, dts, processes=args.processes, verbose=not args.quiet)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    where = _jit.cache_dir()
    print(f"{len(seconds)} kernels ready in {time.perf_counter() - t0:.1f} s "
          f"(cache: {where or 'none writable, not cached'})")
    return 0
