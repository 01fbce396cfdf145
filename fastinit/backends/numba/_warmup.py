"""Compile the Numba kernels ahead of use (``fastinit.warmup``, ``fastinit warmup``).

Each ``(distribution, precision, output kind)`` (and truncated-normal
proposal) is its own kernel, compiled on first use and cached on disk (see
:mod:`._cache` for where); warming up compiles the named ones now, for a
container image or a CI cache, so that no later process pays for it. A
kernel already in the cache is only loaded.

With ``processes=N``, helper processes compile kernels beside this one, but
never more processes (this one included) than ``N``, the usable cores, or
half the kernels not cached yet: a helper's start-up (an interpreter, NumPy,
Numba) costs about one compilation, so a helper with fewer than two kernels
to compile would slow the warm-up down. The helpers take kernels from the
front of the list, this process from the back; what a helper compiled, this
process then loads. The command exits non-zero when nothing could be cached
(no writable cache directory, or ``NUMBA_DISABLE_JIT``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import numpy as np

from ... import _checks, _dtypes, _system, stream
from . import _background, _spec

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Collection, Sequence

    import numpy.typing as npt

    from ._spec import Job

    #: ``report(kernel name, seconds, where)``: prints a line when verbose.
    Report = Callable[[str, float, str], None]

DISTRIBUTIONS = {"uniform": stream.UNIFORM, "normal": stream.NORMAL,
                 "truncated_normal": stream.TRUNCATED_NORMAL}
_OUT_KIND = {"float16": _spec.OUT_FLOAT16, "bfloat16": _spec.OUT_BFLOAT16,
             "float32": _spec.OUT_NATIVE, "float64": _spec.OUT_NATIVE}
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
KERNELS_PER_HELPER = 2  # a helper process is worth its start-up from this many kernels


def _names(value: object, known: Collection[str], what: str) -> list[str]:
    """The names ``value`` gives: None or "all" (every one), a name (for dtypes: a dtype),
    or an iterable of them; each checked."""
    if value is None or isinstance(value, str) and value == "all":
        return list(known)
    if isinstance(value, (str, np.dtype, type)):
        items: list[object] = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise TypeError(f"{what} must be 'all', a {'dtype' if what == 'dtypes' else 'name'} "
                        f"or a sequence of them. Received: {what}={value!r}")
    names = []
    for v in items:
        name = _dtypes.resolve(cast("npt.DTypeLike", v)).name if what == "dtypes" else v
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"Unknown {what[:-1]}: expected 'all' or some of "
                             f"{', '.join(known)}. Received: {what}={value!r}")
        names.append(name)
    return list(dict.fromkeys(names))


def plan(distributions: str | Sequence[str] | None = None,
         dtypes: npt.DTypeLike | Sequence[npt.DTypeLike] | None = None) -> list[Job]:
    """The kernels that :func:`warmup` compiles: ``("fill", spec)`` and ``("copy", itemsize)``."""
    dists = _names(distributions, DISTRIBUTIONS, "distributions")
    dts = _names(dtypes, _dtypes.SUPPORTED, "dtypes")
    jobs: list[Job] = []
    for dt in dts:
        wide = dt == "float64"
        for name in dists:
            kind = DISTRIBUTIONS[name]
            proposals = (_spec.PROPOSAL_NAMES if kind == stream.TRUNCATED_NORMAL else (0,))
            for proposal in proposals:
                jobs.append(_spec.fill_job(kind, wide, _OUT_KIND[dt], proposal))
    for size in sorted({_ITEMSIZE[dt] for dt in dts}):
        jobs.append(("copy", size))
    return jobs


def compile_jobs(jobs: list[Job], cache_dir: str | None = None) -> dict[str, float]:
    """Compile (or load) ``jobs`` in this process; seconds per kernel name.

    ``cache_dir``: the cache directory to use (a helper uses its parent's).
    """
    from . import _cache
    if cache_dir is not None:
        _cache.use_cache_dir(cache_dir)
    seconds = {}
    for job in jobs:
        t0 = time.perf_counter()
        _background.make(job)
        seconds[_spec.job_name(job)] = time.perf_counter() - t0
    return seconds


def helper_count(processes: int, uncached: int) -> int:
    """Helper processes for ``uncached`` kernels with at most ``processes`` in all."""
    return max(0, min(processes, _system.available_cores(),
                      uncached // KERNELS_PER_HELPER) - 1)


def warmup(distributions: str | Sequence[str] | None = None,
           dtypes: npt.DTypeLike | Sequence[npt.DTypeLike] | None = None, *, processes: int = 1,
           verbose: bool = False) -> dict[str, float]:
    """:func:`fastinit.warmup`: seconds per kernel name."""
    processes = _checks.check_integer(processes, "processes")
    if processes < 1:
        raise ValueError(f"processes must be >= 1. Received: processes={processes}")
    jobs = plan(distributions, dtypes)
    from numba.core import config

    from . import _cache
    if config.DISABLE_JIT:
        raise RuntimeError("NUMBA_DISABLE_JIT is set: Numba compiles nothing, and fastinit "
                           "computes with NumPy. Unset it to compile the kernels.")
    where = _cache.cache_dir()
    uncached = [] if where is None else [
        job for job in jobs if not _cache.has_index(_spec.job_name(job))]
    helpers = helper_count(processes, len(uncached))
    report = _reporter(verbose)
    seconds = _with_helpers(uncached, helpers, where, report) if helpers else {}
    for job in jobs:  # everything else, in order: the helpers' kernels are loaded here
        name = _spec.job_name(job)
        if name not in seconds:
            seconds.update(compile_jobs([job]))
            report(name, seconds[name], "")
    return seconds


def _with_helpers(jobs: list[Job], helpers: int, where: str | None,
                  report: Report) -> dict[str, float]:
    """Compile ``jobs`` here (from the back) and in ``helpers`` processes (from the front);
    seconds per kernel this process compiled."""
    import concurrent.futures
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited state
    seconds = {}
    with concurrent.futures.ProcessPoolExecutor(helpers, mp_context=ctx) as pool:
        futures = [pool.submit(compile_jobs, [job], where) for job in jobs]
        for job, future in zip(reversed(jobs), reversed(futures)):
            if not future.cancel():  # a helper has it: the rest are theirs too
                break
            seconds.update(compile_jobs([job]))
            name = _spec.job_name(job)
            report(name, seconds[name], "")
        for future in futures:
            if not future.cancelled():
                for name, s in future.result().items():
                    report(name, s, " (in a helper process)")
    return seconds


def _reporter(verbose: bool) -> Report:
    def report(name: str, s: float, where: str) -> None:
        if verbose:
            print(f"{name:45s} {s:7.3f} s{where}", flush=True)
    return report


def main(args: argparse.Namespace) -> int:
    """``fastinit warmup``: the command line of :func:`fastinit.warmup`.

    Exit status: 0 when the kernels are in the disk cache, 1 when nothing could be
    cached (no writable cache directory, or ``NUMBA_DISABLE_JIT``), 2 for bad arguments.
    """
    t0 = time.perf_counter()
    dists = None if args.all or not args.distributions else args.distributions.split(",")
    dts = None if args.all or not args.dtypes else args.dtypes.split(",")
    try:
        seconds = warmup(dists, dts, processes=args.processes, verbose=not args.quiet)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from . import _cache
    where = _cache.cache_dir()
    if where is None:
        print(f"error: {len(seconds)} kernels compiled, none cached: no cache directory is "
              "writable (set NUMBA_CACHE_DIR to one)", file=sys.stderr)
        return 1
    print(f"{len(seconds)} kernels ready in {time.perf_counter() - t0:.1f} s (cache: {where})")
    return 0
