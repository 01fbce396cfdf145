"""Real-model benchmark: a Llama-style transformers model initialised four ways, one run each.

Rows (each in its own process, so that its peak RSS is its own):

- ``transformers``: ``LlamaForCausalLM(config)``, transformers' own init on torch's generator;
- ``fast_init``: the same construction inside ``fastinit.torch.fast_init(0)``;
- ``init_module_``: built on the meta device, ``to_empty``, ``fastinit.torch.init_module_``
  (the fill rate is the parameters over the ``init_module_`` call alone);
- ``materialize``: ``fastinit.materialize.materialize_module`` of the meta model (the
  checkpoint on disk, fsync-ed), against ``disk``: the same number of bytes written
  from memory to a file in the same directory, fsync-ed;
- ``kernel``: the bare ``fastinit.random.normal`` over as many float32 elements, into fresh
  memory (first touch, as a new model's) and again into the same, touched memory; then
  one call per tensor of the model, each into fresh memory (the kernel's per-call cost).

Every fastinit row runs with a warm Numba cache (a cache directory filled by a first
process; the process loads the kernels with a 10-element fill before the timed call, and
that load time is reported apart) and a cold one (an empty cache directory: the kernels
are compiled in the timed call). Targets (issue 13): ``init_module_`` path >= 5x faster than ``transformers``,
``fast_init`` >= 3x, the checkpoint >= 80% of the disk's write speed.

Usage::

    python benchmarks/models.py [--hidden 2048 --intermediate 5632 --layers 16]
                                [--threads 2] [--dir DIR] [--json PATH] [--cache warm,cold]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
args = json.loads(sys.argv[1])
import numpy as np
import torch
torch.set_num_threads(args["threads"])
import fastinit
if hasattr(fastinit, "set_num_threads"):
    fastinit.set_num_threads(args["threads"])
else:
    import numba
    numba.set_num_threads(args["threads"])
import fastinit.random as fr
import fastinit.torch as ft
from transformers import LlamaConfig, LlamaForCausalLM
from fastinit.materialize import materialize_module
config = LlamaConfig(**args["config"])

def rss(key):
    with open("/proc/self/status") as f:
        return int([l for l in f if l.startswith(key)][0].split()[1]) * 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def meta_model():
    with torch.device("meta"):
        return LlamaForCausalLM(config)

row, out = args["row"], {}
if row == "warmup":
    small = LlamaConfig(**{**args["config"], "hidden_size": 64, "intermediate_size": 128,
                           "num_hidden_layers": 1, "vocab_size": 100})
    with torch.device("meta"):
        m = LlamaForCausalLM(small)
    m.to_empty(device="cpu")
    ft.init_module_(m, 0)
    with ft.fast_init(0):
        LlamaForCausalLM(small)
    materialize_module(m.to("meta"), args["dir"], 0, progress=False)
    fr.normal(out=np.empty(10, np.float32), seed=0, backend="numba")  # compiled, cached
    print(json.dumps({"ok": True}))
    sys.exit()
meta = meta_model() if row in ("init_module_", "materialize") else None
n = sum(p.numel() for p in meta_model().parameters())
if args["preload"] and row != "transformers":  # warm: the cached kernels loaded first
    t0 = time.perf_counter()
    # backend="numba": a small "auto" call would not wait for the kernel's load
    fr.normal(out=np.empty(10, np.float32), seed=0, backend="numba")
    out["load_seconds"] = time.perf_counter() - t0
reset_peak()
before = rss("VmRSS")
t0 = time.perf_counter()
if row == "transformers":
    model = LlamaForCausalLM(config)
elif row == "fast_init":
    with ft.fast_init(0):
        model = LlamaForCausalLM(config)
elif row == "init_module_":
    meta.to_empty(device="cpu")
    t1 = time.perf_counter()
    ft.init_module_(meta, 0)
    out["fill_seconds"] = time.perf_counter() - t1
elif row == "materialize":
    paths = materialize_module(meta, args["dir"], 0, progress=False)
    out["bytes"] = sum(os.path.getsize(p) for p in paths)
elif row == "kernel":
    x = np.empty(n, np.float32)
    fr.normal(out=x, seed=0)
    out["fresh_seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    fr.normal(out=x, seed=0)
    out["touched_seconds"] = time.perf_counter() - t1
    del x
    shapes = [tuple(p.shape) for p in meta_model().parameters()]
    t1 = time.perf_counter()
    kept = []
    for i, shape in enumerate(shapes):  # one call per tensor of the model, fresh memory
        kept.append(fr.normal(out=np.empty(shape, np.float32), seed=0, stream=i))
    out["per_tensor_seconds"] = time.perf_counter() - t1
    out["tensors"] = len(shapes)
    del kept
elif row == "disk":
    sys.path.insert(0, args["here"])
    from scaleout import disk_write
    os.makedirs(args["dir"], exist_ok=True)
    disk_write(n, args["dir"])   # returns GB/s; timed here as the others
out["seconds"] = time.perf_counter() - t0
out.update(n=n, peak_above=rss("VmHWM") - before, peak=rss("VmHWM"))
print(json.dumps(out))
"""

FASTINIT_ROWS = ("fast_init", "init_module_", "materialize", "kernel")
ROWS = ("transformers",) + FASTINIT_ROWS + ("disk",)


def _child(row, args, cache_dir, directory, preload=False):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "TRANSFORMERS_VERBOSITY": "error"}
    payload = {"row": row, "threads": args.threads, "dir": directory, "preload": preload,
               "here": os.path.dirname(os.path.abspath(__file__)),
               "config": {"hidden_size": args.hidden, "intermediate_size": args.intermediate,
                          "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
                          "num_key_value_heads": args.heads, "vocab_size": args.vocab}}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{row} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                  if line.startswith("Model name")), "unknown CPU")
    flags = out.split("Flags:", 1)[-1].split()
    simd = "avx512" if any(f.startswith("avx512") for f in flags) else \
        "avx2" if "avx2" in flags else "no avx2"
    return f"{model} ({simd})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", default=None, help="where the checkpoint goes (default: a temp dir)")
    p.add_argument("--cache", default="warm,cold")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of the whole sequence with a warm cache (rows interleaved); "
                        "the table shows the best and the range")
    p.add_argument("--cold-repeat", type=int, default=1, help="runs with a cold cache")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    base = tempfile.mkdtemp(prefix="fastinit-models-", dir=args.dir)
    results = {"machine": _lscpu(), "cores": os.cpu_count(), "command": " ".join(
        ["python", "benchmarks/models.py"] + list(argv if argv is not None else sys.argv[1:])),
        "loadavg_before": os.getloadavg(), "rows": {}}
    try:
        warm_cache = os.path.join(base, "numba-cache")
        _child("warmup", args, warm_cache, os.path.join(base, "warmup"))
        print(f"# {results['machine']}, {results['cores']} cores, threads={args.threads}",
              flush=True)
        caches = args.cache.split(",")
        plan = [(rep, cache) for cache in caches
                for rep in range(args.repeat if cache == "warm" else args.cold_repeat)]
        for rep, cache in plan:
            for row in ROWS:
                if cache == "cold" and row not in FASTINIT_ROWS:
                    continue
                cache_dir = warm_cache if cache == "warm" else tempfile.mkdtemp(dir=base)
                directory = os.path.join(base, f"{row}-{cache}")
                res = _child(row, args, cache_dir, directory, preload=cache == "warm")
                results["rows"].setdefault(f"{row} ({cache})", []).append(res)
                shutil.rmtree(directory, ignore_errors=True)
                print(f"{row:13s} {cache:5s} run {rep + 1}: {res['seconds']:8.2f} s  peak +"
                      f"{res['peak_above'] / 2**30:.2f} GiB", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def _best(runs, key="seconds"):
    return min(runs, key=lambda r: r[key])


def table(results):
    runs = results["rows"]
    rows = {k: _best(v) for k, v in runs.items()}
    hf = rows["transformers (warm)"]
    n = hf["n"]
    lines = ["", f"{n / 1e9:.3f} B parameters, float32; {results['machine']}", "",
             "| row | Numba cache | seconds (best; range) | G param/s | vs transformers | "
             "peak RSS above start |",
             "|---|---|---|---|---|---|"]
    for key, r in rows.items():
        row, cache = key[:-1].split(" (")
        times = [x["seconds"] for x in runs[key]]
        spread = f"; {min(times):.2f}-{max(times):.2f}, {len(times)} runs" if len(times) > 1 \
            else ""
        rate = r["n"] / r["seconds"] / 1e9
        speedup = hf["seconds"] / r["seconds"]
        peak = max(x["peak_above"] for x in runs[key])
        lines.append(f"| {row} | {cache} | {r['seconds']:.2f}{spread} | {rate:.3f} | "
                     f"{speedup:.2f}x | {peak / 2**30:.2f} GiB |")
    lines.append("")
    for cache in ("warm", "cold"):
        if f"init_module_ ({cache})" not in rows:
            continue
        init, fast = rows[f"init_module_ ({cache})"], rows[f"fast_init ({cache})"]
        kernel, ckpt = rows[f"kernel ({cache})"], rows[f"materialize ({cache})"]
        init = _best(runs[f"init_module_ ({cache})"], "fill_seconds") | {
            "seconds": init["seconds"]}
        disk = rows["disk (warm)"]
        fill = n / init["fill_seconds"] / 1e9
        kr = runs[f"kernel ({cache})"]
        fresh = n / min(k["fresh_seconds"] for k in kr) / 1e9
        touched = n / min(k["touched_seconds"] for k in kr) / 1e9
        per_tensor = n / min(k["per_tensor_seconds"] for k in kr) / 1e9
        write = ckpt["bytes"] / ckpt["seconds"] / 1e9
        disk_rate = 4 * n / disk["seconds"] / 1e9
        lines += [
            f"{cache} cache: meta + init_module_ {hf['seconds'] / init['seconds']:.2f}x faster "
            f"than transformers (target 5x); fast_init {hf['seconds'] / fast['seconds']:.2f}x "
            f"(target 3x); init_module_ fills {fill:.3f} G param/s, the bare normal kernel "
            f"{fresh:.3f} G/s into fresh memory ({fill / fresh:.0%}) and {touched:.3f} G/s "
            f"into touched memory ({fill / touched:.0%}), {per_tensor:.3f} G/s one call per "
            f"tensor ({kernel['tensors']} tensors, fresh memory: {fill / per_tensor:.0%}); "
            f"checkpoint {write:.3f} GB/s, disk "
            f"{disk_rate:.3f} GB/s ({write / disk_rate:.0%}, target 80%)."]
    loads = [r["load_seconds"] for v in runs.values() for r in v if "load_seconds" in r]
    if loads:
        lines.append(f"warm rows: loading the cached kernels (import numba, a 10-element fill) "
                     f"took {min(loads):.2f} to {max(loads):.2f} s per process, before the timed "
                     "call.")
    lines.append(f"load average before {results['loadavg_before']}, after "
                 f"{results['loadavg_after']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
