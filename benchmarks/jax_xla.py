"""fastinit's XLA backend against jax.random, under jit: time and per-device temporaries.

One process for one CPU device: each pair (fastinit.jax / jax.random, default
threefry) is compiled first, then timed in interleaved rounds (so that a change
of the machine's load hits both alike); the best round is reported, with the
ratio, and the temporaries of each compiled program (``memory_analysis``).
Then a second process forces 4 CPU devices and times the same under
``out_shardings`` (rows), with ``jax_threefry_partitionable`` on (the only
threefry that shards without communication), temporaries per device.

    python benchmarks/jax_xla.py --size 5e7 --rounds 5
    python benchmarks/jax_xla.py --size 5e7 --json out.json --markdown

Rows: normal, uniform, truncated normal on [-2, 2] (the variance-scaling
default), on [-3, -1] (the exponential proposal) and on [0, 2] (the normal
proposal rejecting 52% of its attempts, the stream's worst rate). The machine's
CPU is printed with the table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r'''
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import fastinit.jax as fj

n, rounds, devices = int(float(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
if devices > 1:
    jax.config.update("jax_threefry_partitionable", True)
assert jax.device_count() == devices
shape = (devices * 256, n // (devices * 256))
sharding = None
if devices > 1:
    sharding = NamedSharding(jax.make_mesh((devices,), ("x",)), P("x", None))
CASES = {
    "normal": (fj.normal(1.0), lambda k, s: jax.random.normal(k, s)),
    "uniform": (fj.uniform(1.0), lambda k, s: jax.random.uniform(k, s)),
    "truncated_normal [-2, 2]": (fj.truncated_normal(1.0),
                                 lambda k, s: jax.random.truncated_normal(k, -2.0, 2.0, s)),
    "truncated_normal [-3, -1]": (fj.truncated_normal(1.0, lower=-3.0, upper=-1.0),
                                  lambda k, s: jax.random.truncated_normal(k, -3.0, -1.0, s)),
    "truncated_normal [0, 2]": (fj.truncated_normal(1.0, lower=0.0, upper=2.0),
                                lambda k, s: jax.random.truncated_normal(k, 0.0, 2.0, s)),
}
key = jax.random.key(0)
rows = []
for name, (ours, theirs) in CASES.items():
    fns = {}
    for who, fn in (("fastinit", ours), ("jax.random", theirs)):
        f = jax.jit(lambda k, fn=fn: fn(k, shape), out_shardings=sharding)
        t = time.perf_counter()
        compiled = f.lower(key).compile()
        compile_s = time.perf_counter() - t
        compiled(key).block_until_ready()
        temp = compiled.memory_analysis().temp_size_in_bytes
        fns[who] = (compiled, compile_s, temp)
    best = {who: float("inf") for who in fns}
    for _ in range(rounds):
        for who, (compiled, _, _) in fns.items():
            t = time.perf_counter()
            compiled(key).block_until_ready()
            best[who] = min(best[who], time.perf_counter() - t)
    shard_bytes = 4 * n // devices
    rows.append({"case": name, "devices": devices, "elements": shape[0] * shape[1],
                 **{f"{who} s": best[who] for who in fns},
                 **{f"{who} compile s": fns[who][1] for who in fns},
                 **{f"{who} temp/shard": fns[who][2] / shard_bytes for who in fns},
                 "speed-up": best["jax.random"] / best["fastinit"]})
print(json.dumps(rows))
'''


IMPLS = r'''
import json
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import fastinit.jax as fj

shape = (4096, 1024)
sharding = NamedSharding(jax.make_mesh((4,), ("x",)), P("x", None))
COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")
rows = []
for label, impl, partitionable in (("threefry2x32", "threefry2x32", False),
                                   ("threefry2x32, partitionable", "threefry2x32", True),
                                   ("rbg", "rbg", False), ("unsafe_rbg", "unsafe_rbg", False),
                                   ("philox4x32", "philox4x32", False),
                                   ("fastinit.jax", "threefry2x32", False)):
    jax.config.update("jax_threefry_partitionable", partitionable)
    key = jax.random.key(0, impl=impl)
    draw = fj.normal(1.0) if label == "fastinit.jax" else jax.random.normal
    row = {"implementation": label}
    try:
        compiled = jax.jit(lambda k: draw(k, shape), out_shardings=sharding).lower(key).compile()
        text = compiled.as_text()
        row["collectives"] = [c for c in COLLECTIVES if c in text]
        row["temp/shard"] = compiled.memory_analysis().temp_size_in_bytes / (4 * shape[0] * shape[1] / 4)
        whole = np.asarray(jax.jit(lambda k: draw(k, shape))(key))
        row["shard-independent"] = bool(np.array_equal(np.asarray(compiled(key)), whole))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    rows.append(row)
print(json.dumps(rows))
'''


def impls():
    """jax.random's implementations and fastinit.jax, sharded by rows on 4 forced CPU
    devices: collectives, temporaries per device, and whether the values equal the
    unsharded array's."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", IMPLS], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def impls_table(rows):
    lines = ["| implementation | collectives | temporaries / shard | sharded = unsharded |",
             "|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['implementation']} | does not compile: {r['error']} | | |")
        else:
            lines.append(f"| {r['implementation']} | {', '.join(r['collectives']) or 'none'} | "
                         f"{r['temp/shard']:.3f} | {'yes' if r['shard-independent'] else 'no'} |")
    return "\n".join(lines)


def machine():
    """The CPU model and its vector extensions (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")
    return {"cpu": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "python": platform.python_version()}


def run_child(size, rounds, devices):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if devices > 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={devices}").strip()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(rounds), str(devices)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows):
    head = ("| case | devices | fastinit (s) | jax.random (s) | speed-up | temporaries / shard "
            "(fastinit, jax.random) | compile (s) (fastinit, jax.random) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['devices']} | {r['fastinit s']:.3f} | "
                     f"{r['jax.random s']:.3f} | {r['speed-up']:.2f}x | "
                     f"{r['fastinit temp/shard']:.3f}, {r['jax.random temp/shard']:.2f} | "
                     f"{r['fastinit compile s']:.2f}, {r['jax.random compile s']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=5e7, help="elements (default 5e7)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--devices", type=int, default=4,
                        help="forced CPU devices of the sharded rows (0: none; default 4)")
    parser.add_argument("--json", help="also write the rows and the machine here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--impls", action="store_true",
                        help="only the table of jax.random's implementations, sharded")
    args = parser.parse_args(argv)
    if args.impls:
        rows = impls()
        print(impls_table(rows))
        return rows
    rows = run_child(int(args.size), args.rounds, 1)
    if args.devices > 1:
        rows += [r for r in run_child(int(args.size), args.rounds, args.devices)
                 if r["case"] in ("normal", "truncated_normal [-2, 2]")]
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {' '.join(info['flags'])}")
    print(f"command: python benchmarks/jax_xla.py --size {args.size:g} --rounds {args.rounds}"
          f" --devices {args.devices}")
    if args.markdown:
        print(table(rows))
    else:
        for r in rows:
            print(f"{r['case']:28s} devices={r['devices']}  fastinit {r['fastinit s']:.3f} s  "
                  f"jax.random {r['jax.random s']:.3f} s  speed-up {r['speed-up']:.2f}x  "
                  f"temporaries/shard {r['fastinit temp/shard']:.3f} vs "
                  f"{r['jax.random temp/shard']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
