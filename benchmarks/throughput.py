"""Throughput of fastinit's Numba kernels against NumPy and PyTorch, interleaved.

One process per (source tree, CPU setting); inside it every implementation
runs once per round, round after round (interleaved, so that a change of the
machine's load hits all of them alike), and the best and the median round
are reported. Several trees (``--tree name=path``, e.g. the code before and
after a change) and CPU settings run alternately, ``--runs`` times each::

    python benchmarks/throughput.py --tree before=/work/baseline --tree after=. \\
        --cpu host --cpu haswell --size 5e7 --threads 2

``--cpu haswell`` compiles for an AVX2-only machine: ``NUMBA_CPU_NAME=haswell``
*and* ``NUMBA_CPU_FEATURES`` (Haswell's features; with the CPU name alone
Numba keeps the host's features, AVX-512 included). Each setting uses its
own fresh Numba cache directory, filled by an untimed first call.

Peers: ``numpy.random.Generator(PCG64)`` ``standard_normal`` / ``random``
into the output (float32, single-threaded), a NumPy rejection loop for the
truncated normal, and ``torch`` ``Tensor.normal_`` / ``uniform_`` /
``torch.nn.init.trunc_normal_`` with ``--threads`` threads.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HASWELL_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,"
                    "+fxsr,+invpcid,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+rdrnd,+sahf,+sse,"
                    "+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")

CHILD = r'''
import json, sys, time, os
import numpy as np
n, threads, rounds = int(float(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
dtype = sys.argv[4]
import fastinit, fastinit.random as fr
if hasattr(fastinit, "set_num_threads"):
    fastinit.set_num_threads(threads)
else:  # the Numba-threaded backend of before
    import numba
    numba.set_num_threads(threads)
out = np.empty(n, dtype=np.dtype(dtype) if dtype != "bfloat16" else fr._dtypes.resolve(dtype))
impls = {
    "fastinit normal": lambda: fr.normal(out=out, seed=0, backend="numba"),
    "fastinit uniform": lambda: fr.uniform(out=out, seed=0, backend="numba"),
    "fastinit truncated_normal": lambda: fr.truncated_normal(out=out, seed=0, backend="numba"),
}
if dtype in ("float32", "float64"):
    gen = np.random.Generator(np.random.PCG64(0))
    ref = out
    def rejection():
        gen.standard_normal(out.size, dtype=out.dtype, out=out)
        redo = np.flatnonzero((out < -2) | (out > 2))
        while redo.size:
            draw = gen.standard_normal(redo.size, dtype=out.dtype)
            out[redo] = draw
            redo = redo[(draw < -2) | (draw > 2)]
    impls.update({
        "numpy normal": lambda: gen.standard_normal(out.size, dtype=out.dtype, out=out),
        "numpy uniform": lambda: gen.random(out.size, dtype=out.dtype, out=out),
        "numpy truncated_normal": rejection,
    })
try:
    import torch
    torch.set_num_threads(threads)
    t = torch.from_numpy(out) if dtype in ("float32", "float64") else None
    if t is not None:
        impls.update({
            "torch normal": lambda: t.normal_(),
            "torch uniform": lambda: t.uniform_(),
            "torch truncated_normal": lambda: torch.nn.init.trunc_normal_(t, a=-2.0, b=2.0),
        })
except ImportError:
    pass
for f in impls.values():  # compile (or load) and touch the pages
    f()
times = {k: [] for k in impls}
slow = {"numpy truncated_normal", "torch truncated_normal"}
for r in range(rounds):
    for k, f in impls.items():
        if k in slow and r >= max(1, rounds // 3):
            continue  # seconds per call: fewer rounds
        t0 = time.perf_counter(); f(); times[k].append(time.perf_counter() - t0)
print(json.dumps({"n": n, "times": times, "file": fastinit.__file__}))
'''


def run_child(tree, cpu, args, cache):
    env = dict(os.environ, PYTHONPATH=tree, NUMBA_CACHE_DIR=cache)
    env.pop("NUMBA_CPU_NAME", None)
    env.pop("NUMBA_CPU_FEATURES", None)
    if cpu == "haswell":
        env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=HASWELL_FEATURES)
    elif cpu == "haswell-name-only":
        env.update(NUMBA_CPU_NAME="haswell")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(args.size), str(args.threads),
                           str(args.rounds), args.dtype], env=env, capture_output=True,
                          text=True, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--cpu", action="append", default=[],
                   choices=("host", "haswell", "haswell-name-only"))
    p.add_argument("--size", type=float, default=5e7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=2, help="processes per (tree, cpu), alternating")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json")
    args = p.parse_args()
    args.size = int(args.size)
    trees = [t.split("=", 1) for t in (args.tree or [f"current={os.getcwd()}"])]
    cpus = args.cpu or ["host"]
    caches = {(t, c): tempfile.mkdtemp(prefix="fastinit-bench-") for t, _ in trees for c in cpus}
    samples = {}
    for run in range(args.runs):
        for cpu in cpus:
            for name, path in trees:
                res = run_child(os.path.abspath(path), cpu, args, caches[name, cpu])
                for k, v in res["times"].items():
                    samples.setdefault((cpu, name, k), []).extend(v)
                print(f"run {run} {cpu:8s} {name:8s} done ({res['file']})", file=sys.stderr,
                      flush=True)
    n = args.size
    rows = []
    for (cpu, name, impl), v in samples.items():
        rows.append(dict(cpu=cpu, tree=name, impl=impl, best_Gps=n / min(v) / 1e9,
                         median_Gps=n / statistics.median(v) / 1e9, samples=len(v)))
    print(f"n = {n:,} {args.dtype}, {args.threads} threads, best and median of the "
          f"interleaved rounds (G elements/s)")
    print(f"{'cpu':9s} {'tree':8s} {'implementation':28s} {'best':>7s} {'median':>7s}  ratios")
    for cpu in cpus:
        for name, _ in trees:
            for r in rows:
                if r["cpu"] != cpu or r["tree"] != name:
                    continue
                ratio = ""
                if r["impl"].startswith("fastinit"):
                    case = r["impl"].split()[1]
                    for peer in ("numpy", "torch"):
                        ref = [q for q in rows if q["cpu"] == cpu and q["tree"] == name
                               and q["impl"] == f"{peer} {case}"]
                        if ref:
                            ratio += f" x{r['best_Gps'] / ref[0]['best_Gps']:.1f} {peer}"
                print(f"{cpu:9s} {name:8s} {r['impl']:28s} {r['best_Gps']:7.3f} "
                      f"{r['median_Gps']:7.3f} {ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
