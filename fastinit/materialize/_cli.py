"""``fastinit materialize SPEC OUT_DIR``: the command line of :mod:`fastinit.materialize`.

SPEC is a spec (JSON or TOML) or a transformers ``config.json`` (a file with a
``model_type``, or a directory holding one): the model it describes is built
on the meta device and written by :func:`~fastinit.materialize.materialize_module`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from . import DEFAULT_CHUNK_BYTES, materialize, materialize_npy_files, parse_spec
from ._plan import Plan

if TYPE_CHECKING:
    import argparse
    from types import FrameType

    from .._typing import StrPath

__all__ = ["add_arguments", "run_from_args"]


def _chunk_mb(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB. "
                                         f"Received: {text!r}")
    return value


def _seconds(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0. Received: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fastinit materialize``."""
    parser.add_argument("spec", metavar="SPEC",
                        help="model description (.json or .toml), or a transformers "
                             "config.json (or a directory holding one)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the run (default: the spec's 'seed'; 0 for a "
                             "transformers config)")
    parser.add_argument("--max-shard-size", default=None,
                        help="bytes of data per safetensors file, e.g. 5GB (default: the "
                             "spec's max_shard_size, else one file)")
    parser.add_argument("--format", choices=("safetensors", "npy"), default="safetensors",
                        help="safetensors files (default) or one NAME.npy per tensor")
    parser.add_argument("--chunk-mb", type=_chunk_mb, default=DEFAULT_CHUNK_BYTES / 2**20,
                        help="buffer size in MiB (default %(default)g)")
    parser.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dtype", default=None,
                        help="transformers config: the model's dtype (default: the config's)")
    parser.add_argument("--mode", choices=("auto", "plan", "live"), default="auto",
                        help="transformers config: record the init and write chunk by chunk "
                             "(plan), allocate the model (live), or plan when possible (auto)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="transformers config: allow the model code of an auto_map")
    parser.add_argument("--no-space-check", action="store_true",
                        help="write even when the files seem not to fit on the disk, or a "
                             "tensor computed whole (or a config's model) not in memory")
    parser.add_argument("--dry-run", action="store_true",
                        help="write nothing: list the files and bytes, the memory the run "
                             "needs and an estimated time")
    parser.add_argument("--lock-timeout", type=_seconds, default=0.0, metavar="SECONDS",
                        help="wait this long while another run writes to OUT_DIR (default 0: "
                             "fail at once)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``fastinit materialize`` from parsed arguments; returns the exit status.

    Every error is one line on stderr and exit status 2; Ctrl-C is status 130, a
    SIGTERM 143 (the commit protocol settles the directory first)."""
    import signal

    def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        paths = _run(args)
    except ImportError as exc:
        return _error(f"a transformers config needs torch and transformers: {exc}")
    except OSError as exc:  # fastinit's own say it all in strerror; the OS's need the path
        return _error(exc.strerror if exc.strerror and exc.filename is None else str(exc))
    except (ValueError, TypeError) as exc:
        return _error(str(exc))
    except RecursionError:
        return _error("the spec is nested too deeply")
    except KeyboardInterrupt:
        print("fastinit materialize: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if isinstance(paths, Plan):  # --dry-run
        print(paths.describe())
        return 0
    for p in paths:
        print(p)
    return 0


def _error(message: str) -> int:
    print(f"fastinit materialize: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> list[str] | Plan:
    chunk = int(args.chunk_mb * 2**20)
    options = dict(chunk_bytes=chunk, backend=args.backend,
                   progress=False if args.no_progress else None,
                   check_space=not args.no_space_check, lock_timeout=args.lock_timeout,
                   dry_run=args.dry_run)
    config = model_config(args.spec)
    if config is not None:
        if args.format == "npy":
            raise ValueError("a transformers config is written as safetensors files. "
                             "Received: --format npy")
        from ._config import model_from_config
        from ._module import materialize_module
        model = model_from_config(config, args.out_dir, dtype=args.dtype,
                                  trust_remote_code=args.trust_remote_code,
                                  check_space=options["check_space"],
                                  check_disk=not args.dry_run)
        return materialize_module(model, args.out_dir, 0 if args.seed is None else args.seed,
                                  mode=args.mode, max_shard_size=args.max_shard_size, **options)
    if args.format == "npy":
        tensors, _ = parse_spec(args.spec, args.seed)
        return materialize_npy_files(tensors, args.out_dir, **options)
    return materialize(args.spec, args.out_dir, args.seed, max_shard_size=args.max_shard_size,
                       **options)


def model_config(path: StrPath) -> str | None:
    """The path of the transformers ``config.json`` that ``path`` is or holds, else None."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
        return path if os.path.isfile(path) else None
    if not path.lower().endswith(".json"):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None  # the spec reader reports it
    return path if isinstance(data, dict) and "model_type" in data and "tensors" not in data \
        else None
