"""Cold-start benchmark: import, first values with an empty / warm Numba cache, a small
model's init, and ``fastinit warmup``, each in a fresh process, for several source trees.

Every measurement is a new interpreter. Two times are reported per row:
``value``, timed inside the process from before the first import to after the
last call (interpreter start-up excluded), and ``process``, the wall time of
the whole process from outside (start-up and exit included: a process that
leaves a kernel compiling in the background waits for it at exit).
``NUMBA_CACHE_DIR`` points to a fresh temporary folder (``empty cache``) or
to a folder that one untimed run filled (``warm cache``). Several source
trees (``--tree name=path``: the code before and after a change) are measured
in the same run, interleaved: repeat ``r`` of a row runs every tree (and the
reference rows) before repeat ``r + 1`` of it, so that a change of the
machine's load hits all of them alike. The best of ``--repeat`` is reported,
with every value, and the targets as ratios::

    python benchmarks/cold_start.py --tree before=/work/baseline --tree after=. --repeat 5

``--model``: ``LlamaForCausalLM`` of a 45M-parameter config (hidden 512,
intermediate 1376, 4 layers, 32000 words) built by transformers' own init and
inside ``fastinit.torch.fast_init`` with an empty cache (needs torch and
transformers). ``warmup``: ``fastinit.warmup()`` of every kernel on an empty
cache, in 1 process and with ``--jobs`` processes.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

MINIMAL = r'''
import time
t0 = time.perf_counter()
import numpy as np
from numba import njit
@njit(nogil=True)
def philox_uniform(out, k0, k1):
    for b in range(out.size // 4):
        c0, c1, c2, c3 = np.uint32(b & 0xFFFFFFFF), np.uint32(b >> 32), np.uint32(0), np.uint32(0)
        a0, a1 = np.uint32(k0), np.uint32(k1)
        for r in range(10):
            p0 = np.uint64(0xD2511F53) * np.uint64(c0)
            p1 = np.uint64(0xCD9E8D57) * np.uint64(c2)
            c0, c1, c2, c3 = (np.uint32((p1 >> np.uint64(32)) ^ np.uint64(c1) ^ np.uint64(a0)),
                              np.uint32(p1 & np.uint64(0xFFFFFFFF)),
                              np.uint32((p0 >> np.uint64(32)) ^ np.uint64(c3) ^ np.uint64(a1)),
                              np.uint32(p0 & np.uint64(0xFFFFFFFF)))
            a0 = np.uint32(np.uint64(a0) + np.uint64(0x9E3779B9))
            a1 = np.uint32(np.uint64(a1) + np.uint64(0xBB67AE85))
        out[4 * b] = np.float32(c0 >> np.uint32(8)) * np.float32(2.0**-24)
        out[4 * b + 1] = np.float32(c1 >> np.uint32(8)) * np.float32(2.0**-24)
        out[4 * b + 2] = np.float32(c2 >> np.uint32(8)) * np.float32(2.0**-24)
        out[4 * b + 3] = np.float32(c3 >> np.uint32(8)) * np.float32(2.0**-24)
philox_uniform(np.empty(1000, np.float32), 1, 2)
print(time.perf_counter() - t0)
'''

IMPORT_NUMBA = ("import time; t0 = time.perf_counter(); import numba; "
                "print(time.perf_counter() - t0)")
IMPORT_FASTINIT = ("import time; t0 = time.perf_counter(); import fastinit; "
                   "print(time.perf_counter() - t0)")
WARMUP_ALL = ("import time, sys; t0 = time.perf_counter(); import fastinit; "
              "fastinit.warmup(processes=int(sys.argv[1])); print(time.perf_counter() - t0)")
LLAMA = r'''
import os, sys, time
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch
torch.set_num_threads(2)
from transformers import LlamaConfig, LlamaForCausalLM
config = LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                     num_attention_heads=8, num_key_value_heads=8, vocab_size=32000)
t0 = time.perf_counter()
if sys.argv[1] == "fast_init":
    import fastinit.torch as ft
    with ft.fast_init(0):
        model = LlamaForCausalLM(config)
else:
    model = LlamaForCausalLM(config)
print(time.perf_counter() - t0)
'''


def first_calls(calls):
    lines = ["import time", "t0 = time.perf_counter()", "import fastinit.random as fr",
             "marks = []"]
    for call in calls:
        lines.append(call)
        lines.append("marks.append(time.perf_counter() - t0)")
    lines.append("print(' '.join(f'{m:.4f}' for m in marks))")
    return "\n".join(lines)


CALLS = {
    "normal f32": "fr.normal((1000,), seed=1)",
    "uniform f32": "fr.uniform((1000,), seed=1)",
    "truncated_normal f32": "fr.truncated_normal((1000,), seed=1)",
    "normal f64": "fr.normal((1000,), seed=1, dtype='float64')",
    "truncated_normal f64": "fr.truncated_normal((1000,), seed=1, dtype='float64')",
    "normal bf16": "fr.normal((1000,), seed=1, dtype='bfloat16')",
}
MEDIUM = "fr.normal((1_000_000,), seed=1)"  # a 1024 x 1024 matrix: under "auto"'s threshold
LARGE = "fr.normal((4_000_000,), seed=1)"   # over it: waits for its kernel


def run(code, env, args=()):
    """``(the last value the process printed, its wall time from outside)``."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stderr)
    return float(out.stdout.split()[-1]), wall


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                   help="a source tree to put on PYTHONPATH (default: this checkout)")
    p.add_argument("--jobs", type=int, default=2, help="processes of 'warmup --all' (besides 1)")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--model", action="store_true",
                   help="also a 45M-parameter Llama: transformers' init against fast_init")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="measure only the rows whose label contains TEXT (and the reference "
                        "rows); repeatable")
    p.add_argument("--json")
    args = p.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [t.split("=", 1) for t in args.tree] or [["current", here]]
    base = dict(os.environ)
    base.pop("NUMBA_CACHE_DIR", None)
    base["TRANSFORMERS_VERBOSITY"] = "error"
    envs = {name: {**base, "PYTHONPATH": os.path.abspath(path)} for name, path in trees}
    has_warmup = {name: run("import fastinit; print(int(hasattr(fastinit, 'warmup')))",
                            envs[name])[0] == 1 for name, _ in trees}

    def empty(code, env, args=()):
        with tempfile.TemporaryDirectory() as d:
            return run(code, {**env, "NUMBA_CACHE_DIR": d}, args)

    warm_dirs = {name: tempfile.mkdtemp(prefix="fastinit-warm-") for name, _ in trees}
    for name, _ in trees:  # fill the warm caches (untimed), waiting for the kernel
        run(first_calls(["fr.normal((1000,), seed=1, backend='numba')"]),
            {**envs[name], "NUMBA_CACHE_DIR": warm_dirs[name]})

    rows = []  # (label, tree, fn)
    rows.append(("import numba", "-", lambda: run(IMPORT_NUMBA, base)))
    rows.append(("import numba + compile minimal Philox kernel (empty cache)", "-",
                 lambda: empty(MINIMAL, base)))
    for name, _ in trees:
        rows.append(("import fastinit", name, lambda n=name: run(IMPORT_FASTINIT, envs[n])))
    for label, call in CALLS.items():
        for name, _ in trees:
            rows.append((f"first {label} (import incl., empty cache)", name,
                         lambda n=name, c=call: empty(first_calls([c]), envs[n])))
    for label, call in (("1e6", MEDIUM), ("4e6", LARGE)):
        for name, _ in trees:
            rows.append((f"first {label} normal f32 (import incl., empty cache)", name,
                         lambda n=name, c=call: empty(first_calls([c]), envs[n])))
    for name, _ in trees:
        rows.append(("first normal f32 then truncated_normal f64 (empty cache)", name,
                     lambda n=name: empty(first_calls([CALLS["normal f32"],
                                                       CALLS["truncated_normal f64"]]), envs[n])))
    for name, _ in trees:
        rows.append(("first normal f32 (import incl., warm cache)", name,
                     lambda n=name: run(first_calls([CALLS["normal f32"]]),
                                        {**envs[n], "NUMBA_CACHE_DIR": warm_dirs[n]})))
    if args.model:
        rows.append(("45M Llama: transformers' own init", "-",
                     lambda: run(LLAMA, base, ["transformers"])))
        for name, _ in trees:
            rows.append(("45M Llama: fast_init (empty cache)", name,
                         lambda n=name: empty(LLAMA, envs[n], ["fast_init"])))
    if not args.no_warmup:
        for jobs in sorted({1, args.jobs}):
            for name, _ in trees:
                if has_warmup[name]:
                    rows.append((f"fastinit.warmup(all), {jobs} process(es), empty cache", name,
                                 lambda n=name, j=jobs: empty(WARMUP_ALL, envs[n], [str(j)])))

    if args.only:
        rows = [r for r in rows if r[1] == "-" and "numba" in r[0]
                or any(text in r[0] for text in args.only)]
    results = {}
    # interleaved: one repeat of every row (all trees) before the next repeat
    for r in range(args.repeat):
        for label, tree, fn in rows:
            results.setdefault((label, tree), []).append(fn())
        print(f"repeat {r + 1}/{args.repeat} done", file=sys.stderr, flush=True)

    best = {k: min(v[0] for v in vals) for k, vals in results.items()}
    wall = {k: min(v[1] for v in vals) for k, vals in results.items()}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, best of {args.repeat} (seconds), interleaved; load "
          f"average at the end {os.getloadavg()[0]:.2f}")
    print(f"{'measurement':62s} {'tree':8s} {'value':>7s} {'process':>8s}  all values")
    for label, tree, _ in rows:
        vals = results[label, tree]
        print(f"{label:62s} {tree:8s} {best[label, tree]:7.3f} {wall[label, tree]:8.3f}  "
              f"{' '.join(f'{v[0]:.3f}' for v in vals)}")
    print("\ntargets (ratios of the best values; seconds where there is no denominator):")
    minimal = best["import numba + compile minimal Philox kernel (empty cache)", "-"]
    llama_hf = best.get(("45M Llama: transformers' own init", "-"))
    targets = [  # (what, row of this tree, denominator: seconds, a row of this tree, or None)
        ("first value, empty cache (well under 1 s)",
         "first normal f32 (import incl., empty cache)", None),
        ("first normal f32 / minimal kernel (<= 2.5)",
         "first normal f32 (import incl., empty cache)", minimal),
        ("pair / minimal kernel (<= 4)",
         "first normal f32 then truncated_normal f64 (empty cache)", minimal),
        ("warm first call / import numba (<= 2)", "first normal f32 (import incl., warm cache)",
         best["import numba", "-"]),
        ("45M Llama, empty cache: fast_init / transformers (<= 1)",
         "45M Llama: fast_init (empty cache)", llama_hf),
        (f"warmup, {args.jobs} processes / 1 process (<= 1)",
         f"fastinit.warmup(all), {args.jobs} process(es), empty cache",
         "fastinit.warmup(all), 1 process(es), empty cache")]
    for name, _ in trees:
        for what, row, den in targets:
            if isinstance(den, str):
                den = best.get((den, name)) if args.jobs != 1 else None
                if den is None:
                    continue
            if (row, name) in best:
                value = best[row, name] / den if den else best[row, name]
                print(f"  {name:8s} {what}: {value:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{label} [{tree}]": v for (label, tree), v in results.items()}, f,
                      indent=1)


if __name__ == "__main__":
    main()
