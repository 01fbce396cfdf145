"""``fastinit materialize SPEC OUT_DIR``: the command line of :mod:`fastinit.materialize`."""

import math
import sys

from . import DEFAULT_CHUNK_BYTES, materialize, materialize_npy_files, parse_spec

__all__ = ["add_arguments", "run_from_args"]


def _chunk_mb(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB. "
                                         f"Received: {text!r}")
    return value


def add_arguments(parser):
    """The options of ``fastinit materialize``."""
    parser.add_argument("spec", metavar="SPEC", help="model description (.json or .toml)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the run (default: the spec's 'seed')")
    parser.add_argument("--max-shard-size", default=None,
                        help="bytes of data per safetensors file, e.g. 5GB (default: the "
                             "spec's max_shard_size, else one file)")
    parser.add_argument("--format", choices=("safetensors", "npy"), default="safetensors",
                        help="safetensors files (default) or one NAME.npy per tensor")
    parser.add_argument("--chunk-mb", type=_chunk_mb, default=DEFAULT_CHUNK_BYTES / 2**20,
                        help="buffer size in MiB (default %(default)g)")
    parser.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-space-check", action="store_true",
                        help="write even when the files seem not to fit on the disk, or a "
                             "tensor computed whole not in memory")


def run_from_args(args):
    """Run ``fastinit materialize`` from parsed arguments; returns the exit status."""
    import signal

    def _terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    chunk = int(args.chunk_mb * 2**20)
    progress = False if args.no_progress else None
    check_space = not args.no_space_check
    try:
        if args.format == "npy":
            tensors, _ = parse_spec(args.spec, args.seed)
            paths = materialize_npy_files(tensors, args.out_dir, chunk_bytes=chunk,
                                          backend=args.backend, progress=progress,
                                          check_space=check_space)
        else:
            paths = materialize(args.spec, args.out_dir, args.seed,
                                max_shard_size=args.max_shard_size, chunk_bytes=chunk,
                                backend=args.backend, progress=progress,
                                check_space=check_space)
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastinit materialize: error: {exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print("fastinit materialize: error: the spec is nested too deeply", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    for p in paths:
        print(p)
    return 0
