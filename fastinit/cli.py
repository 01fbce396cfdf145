"""The ``fastinit`` command line.

Subcommands:

``fastinit bench [options]``
    The side-by-side benchmark of :mod:`fastinit.bench` (fastinit's Numba and
    NumPy backends against NumPy, and PyTorch / JAX when installed).
``fastinit demo [options]``
    The same benchmark with the default size (1e8 elements), introduced by a
    line saying what it does.
``fastinit warmup [--all | --distributions LIST --dtypes LIST] [-j N]``
    Compile the Numba kernels into the disk cache ahead of use
    (:func:`fastinit.warmup`), for container images and CI caches.
``fastinit materialize SPEC OUT_DIR [options]``
    Random-weight safetensors checkpoints (:mod:`fastinit.materialize`).

``fastinit`` (or ``python -m fastinit``) without a command prints this help and
exits 0: asking for nothing is asking what there is (as ``pip`` does), and a bare
command must not start a two-minute benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

DEMO_INTRO = ("fastinit demo: initialises {size}-element {dtype} tensors (normal, uniform, "
              "truncated normal, a Glorot-uniform kernel) and an orthogonal matrix with "
              "fastinit and compares with NumPy{peers}, in this one process.")


#: Implementations the demo leaves out (``fastinit bench`` runs them).
DEMO_SKIP = ("fastinit numpy", "scipy.linalg.qr", "keras (numpy)")


def _short_size(n: int) -> str:
    """``100000000`` -> ``"1e8"``; other counts with thousands separators."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{n:.0e}") == n else f"{n:,}"


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("__main__.py", "-m", "-c", ""):
        return "python -m fastinit"
    return name if name == "fastinit" else "fastinit"


def _peers() -> str:
    import importlib.util
    names = [n for n, mod in (("PyTorch", "torch"), ("JAX", "jax"))
             if importlib.util.find_spec(mod) is not None]
    return f" and {' and '.join(names)}" if names else " (and PyTorch / JAX if installed)"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from . import __version__
    from .bench import cases, cli as bench
    parser = argparse.ArgumentParser(
        prog=prog or _prog(),
        description="fastinit: fast, reproducible weight initialization.",
        epilog=f"Start with '{prog or _prog()} demo': fastinit against NumPy (and PyTorch / "
               "JAX when installed) on this machine, in under a minute.")
    parser.add_argument("--version", action="version", version=f"fastinit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_bench = sub.add_parser(
        "bench", help="benchmark fastinit side by side with NumPy (and PyTorch / JAX)",
        description=bench.DESCRIPTION)
    # bench finishes in under a minute on 2 cores by default; demo shows the 1e8 run
    bench.add_arguments(p_bench, size_default=cases.BENCH_SIZE)
    p_demo = sub.add_parser(
        "demo", help="initialise 1e8-element float32 tensors and compare with NumPy",
        description="Run the side-by-side benchmark with its defaults (n = 1e8, float32).")
    # The demo shows fastinit against NumPy, PyTorch and JAX; the NumPy fallback's rows
    # (half the demo's time), SciPy's QR and Keras' NumPy backend are in `fastinit bench`.
    bench.add_arguments(p_demo, skip_default=DEMO_SKIP)
    p_warmup = sub.add_parser(
        "warmup", help="compile the Numba kernels into the disk cache ahead of use",
        description="Compile (or load) fastinit's Numba kernels now, so that later "
                    "processes find them in the disk cache.")
    p_warmup.add_argument("--all", action="store_true",
                          help="every distribution and dtype (the default)")
    p_warmup.add_argument("--distributions", metavar="LIST",
                          help="comma-separated: uniform, normal, truncated_normal")
    p_warmup.add_argument("--dtypes", metavar="LIST",
                          help="comma-separated: float16, bfloat16, float32, float64")
    p_warmup.add_argument("--processes", "-j", type=int, default=1,
                          help="compile in up to this many processes at once (default 1; "
                               "no more than the cores, nor half the kernels to compile)")
    p_warmup.add_argument("--quiet", "-q", action="store_true")
    from .materialize import _cli as materialize
    materialize.add_arguments(sub.add_parser(
        "materialize", help="write a model spec (JSON/TOML) or a transformers config.json "
                            "to safetensors files",
        description="Write the tensors of SPEC (a spec, or the model a transformers "
                    "config.json describes) to safetensors files in OUT_DIR, chunk by chunk, "
                    "atomically (see fastinit.materialize)."))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastinit`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = _prog()
    parser = build_parser(prog)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command == "materialize":
        from .materialize import _cli as materialize
        return materialize.run_from_args(args)
    if args.command == "warmup":
        from .backends import numba_available
        if not numba_available():
            print("error: fastinit warmup compiles the Numba kernels: it needs the numba "
                  "package (pip install numba)", file=sys.stderr)
            return 2
        from .backends.numba import _warmup
        return _warmup.main(args)
    from .bench import cases, cli as bench
    command = bench.command_line(prog, argv)
    if args.command == "demo":
        size = args.size or (cases.QUICK_SIZE if args.quick else args.size_default)
        print(DEMO_INTRO.format(size=_short_size(size), dtype=args.dtype, peers=_peers()),
              flush=True)
    return bench.run_from_args(args, command=command, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
