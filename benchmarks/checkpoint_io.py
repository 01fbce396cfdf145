"""Checkpoints at disk speed (issue 19): the disk, the kernels and ``fastinit materialize``
of a 7B Llama bfloat16 config, measured side by side in one run, on one disk.

Rows, in this order (each fastinit row in its own process):

- ``dd oflag=direct`` and ``dd conv=fsync``: ``bs=32M`` writes of ``--dd-gib`` GiB to the
  output directory's disk, bypassing and through the page cache;
- ``fill``: the bfloat16 normal fill rate of fastinit's kernels (32 MiB buffer, the
  default thread count, best of three passes over 4 GiB);
- ``materialize 7B``: ``python -m fastinit materialize CONFIG.json OUT --max-shard-size
  5GB`` from process start to exit, and its peak RSS;
- ``write phase``: the same run with timestamps: start-up (until the first file is
  chunk is filled: the first byte is ready), split into interpreter and fastinit, torch,
  transformers, the config and its meta model, recording the init, the plan and the
  kernels; and the write phase (from there to the end of the commit);
- ``70B --dry-run``: planning a Llama 70B config (hidden 8192, 80 layers, vocabulary
  128256, bfloat16), time and peak RSS;
- with ``--baseline DIR`` (another checkout, e.g. the main branch), its
  ``materialize 7B``, and this checkout's with ``FASTINIT_DIRECT_IO=0`` (the path of a
  file system without direct I/O), for "no slower than today".

Each checkpoint is deleted right after it is measured; runs never overlap. Writes a
table to ``docs/benchmarks-checkpoint.md`` (``--no-write-docs``: stdout only) with the
machine (CPU model and flags) and the ``df`` line of the disk.

Usage::

    python benchmarks/checkpoint_io.py [--dir DIR] [--baseline /path/to/main] [--dd-gib 8]
                                       [--layers 32]   # fewer: a quick rehearsal
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-05, "dtype": "bfloat16", "tie_word_embeddings": False}
LLAMA_70B = {**LLAMA_7B, "hidden_size": 8192, "intermediate_size": 28672,
             "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
             "vocab_size": 128256, "max_position_embeddings": 8192, "rope_theta": 500000.0}

FILL = """
import json, resource, time, numpy as np
import fastinit.random as fr
from fastinit import _dtypes
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
buf = np.empty(16 << 20, dtype=_dtypes.resolve("bfloat16"))
fr.normal(out=buf, seed=0, std=0.02)
best, c = 0.0, cpu()
for _ in range(3):
    t = time.perf_counter()
    for i in range(128):
        fr.normal(out=buf, seed=0, std=0.02, offset=i * buf.size)
    best = max(best, 128 * buf.nbytes / (time.perf_counter() - t))
print(json.dumps({"fill_GBps": best / 1e9,
                  "fill_cpu_s_per_GB": (cpu() - c) / (3 * 128 * buf.nbytes / 1e9)}))
"""

# The command's own code path, with timestamps (seconds since the process started).
PHASES = """
import json, os, resource, sys, time
cpu = {}
def cpu_now():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread: kernels and writers
    return r.ru_utime + r.ru_stime
def since_start():
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) - start
marks = {"interpreter and fastinit": None}
import fastinit.materialize._cli
marks["interpreter and fastinit"] = since_start()
import torch
marks["torch"] = since_start()
import transformers
marks["transformers"] = since_start()
from fastinit.materialize import _config, _module, _staging, _writer
def wrap(obj, name, label, first_only=False):
    real = getattr(obj, name)
    def timed(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        finally:
            if not (first_only and label in marks):
                marks[label] = since_start()
    setattr(obj, name, timed)
wrap(_config, "model_from_config", "config and meta model")
wrap(_module, "_record", "recording the init")
real_fill = _writer.Engine._fill
def fill(self, *args, **kwargs):  # the first chunk filled: kernels loaded, first byte ready
    try:
        return real_fill(self, *args, **kwargs)
    finally:
        if "kernels, first chunk" not in marks:
            marks["kernels, first chunk"] = since_start()
            cpu["first"] = cpu_now()
_writer.Engine._fill = fill
real_commit = _staging.Transaction.commit
def commit(self):
    try:
        return real_commit(self)
    finally:
        marks["commit done"] = since_start()
        cpu["done"] = cpu_now()
_staging.Transaction.commit = commit
from fastinit import cli
status = cli.main(["materialize", sys.argv[1], sys.argv[2], "--max-shard-size", "5GB",
                   "--no-progress"])
print(json.dumps({"status": status, "marks": marks, "write_cpu_s": cpu["done"] - cpu["first"]}),
      file=sys.stderr)
"""


def run_child(argv, env=None):
    """``(wall seconds, peak RSS bytes, stdout, stderr)`` of a child process (its own
    peak, from ``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        # cwd: a neutral folder, so that ``-m`` / ``-c`` import the tree of PYTHONPATH
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env,
                                cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss * 1024, stdout, stderr


def env_for(tree, **extra):
    env = dict(os.environ, PYTHONPATH=tree, TRANSFORMERS_VERBOSITY="error", **extra)
    return env


def dd(directory, gib, flags):
    path = os.path.join(directory, "dd.bin")
    try:
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=32M", f"count={32 * gib}",
                        *flags], check=True, capture_output=True)
        return 32 * gib * 2**25 / (time.perf_counter() - start) / 1e9
    finally:
        if os.path.exists(path):
            os.unlink(path)


def materialize(tree, config_dir, out, env_extra=None):
    wall, rss, _, _ = run_child([sys.executable, "-m", "fastinit", "materialize", config_dir,
                                 out, "--max-shard-size", "5GB", "--no-progress"],
                                env_for(tree, **(env_extra or {})))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    shutil.rmtree(out)
    return {"seconds": wall, "bytes": size, "GBps": size / wall / 1e9, "peak_rss": rss}


def phases(config_dir, out):
    _, rss, _, err = run_child([sys.executable, "-c", PHASES, config_dir, out], env_for(ROOT))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    shutil.rmtree(out)
    record = json.loads(err.strip().splitlines()[-1])
    marks = record["marks"]
    first, done = marks["kernels, first chunk"], marks["commit done"]
    return {"marks": marks, "startup_s": first, "write_s": done - first, "bytes": size,
            "write_GBps": size / (done - first) / 1e9,
            "write_cpu_s_per_GB": record["write_cpu_s"] / (size / 1e9)}


def partial_70b(config_dir, out, gib):
    """The 70B config written until ``gib`` GiB are staged, then Ctrl-C (the whole does
    not fit on most disks): the rate from the first byte, the peak RSS while writing."""
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "fastinit", "materialize", config_dir, out,
                             "--max-shard-size", "5GB", "--no-progress", "--no-space-check"],
                            env=env_for(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    start, first = time.perf_counter(), None
    while proc.poll() is None:
        staged = _staged(out)
        if staged and first is None:
            first = (time.perf_counter(), staged)
        if staged >= gib << 30:
            break
        time.sleep(0.05)
    stop, staged = time.perf_counter(), _staged(out)
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    left = os.listdir(out) if os.path.exists(out) else []
    shutil.rmtree(out, ignore_errors=True)
    return {"startup_s": first[0] - start, "bytes": staged,
            "GBps": (staged - first[1]) / (stop - first[0]) / 1e9,
            "peak_rss": usage.ru_maxrss * 1024, "status": os.waitstatus_to_exitcode(status),
            "left_after_ctrl_c": left}


def _staged(out):
    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def machine(directory):
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        cpu = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        flags = re.search(r"flags\s*:\s*(.*)", text).group(1).split()
        flags = " ".join(f for f in flags if re.match(r"(avx|sse4|fma|bmi|aes|sha)", f))
    except (OSError, AttributeError):
        pass
    df = subprocess.run(["df", "-hT", directory], capture_output=True, text=True).stdout
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": cpu, "cores": os.cpu_count(), "flags": flags, "df": df.strip(),
            "python": platform.python_version(), "load_at_start": load}


def table(r):
    direct, floor = r["dd_direct_GBps"], min(r["dd_direct_GBps"], r["fill_GBps"])
    e2e, ph = r["materialize_7b"], r["phases_7b"]
    rows = [
        ("`dd bs=32M oflag=direct`", f"{direct:.2f} GB/s", ""),
        ("`dd bs=32M conv=fsync`", f"{r['dd_fsync_GBps']:.2f} GB/s", ""),
        ("bfloat16 normal fill (kernels)", f"{r['fill_GBps']:.2f} GB/s", ""),
        ("`fastinit materialize` 7B, process start to exit",
         f"{e2e['seconds']:.1f} s, {e2e['GBps']:.2f} GB/s, peak RSS "
         f"{e2e['peak_rss'] / 2**30:.2f} GiB",
         f"{100 * e2e['GBps'] / direct:.0f}% of dd direct (target 50%)"),
        ("write phase (first chunk filled to commit done)",
         f"{ph['write_s']:.1f} s, {ph['write_GBps']:.2f} GB/s",
         f"{100 * ph['write_GBps'] / floor:.0f}% of min(dd direct, fill) (target 85%)"),
        ("CPU time (all threads) per GB: fill alone, write phase",
         f"{r['fill_cpu_s_per_GB']:.2f} s, {ph['write_cpu_s_per_GB']:.2f} s",
         f"the write phase costs {100 * ph['write_cpu_s_per_GB'] / r['fill_cpu_s_per_GB']:.0f}% "
         "of the fill's CPU (a machine-load-free view of the overhead)"),
        ("start-up before the first byte", f"{ph['startup_s']:.1f} s", ""),
        ("70B `--dry-run` (plan)", f"{r['dry_70b']['seconds']:.1f} s, peak RSS "
         f"{r['dry_70b']['peak_rss'] / 2**30:.2f} GiB", "131 GiB planned, nothing written"),
    ]
    if "partial_70b" in r:
        p = r["partial_70b"]
        rows.append((f"70B written until {p['bytes'] / 2**30:.0f} GiB, then Ctrl-C",
                     f"start-up {p['startup_s']:.1f} s, {p['GBps']:.2f} GB/s, peak RSS "
                     f"{p['peak_rss'] / 2**30:.2f} GiB",
                     f"exit status {p['status']}, left behind: {p['left_after_ctrl_c'] or 'nothing'}"
                     " (peak RSS target 1 GiB)"))
    if "baseline_7b" in r:
        base, buf = r["baseline_7b"], r["buffered_7b"]
        rows += [("baseline checkout, 7B (today)", f"{base['seconds']:.1f} s, "
                  f"{base['GBps']:.2f} GB/s, peak RSS {base['peak_rss'] / 2**30:.2f} GiB", ""),
                 ("this checkout, `FASTINIT_DIRECT_IO=0`, 7B", f"{buf['seconds']:.1f} s, "
                  f"{buf['GBps']:.2f} GB/s", f"{100 * buf['GBps'] / base['GBps']:.0f}% of "
                  "the baseline (target >= 100%)")]
    lines = ["| measurement | result | against target |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    marks, prev, split = ph["marks"], 0.0, []
    for name in ("interpreter and fastinit", "torch", "transformers", "config and meta model",
                 "recording the init", "kernels, first chunk"):
        if name in marks:
            split.append(f"{name} {marks[name] - prev:.2f} s")
            prev = marks[name]
    return "\n".join(lines), "; ".join(split)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=None, help="where the files go (default: a "
                                                     "temporary directory in the cwd)")
    parser.add_argument("--baseline", default=None, help="another checkout to compare with")
    parser.add_argument("--dd-gib", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the 7B rows, the best reported (default 1)")
    parser.add_argument("--partial-70b-gib", type=int, default=16,
                        help="write the 70B config until this many GiB, then Ctrl-C "
                             "(0: skip)")
    parser.add_argument("--layers", type=int, default=32,
                        help="layers of the 7B config (fewer: a quick rehearsal)")
    parser.add_argument("--no-write-docs", action="store_true")
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="fastinit-ckpt-", dir=args.dir or os.getcwd())
    try:
        configs = {}
        for name, config in (("7b", {**LLAMA_7B, "num_hidden_layers": args.layers}),
                             ("70b", LLAMA_70B)):
            configs[name] = os.path.join(base, f"llama-{name}")
            os.mkdir(configs[name])
            with open(os.path.join(configs[name], "config.json"), "w") as f:
                json.dump(config, f)
        out = os.path.join(base, "out")
        script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
        r = {"machine": machine(base),
             "command": " ".join(["python", script] + sys.argv[1:])}
        print(f"machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, load "
              f"{r['machine']['load_at_start']:.1f}\n{r['machine']['df']}", flush=True)
        r["dd_direct_GBps"] = dd(base, args.dd_gib, ["oflag=direct"])
        r["dd_fsync_GBps"] = dd(base, args.dd_gib, ["conv=fsync"])
        print(f"dd direct {r['dd_direct_GBps']:.2f} GB/s, fsync {r['dd_fsync_GBps']:.2f} GB/s",
              flush=True)
        r.update(json.loads(run_child([sys.executable, "-c", FILL], env_for(ROOT))[2]))
        print(f"bf16 normal fill {r['fill_GBps']:.2f} GB/s", flush=True)
        wall, rss, _, _ = run_child([sys.executable, "-m", "fastinit", "materialize",
                                     configs["70b"], out, "--max-shard-size", "5GB",
                                     "--dry-run"], env_for(ROOT))
        r["dry_70b"] = {"seconds": wall, "peak_rss": rss}
        print(f"70B dry run {wall:.1f} s, peak RSS {rss / 2**30:.2f} GiB", flush=True)
        if args.partial_70b_gib:
            r["partial_70b"] = partial_70b(configs["70b"], out, args.partial_70b_gib)
            print(f"70B, first {args.partial_70b_gib} GiB: {r['partial_70b']}", flush=True)
        r["materialize_7b"] = min((materialize(ROOT, configs["7b"], out)
                                   for _ in range(args.repeat)), key=lambda x: x["seconds"])
        print(f"materialize 7B: {r['materialize_7b']}", flush=True)
        r["phases_7b"] = min((phases(configs["7b"], out) for _ in range(args.repeat)),
                             key=lambda x: x["write_s"])
        print(f"phases 7B: {r['phases_7b']}", flush=True)
        if args.baseline:
            r["baseline_7b"] = materialize(args.baseline, configs["7b"], out)
            print(f"baseline 7B: {r['baseline_7b']}", flush=True)
            r["buffered_7b"] = materialize(ROOT, configs["7b"], out, {"FASTINIT_DIRECT_IO": "0"})
            print(f"buffered 7B: {r['buffered_7b']}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    r["load_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text, split = table(r)
    print(text + "\n\nstart-up: " + split)
    print(json.dumps(r, indent=1, default=str))
    if not args.no_write_docs:
        write_docs(r, text, split)
    return 0


def write_docs(r, text, split):
    m = r["machine"]
    page = textwrap.dedent(f"""\
        # Checkpoint writing: disk, kernels and `fastinit materialize`

        Written by `benchmarks/checkpoint_io.py` (issue 19), run from the repository root:
        `{r['command']}`.

        Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average
        {m['load_at_start']:.1f} at the start of the run and {r['load_at_end']:.1f} at its end.
        CPU flags (vector and crypto extensions): {m['flags']}. The disk of the output
        directory:

        ```
        {textwrap.indent(m['df'], '        ').strip()}
        ```

        {textwrap.indent(text, '        ').strip()}

        Start-up of the 7B run, phase by phase: {split}.
        """) + NOTES
    with open(os.path.join(ROOT, "docs", "benchmarks-checkpoint.md"), "w") as f:
        f.write(page)


NOTES = """
How to read it:

- A load average above the core count means other work shared the machine while it
  ran: the rates are then lower than on a quiet machine, and rows measured a minute
  apart saw different loads (a write phase can then beat a fill rate measured earlier).
  The CPU-time row does not depend on the load: it compares the CPU seconds (every
  thread: kernels and writers) per GB of the write phase with those of the fill alone,
  so it shows what writing adds to generating.
- The write phase runs from the first chunk filled (kernels loaded) to the end of the
  commit: generation on fastinit's thread pool, `O_DIRECT` writes by two writer threads,
  each file's fsync while the next is produced, and the commit's renames.
- The write phase can beat `dd oflag=direct`: `dd` keeps one 32 MiB request in flight,
  the engine's two writer threads keep two, which a virtual disk may serve faster. Both
  targets depend on free cores: generating bfloat16 normals keeps up with the disk only
  when every core generates.
- The start-up is mostly other libraries' imports: torch; transformers; then, for a Llama
  config and model, transformers' lazy imports (its configuration module pulls in
  `torch.distributed.tensor` and sympy, about 2 s of the "config and meta model" phase,
  then the modeling code). fastinit's own share is its import, the size estimate (two
  builds of the config with one and two layers, a few tens of milliseconds), recording
  the init (0.05 s for the 7B) and its kernels. The "kernels, first chunk" phase also
  imports ml_dtypes for bfloat16, which takes 0.9 s with ml_dtypes 0.7.0 (0.01 s with
  0.6.0, measured with the same NumPy 2.4).
- `FASTINIT_DIRECT_IO=0` writes through the page cache, as on a file system without
  direct I/O; the baseline is the same command run with another checkout (the code
  before this engine), for the target "buffered-only file systems: no slower than today".
- Peak RSS is the whole process (interpreter, torch, transformers, the meta model, the
  plan and the engine's four 32 MiB buffers).
"""


if __name__ == "__main__":
    sys.exit(main())
