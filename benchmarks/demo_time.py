"""Wall time of ``fastinit demo`` (README's first command) with an empty kernel cache.

Runs the demo in a fresh process with ``NUMBA_CACHE_DIR`` pointing to a new, empty
temporary folder (so every Numba kernel is compiled, as on a fresh machine), ``--runs``
times, and prints each wall time with the load average before and after (other work on
the machine makes the time longer; quote a run on a quiet machine), then the table of
the last run. The demo's targets (issue 21): at most 45 s on 2 cores with PyTorch and
JAX installed, at most 30 s without them. Examples::

    python benchmarks/demo_time.py                          # the fastinit on the path
    python benchmarks/demo_time.py --python /venv-min/bin/python --runs 2

``--python`` chooses the interpreter (a virtual environment holding only what
``pip install .`` installs, for the 30 s target); the demo runs as
``python -c "from fastinit.cli import main; main(['demo'])"``, which imports the
installed package, not a checkout in the current directory.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

CODE = "import sys; from fastinit.cli import main; sys.exit(main(['demo', '--no-progress']))"


def _load():
    try:
        return "load %.2f" % os.getloadavg()[0]
    except OSError:
        return "load n/a"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to run the demo with (default: this one)")
    parser.add_argument("--runs", type=int, default=1, help="fresh runs (default 1)")
    parser.add_argument("--quiet", action="store_true", help="do not print the last table")
    args = parser.parse_args(argv)
    out = ""
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="fastinit-demo-cache-") as cache, \
                tempfile.TemporaryDirectory(prefix="fastinit-demo-cwd-") as cwd:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            before = _load()
            t0 = time.perf_counter()
            proc = subprocess.run([args.python, "-c", CODE], cwd=cwd, env=env,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return proc.returncode
        out = proc.stdout
        print(f"run {run}: fastinit demo, empty kernel cache: {seconds:.1f} s wall "
              f"({before} before, {_load()} after)", flush=True)
    if not args.quiet:
        print("\n" + out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
