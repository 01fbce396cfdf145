"""fastinit.torch's interception, this checkout against a baseline checkout, side by side.

What the per-thread TorchFunctionMode, the trampolines and the per-model hooks cost (or
save) against another version of fastinit (say ``main`` before they came), on the two
paths that use them:

- ``fast_init``: a Llama-style ``LlamaForCausalLM(config)`` built inside
  ``fastinit.torch.fast_init(0)``;
- ``init_module_``: the same model built on the meta device, ``to_empty``,
  ``fastinit.torch.init_module_``;

on a big model (few large tensors: the fills dominate) and on a deep narrow one (many
small tensors: the per-write overhead dominates), with ``transformers`` (its own init) as
the reference. Each run is a fresh process with a warm Numba cache (filled and loaded
before the timed call); the rows of the two checkouts are interleaved, and each number is
the best of ``--repeat`` runs. The ratio column is baseline seconds / this checkout's
seconds (above 1: this checkout is faster).

Usage::

    git -C /path/to/repo archive main | tar -x -C /tmp/fastinit-main
    python benchmarks/torch_intercept.py --baseline /tmp/fastinit-main [--repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
args = json.loads(sys.argv[1])
import numpy as np
import torch
torch.set_num_threads(args["threads"])
import fastinit, fastinit.random as fr, fastinit.torch as ft
fastinit.set_num_threads(args["threads"])
from transformers import LlamaConfig, LlamaForCausalLM
config = LlamaConfig(**args["config"])
small = LlamaConfig(**{**args["config"], "hidden_size": 64, "intermediate_size": 128,
                       "num_hidden_layers": 1, "vocab_size": 100})
# The kernels loaded before the timed call: backend="numba" waits for them ("auto", the
# default, serves small calls from NumPy while they load in the background).
for fill in (fr.normal, fr.uniform, fr.truncated_normal):
    fill(out=np.empty(10, np.float32), seed=0, backend="numba")
with ft.fast_init(0):
    LlamaForCausalLM(small)
row = args["row"]
if row == "init_module_":
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.to_empty(device="cpu")
t0 = time.perf_counter()
if row == "transformers":
    model = LlamaForCausalLM(config)
elif row == "fast_init":
    with ft.fast_init(0):
        model = LlamaForCausalLM(config)
else:
    ft.init_module_(model, 0)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "fastinit": os.path.dirname(fastinit.__file__),
                  "tensors": sum(1 for _ in model.parameters())}))
"""

SHAPES = {
    "big": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                num_attention_heads=16, num_key_value_heads=16, vocab_size=32000),
    "deep": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=96,
                 num_attention_heads=4, num_key_value_heads=4, vocab_size=1000),
}


def run(row, checkout, shape, args, cache):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "TRANSFORMERS_VERBOSITY": "error",
           "PYTHONPATH": checkout}
    payload = {"row": row, "threads": args.threads, "config": SHAPES[shape]}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], env=env,
                       capture_output=True, text=True, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise RuntimeError(f"{row} ({checkout}) failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if os.path.realpath(out["fastinit"]) != os.path.realpath(os.path.join(checkout,
                                                                          "fastinit")):
        raise RuntimeError(f"imported {out['fastinit']}, not the checkout {checkout}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="a checkout of the version to compare")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", default="big,deep")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkouts = {"this": here, "baseline": os.path.abspath(args.baseline)}
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for shape in args.shapes.split(","):
            for _ in range(args.repeat):  # interleaved: drift hits every row alike
                for row in ("transformers", "fast_init", "init_module_"):
                    for label, checkout in checkouts.items():
                        if row == "transformers" and label == "baseline":
                            continue
                        out = run(row, checkout, shape, args, cache)
                        key = (shape, row, label)
                        results[key] = min(results.get(key, float("inf")), out["seconds"])
                        results[(shape, "tensors")] = out["tensors"]
    print(f"{'model':6} {'row':14} {'this (s)':>9} {'baseline (s)':>13} {'baseline/this':>14} "
          f"{'transformers/this':>18}")
    for shape in args.shapes.split(","):
        ref = results[(shape, "transformers", "this")]
        print(f"{shape:6} {'transformers':14} {ref:9.3f} {'':>13} {'':>14} {1.0:17.2f}x"
              f"   ({results[(shape, 'tensors')]} tensors)")
        for row in ("fast_init", "init_module_"):
            this, base = results[(shape, row, "this")], results[(shape, row, "baseline")]
            print(f"{shape:6} {row:14} {this:9.3f} {base:13.3f} {base / this:13.2f}x "
                  f"{ref / this:17.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"|".join(map(str, k)): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
