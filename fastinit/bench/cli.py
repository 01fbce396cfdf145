"""``fastinit bench`` / ``fastinit demo``: options, the run, the printed table."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from .. import _units
from .._system import available_memory
from .cases import ALL_CASES, CASES, DEFAULT_BUDGET, DEFAULT_ORTHO_SIZE, DEFAULT_REPEAT, \
    DEFAULT_SIZE, DTYPES, JAX_CASES, QUICK_ORTHO_SIZE, QUICK_SIZE, implementations
from .measure import _PeakMeter, _loadavg, available_cores, machine_info, run
from .report import PLOT_MISSING, format_table, plot_title, to_json, write_plot

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["add_arguments", "run_from_args", "main", "command_line", "DESCRIPTION"]

DESCRIPTION = "Side-by-side benchmark: fastinit against NumPy (and PyTorch / JAX when installed)."


def parse_count(text: str) -> int:
    """``--size``: an element count (``1e8``, ``2**20``), an argparse error otherwise."""
    try:
        return _units.parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_cases(text: str) -> list[str]:
    cases = [c.strip() for c in str(text).split(",") if c.strip()]
    aliases = {"trunc_normal": "truncated_normal", "truncnorm": "truncated_normal",
               "truncated": "truncated_normal", "glorot": "variance_scaling", "llama": "model",
               "glorot_uniform": "variance_scaling", "xavier": "variance_scaling",
               "xavier_uniform": "variance_scaling", "ortho": "orthogonal"}
    cases = [aliases.get(c, c) for c in cases]
    cases = [name for c in cases for name in (JAX_CASES if c == "jax" else (c,))]
    bad = [c for c in cases if c not in ALL_CASES]
    if bad or not cases:
        raise argparse.ArgumentTypeError(
            f"cases must be a comma-separated list of {', '.join(ALL_CASES)}. "
            f"Received: {text!r}")
    return list(dict.fromkeys(cases))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number. Received: {text!r}")
    return value


def _parse_names(text: str) -> list[str]:
    return [n.strip() for n in str(text).split(",") if n.strip()]


def add_arguments(parser: argparse.ArgumentParser, *, size_default: int = DEFAULT_SIZE,
                  skip_default: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Add the benchmark options to ``parser`` (shared by ``bench`` and ``demo``)."""
    parser.add_argument("--size", "-n", type=parse_count, default=None, metavar="N",
                        help=f"elements per tensor, e.g. 1e8 (default {size_default:.0e}; "
                             f"{QUICK_SIZE:.0e} with --quick)")
    parser.add_argument("--repeat", "-r", type=_positive_int, default=None, metavar="R",
                        help=f"timed calls per implementation, the best is reported "
                             f"(default {DEFAULT_REPEAT}; 1 with --quick)")
    parser.add_argument("--budget", type=_positive_float, default=DEFAULT_BUDGET,
                        metavar="SECONDS",
                        help="no further timed call for an implementation once its timed "
                             f"calls have taken this long (default {DEFAULT_BUDGET:g}; the "
                             "first always runs)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="output dtype (default float32); peers without it are skipped")
    parser.add_argument("--threads", "-t", type=_positive_int, default=None, metavar="T",
                        help="threads for fastinit's kernels, PyTorch and OpenBLAS (NumPy's "
                             "and SciPy's QR in the orthogonal case) (default: all cores, "
                             f"{available_cores()} here)")
    parser.add_argument("--cases", type=_parse_cases, default=list(CASES), metavar="LIST",
                        help=f"comma-separated cases (default {','.join(CASES)}; also "
                             "'model': a Llama-style transformers model of about --size "
                             "parameters, needs transformers; 'jax': fastinit.jax on XLA "
                             "against jax.random under jit, x NumPy then being x jax.random)")
    parser.add_argument("--skip", type=_parse_names, default=list(skip_default),
                        metavar="LIST",
                        help="comma-separated implementations to leave out, e.g. 'fastinit "
                             f"numpy,jax' (default: {','.join(skip_default) or 'none'})")
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
    parser.set_defaults(size_default=size_default, skip_default=tuple(skip_default))
    return parser


def _check_outputs(*paths: str | None) -> str | None:
    """Why a result file could not be written (checked before the run, not after it)."""
    for path in paths:
        if path is None:
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            return f"cannot write {path!r}: {directory!r} is not a writable directory"
        if os.path.isdir(path):
            return f"cannot write {path!r}: it is a directory"
    return None


def _check_memory(size: int, dtype: str) -> str | None:
    """Why ``size`` elements would not fit: the output, PyTorch's own tensor (alive while
    the implementations take turns) and a peer's temporaries (up to ~4x the output)."""
    itemsize = 2 if dtype in ("float16", "bfloat16") else np.dtype(dtype).itemsize
    need, available = 6 * size * itemsize, available_memory()
    if available is not None and need > available:
        return (f"--size {size:,} needs about {need / 2**30:,.1f} GiB (the output and the "
                f"peers' temporaries) but {available / 2**30:,.1f} GiB are available")
    return None


def run_from_args(args: argparse.Namespace, *, command: str, argv: Sequence[str] = ()) -> int:
    """Run with parsed options (see :func:`add_arguments`), print the table; exit status."""
    size = args.size or (QUICK_SIZE if args.quick else args.size_default)
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    ortho_size = args.ortho_size or (QUICK_ORTHO_SIZE if args.quick else DEFAULT_ORTHO_SIZE)
    threads = args.threads or available_cores()
    if args.dtype == "bfloat16" and importlib.util.find_spec("ml_dtypes") is None:
        print("error: --dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes)",
              file=sys.stderr)
        return 2
    plot = getattr(args, "plot", None)
    if plot and importlib.util.find_spec("matplotlib") is None:
        print(f"error: {PLOT_MISSING}", file=sys.stderr)  # before the run, not after it
        return 2
    known = {name for case in ALL_CASES for name, _ in implementations(case)}
    # A default skip may name a peer that is not installed here.
    known.update(getattr(args, "skip_default", ()))
    unknown = [name for name in args.skip if name not in known]
    if unknown:
        print(f"error: --skip names no implementation: {', '.join(map(repr, unknown))} "
              f"(known here: {', '.join(sorted(known))})", file=sys.stderr)
        return 2
    problem = _check_outputs(args.json, plot) or _check_memory(size, args.dtype)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    progress = args.progress if args.progress is not None else size >= 10**7
    peak_ok = _PeakMeter().enabled
    load_before = _loadavg()
    results = run(size=size, repeat=repeat, dtype=args.dtype, threads=threads,
                  cases=args.cases, progress=progress, ortho_size=ortho_size,
                  skip=args.skip, budget=args.budget)
    info = machine_info()
    info["loadavg_before"], info["loadavg_after"] = load_before, _loadavg()
    common = dict(info=info, command=command, size=size, dtype=args.dtype, repeat=repeat,
                  threads=threads, peak_ok=peak_ok, budget=args.budget)
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
        write_plot(results, plot, title=plot_title(results, info, size=size, dtype=args.dtype,
                                                    repeat=repeat, threads=threads))
    return 0


def command_line(prog: str, argv: Sequence[str]) -> str:
    import shlex
    return " ".join([prog] + [shlex.quote(a) for a in argv])


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``python -m fastinit.bench [options]``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or "python -m fastinit.bench"
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, command=command_line(prog, argv), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
