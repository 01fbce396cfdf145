"""The JAX step of the GPU check: fastinit.jax's XLA backend on JAX's default device.

Bits: every distribution of the stream (uniform, normal, truncated normal with each
of its proposals and bounds) in float32, and the main ones in bfloat16, float16 and
float64 (``jax_enable_x64``), generated on the device under ``jit`` and compared bit
for bit with the NumPy backend. Then each guard of ``fastinit.backends.xla._guards``
is switched off on the cases it defends, to report which ones this device's
compiler needs (a mismatch without a guard = needed), and the hardware division is
tried under ``--xla_backend_extra_options=-nvptx-prec-divf32=2`` in a child process.

Speed: ``fastinit.jax`` normal and truncated normal against ``jax.random`` (default
threefry) under ``jit``, interleaved rounds, best round; temporaries of each program.

    python benchmarks/jax_gpu.py --json out.json --markdown out.md
    python benchmarks/jax_gpu.py --bits-size 1e4 --size 1e5   # a quick run (CPU too)
    python benchmarks/jax_gpu.py --from-json out.json          # the Markdown again
    python benchmarks/jax_gpu.py --require-gpu --json out.json # the GPU check's call

The JSON is rewritten after each phase (bits, guards, division_flag, speed), and a
phase that raises is recorded as ``{"failed": ...}`` while the others go on: a
timeout or a crash keeps what was measured. ``--require-gpu`` exits at once (status
2) when JAX's default backend is not a GPU; without JAX the script says SKIP (status 0).
Exit status 1 when any default-guard case differs from the NumPy backend or a phase failed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (name, kind, args): truncated-normal bounds in std units (tests/helpers TRUNC_BOUNDS).
INF = float("inf")
CASES = [("uniform", "uniform", (0.0, 1.0)), ("uniform_m3_5.5", "uniform", (-3.0, 5.5)),
         ("normal", "normal", (0.0, 1.0)), ("normal_small", "normal", (0.5, 0.02))] + [
    (f"trunc_{name}", "truncated_normal", (0.0, 1.0, a, b)) for name, a, b in (
        ("sym_2sigma", -2.0, 2.0), ("sym_1sigma", -1.0, 1.0), ("one_sided", 0.0, INF),
        ("tail_8_9", 8.0, 9.0), ("tail_neg_inf_6", -INF, -6.0), ("narrow_1e-4", 1.0, 1.0001),
        ("narrow_at_0", -5e-5, 5e-5), ("above_mean", 0.5, 1.5), ("below_mean", -3.0, -1.0),
        ("wide_off_mean", 1.0, 4.0))]
NARROW = ("uniform_m3_5.5", "normal", "trunc_sym_2sigma", "trunc_below_mean")
# Cases that show each guard's rewrite (tests/backends/test_xla_guards.py).
GUARDED = {"contraction": ("uniform_m3_5.5", "normal"),
           "division": ("normal", "trunc_below_mean", "trunc_tail_8_9")}
ZERO_RADIUS = 4 * 26109600 + 2   # seed 0: ln u = +0.0 there (signed-zero witness)
DIVISION_FLAG_TIMEOUT = 60      # seconds of the child: well inside the GPU check's step cap


def _dist(kind, args, dtype):
    import fastinit.random as fr
    make = {"uniform": fr.uniform_distribution, "normal": fr.normal_distribution,
            "truncated_normal": fr.truncated_normal_distribution}[kind]
    return make(*args, dtype)


def _reference(kind, args, dtype, n, offset=0):
    import fastinit.random as fr
    fn = {"uniform": fr.uniform, "normal": fr.normal, "truncated_normal": fr.truncated_normal}
    return fn[kind](n, *args, dtype=dtype, seed=0, offset=offset, backend="numpy")


def _device(kind, args, dtype, n, offset=0, **guards):
    import jax
    from fastinit.backends import xla
    dist = _dist(kind, args, dtype)
    with xla.guards.using(**guards):
        fn = jax.jit(lambda lo, hi: xla.sample(dist, xla.derive_key(lo, hi, 0), (n,), dtype,
                                               offset))
        return np.asarray(fn(np.uint32(0), np.uint32(0)))


def _mismatches(got, want):
    uint = np.dtype(f"u{want.dtype.itemsize}")
    return int(np.sum(got.view(uint) != want.view(uint)))


def bits(n):
    """``{dtype: {case: mismatches}}`` with every guard on."""
    import jax
    from fastinit import _dtypes
    out = {}
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        dt = _dtypes.resolve(dtype)
        out[dtype] = {}
        for name, kind, args in CASES:
            if dtype != "float32" and name not in NARROW:
                continue
            try:
                out[dtype][name] = _mismatches(_device(kind, args, dt, n),
                                               _reference(kind, args, dt, n))
            except Exception as exc:  # noqa: BLE001 - reported, the others go on
                out[dtype][name] = f"{type(exc).__name__}: {exc}"[:200]
        jax.config.update("jax_enable_x64", False)
    return out


def guards(n):
    """Mismatches with each guard off: ``{guard setting: {case: mismatches}}``."""
    f32 = np.dtype(np.float32)
    by_name = {name: (kind, args) for name, kind, args in CASES}
    out = {}
    settings = {"contraction off": ("contraction", dict(contraction=False)),
                "division: hardware, divisor hidden": ("division", dict(division="opaque")),
                "division: plain": ("division", dict(division="none"))}
    for label, (guard, change) in settings.items():
        out[label] = {name: _mismatches(_device(*by_name[name], f32, n, **change),
                                        _reference(*by_name[name], f32, n))
                      for name in GUARDED[guard]}
    want = _reference("normal", (0.0, 2.0), f32, 2, ZERO_RADIUS)
    out["signed zero off"] = {"normal at the zero radius": _mismatches(
        _device("normal", (0.0, 2.0), f32, 2, ZERO_RADIUS, signed_zero=False), want)}
    out["signed zero on"] = {"normal at the zero radius": _mismatches(
        _device("normal", (0.0, 2.0), f32, 2, ZERO_RADIUS), want)}
    return out


def division_flag(n):
    """Hardware division under -nvptx-prec-divf32=2 (a child process: XLA reads its flags
    once): mismatches of the division cases, divisor hidden, no software correction."""
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import json, jax_gpu as g, numpy as np; "
            f"f32 = np.dtype(np.float32); by = {{c[0]: c[1:] for c in g.CASES}}; "
            f"print(json.dumps({{c: g._mismatches(g._device(*by[c], f32, {n}, "
            f"division='opaque'), g._reference(*by[c], f32, {n})) "
            f"for c in g.GUARDED['division']}}))")
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                                      " --xla_backend_extra_options=-nvptx-prec-divf32=2"))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), ROOT,
                                         env.get("PYTHONPATH", "")])
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=DIVISION_FLAG_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {DIVISION_FLAG_TIMEOUT}s"}
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed(n, rounds):
    """fastinit.jax against jax.random under jit: best of ``rounds`` interleaved rounds."""
    import jax
    import fastinit.jax as fj
    key = jax.random.key(0)
    pairs = {"normal": (fj.normal(1.0), lambda k, s: jax.random.normal(k, s)),
             "truncated_normal [-2, 2]": (fj.truncated_normal(1.0), lambda k, s:
                                          jax.random.truncated_normal(k, -2.0, 2.0, s))}
    rows = []
    for case, (ours, theirs) in pairs.items():
        compiled = {}
        for who, fn in (("fastinit", ours), ("jax.random", theirs)):
            c = jax.jit(lambda k, fn=fn: fn(k, (n,))).lower(key).compile()
            c(key).block_until_ready()
            compiled[who] = c
        best = dict.fromkeys(compiled, float("inf"))
        for _ in range(rounds):
            for who, c in compiled.items():
                t = time.perf_counter()
                c(key).block_until_ready()
                best[who] = min(best[who], time.perf_counter() - t)
        rows.append({"case": case, "elements": n,
                     **{f"{who} ms": best[who] * 1e3 for who in best},
                     **{f"{who} temp/output": compiled[who].memory_analysis().temp_size_in_bytes
                        / (4 * n) for who in compiled},
                     "speed-up": best["jax.random"] / best["fastinit"]})
    return rows


GUARD_OF = {"contraction off": "contraction",
            "division: hardware, divisor hidden": "division: the software correction",
            "division: plain": "division: the hidden divisor",
            "signed zero off": "signed_zero"}


def needed(guard_report):
    """The guards whose removal changed bits on this device."""
    if not isinstance(guard_report, dict) or "failed" in guard_report:
        return []
    return sorted({GUARD_OF[label] for label, cases in guard_report.items()
                   if label in GUARD_OF and any(
                       isinstance(v, int) and v > 0 for v in cases.values())})


def _failed(report):
    """The phases that raised (or were not reached): ``{phase: error}``."""
    return {name: report[name]["failed"] if name in report else "not reached"
            for name in PHASES if name not in report or (
                isinstance(report[name], dict) and "failed" in report[name])}


def markdown(report):
    failed = _failed(report)
    report = {**report, **{name: {} for name in failed}, "speed": (
        [] if "speed" in failed else report["speed"])}
    lines = [f"## JAX: fastinit.jax on {report['device']}", "",
             f"jax {report['jax']}, platform `{report['platform']}`"
             + (" (no GPU for JAX here: jax[cuda] missing?)" if report["platform"] == "cpu"
                else "") + f"; {report['bits_size']:,} elements a case, against the NumPy "
             "backend.", ""]
    bad = {f"{d}/{c}": v for d, cases in report["bits"].items() for c, v in cases.items()
           if v != 0}
    total = sum(len(cases) for cases in report["bits"].values())
    lines.append(f"Bits: {total - len(bad)} of {total} cases identical"
                 + (f"; differing: {bad}" if bad else "") + ".")
    if failed:
        lines.append(f"Phases that failed: {failed}.")
    lines += ["", "Guards off (mismatching elements; any = the guard is needed here):", ""]
    for label, cases in report["guards"].items():
        lines.append(f"- {label}: {cases}")
    lines += [f"- hardware division under -nvptx-prec-divf32=2: {report['division_flag']}",
              "", f"Needed on this device: {', '.join(report['needed']) or 'none'}.", "",
              "| case | elements | fastinit (ms) | jax.random (ms) | speed-up | "
              "temporaries / output (fastinit, jax.random) |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in report["speed"]:
        lines.append(f"| {r['case']} | {r['elements']:,} | {r['fastinit ms']:.2f} | "
                     f"{r['jax.random ms']:.2f} | {r['speed-up']:.2f}x | "
                     f"{r['fastinit temp/output']:.3f}, {r['jax.random temp/output']:.2f} |")
    return "\n".join(lines) + "\n"


PHASES = ("bits", "guards", "division_flag", "speed")


def _save(report, path):
    """``report`` to ``path`` whole or not at all (a kill mid-write keeps the last one)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits-size", type=float, default=2**20)
    parser.add_argument("--size", type=float, default=2**28, help="elements of the timed rows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    parser.add_argument("--from-json", help="only print the Markdown of a report written before")
    parser.add_argument("--require-gpu", action="store_true",
                        help="exit at once (status 2) unless JAX's default backend is a GPU")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            print(markdown(json.load(f)), end="")
        return 0
    try:
        import jax
    except ImportError as exc:
        print(f"SKIP: JAX is not installed ({exc})", flush=True)
        return 0
    if args.require_gpu and jax.default_backend() != "gpu":
        print(f"JAX sees no GPU: its default backend is {jax.default_backend()!r} "
              f"(devices {jax.devices()}); is jax[cuda] installed? Nothing was run.",
              file=sys.stderr, flush=True)
        return 2
    n = int(args.bits_size)
    report = {"device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
              "jax": jax.__version__, "bits_size": n}
    phases = {"bits": lambda: bits(n), "guards": lambda: guards(n),
              "division_flag": lambda: division_flag(n),
              "speed": lambda: speed(int(args.size), args.rounds)}
    for name in PHASES:
        t = time.perf_counter()
        try:
            report[name] = phases[name]()
        except Exception as exc:  # noqa: BLE001 - recorded, the next phases still run
            report[name] = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
        print(f"{name}: {time.perf_counter() - t:.1f}s", flush=True)
        report["needed"] = needed(report.get("guards"))
        if args.json:
            _save(report, args.json)
    text = markdown(report)
    print(text if not args.json else f"guards needed: {', '.join(report['needed'])}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    bits_ok = "failed" not in report["bits"] and all(
        v == 0 for cases in report["bits"].values() for v in cases.values())
    return 0 if bits_ok and not _failed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
