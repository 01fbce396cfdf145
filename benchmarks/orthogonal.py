"""Orthogonal initialization side by side: fastinit's methods against torch, NumPy, SciPy, JAX.

Each (library, shape) runs in its own subprocess, with 2 threads everywhere
(OpenBLAS, OpenMP, Numba, ``torch.set_num_threads(2)``). The time is the best
of ``--repeat`` runs; "extra" is the peak resident memory (``VmHWM``) above
the process's level before the first big allocation, minus the output
itself, as a multiple of the output's size.

Usage::

    python benchmarks/orthogonal.py                 # 4096 x 4096 and 8192 x 2048, float32
    python benchmarks/orthogonal.py --big           # also 16384^2 and 65536 x 4096 (fastinit)
    python benchmarks/orthogonal.py --shapes 2048x2048 --only fastinit-auto,torch
"""

import argparse
import json
import os
import subprocess
import sys
import time

THREADS = "2"
ENV = {"OPENBLAS_NUM_THREADS": THREADS, "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS,
       "NUMBA_NUM_THREADS": THREADS,
       "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"}

LIBRARIES = ["fastinit-auto", "fastinit-stewart", "fastinit-cholqr2", "fastinit-qr",
             "fastinit.torch", "torch", "numpy", "scipy", "jax"]


def _hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _load_kernels():
    """The normal float32 kernel, loaded (or compiled) now: a small warm-up call under
    backend="auto" gets NumPy's values without waiting for it."""
    import fastinit.random as fr
    fr.normal(10, seed=0, backend="numba")


def _make(library, rows, cols):
    """(warm-up callable on a small shape, the callable to time) for ``library``."""
    import numpy as np

    if library.startswith("fastinit-"):
        import fastinit.initializers as fi
        method = library.split("-", 1)[1]

        def run(r=rows, c=cols):
            out = np.empty((r, c), np.float32)
            return fi.Orthogonal(seed=0, method=method)((r, c), out=out)
        return lambda: (_load_kernels(), run(64, 32)), run
    if library == "fastinit.torch":
        import torch
        import fastinit.torch as ft
        torch.set_num_threads(2)

        def run(r=rows, c=cols):
            return ft.orthogonal_(torch.empty(r, c), seed=0)
        return lambda: (_load_kernels(), run(64, 32)), run
    if library == "torch":
        import torch
        torch.set_num_threads(2)

        def run(r=rows, c=cols):
            return torch.nn.init.orthogonal_(torch.empty(r, c))
        return lambda: run(64, 32), run
    if library in ("numpy", "scipy"):
        import scipy.linalg

        def run(r=rows, c=cols):  # Keras' NumPy-backend algorithm: QR + sign fix
            rng = np.random.default_rng(0)
            big, small = max(r, c), min(r, c)
            a = rng.standard_normal((big, small), dtype=np.float32)
            if library == "numpy":
                q, rr = np.linalg.qr(a)
            else:
                q, rr = scipy.linalg.qr(a, mode="economic", overwrite_a=True,
                                        check_finite=False)
            q *= np.sign(np.diag(rr))
            return q.T if r < c else q
        return lambda: run(64, 32), run
    if library == "jax":
        import jax

        init = jax.nn.initializers.orthogonal()

        def run(r=rows, c=cols):
            return init(jax.random.key(0), (r, c), jax.numpy.float32).block_until_ready()
        return lambda: run(64, 32), run
    raise ValueError(library)


def child(library, rows, cols, repeat):
    try:
        warm, run = _make(library, rows, cols)
    except ImportError as exc:
        return {"error": f"not installed ({exc.name})"}
    warm()
    base = _hwm()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        del result
    out_bytes = rows * cols * 4
    extra = max(0, _hwm() - base - out_bytes)
    return {"time": min(times), "times": times, "extra": extra / out_bytes}


def measure(library, rows, cols, repeat, timeout):
    cmd = [sys.executable, __file__, "--child", library, f"{rows}x{cols}", str(repeat)]
    env = dict(os.environ, **ENV)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x4096,8192x2048")
    parser.add_argument("--only", default=",".join(LIBRARIES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", action="store_true",
                        help="also 16384x16384 and 65536x4096 float32 with fastinit-auto")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        library, shape, repeat = args.child
        rows, cols = map(int, shape.split("x"))
        print(json.dumps(child(library, rows, cols, int(repeat))))
        return
    cases = [(tuple(map(int, s.split("x"))), args.only.split(",")) for s in args.shapes.split(",")]
    if args.big:
        cases += [((16384, 16384), ["fastinit-auto"]), ((65536, 4096), ["fastinit-auto"])]
    print(f"orthogonal init, float32, {THREADS} threads, best of {args.repeat}; "
          "extra = peak RSS above the output / output size")
    print(f"{'shape':>13} {'library':<17} {'time (s)':>9} {'vs torch':>9} {'extra':>7}")
    for (rows, cols), libraries in cases:
        results = {lib: measure(lib, rows, cols, args.repeat, args.timeout) for lib in libraries}
        torch_time = results.get("torch", {}).get("time")
        for lib, res in results.items():
            if "error" in res:
                print(f"{rows:>6}x{cols:<6} {lib:<17} {res['error']}")
                continue
            ratio = f"{torch_time / res['time']:8.2f}x" if torch_time else f"{'':>9}"
            print(f"{rows:>6}x{cols:<6} {lib:<17} {res['time']:9.2f} {ratio} "
                  f"{res['extra']:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
