"""GPU benchmark: fastinit's CUDA kernels against a plain fill, torch and cupy.random.

Run on a machine with an NVIDIA GPU and CuPy (torch optional); benchmarks/gpu_check.sh
runs it with the GPU tests and writes docs/benchmarks-gpu.md::

    python benchmarks/gpu.py --size 1e9 --json benchmarks-gpu.json

All rows fill the same float32 buffer of ``--size`` elements (4 GB at 1e9) in one
run: ``fill`` (``cupy.ndarray.fill``, the write-bandwidth reference), fastinit
normal / uniform / truncated normal, ``torch.empty(n).normal_()``,
``torch.nn.init.trunc_normal_`` and ``cupy.random.standard_normal``. Each is
timed with CUDA events (median of ``--repeat`` runs after a warm-up). Also
reported: CuPy memory-pool peak of a fastinit ``device="cuda"`` call relative
to the output size, and whether the GPU result equals the NumPy backend on a
prefix. A second table times orthogonal initialization (``--orthogonal``,
default 8192 x 8192 and 8192 x 2048 float32): fastinit's ``Orthogonal`` into a
CuPy buffer (each method) against ``torch.nn.init.orthogonal_`` on a CUDA
tensor, with the orthogonality error. Without a GPU it exits with a message
(status 2).
"""

import argparse
import json
import platform
import sys
import time


def _timer(cupy, fn, repeat):
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    times.sort()
    return times[len(times) // 2]


def _orthogonal_rows(cupy, shapes, repeat):
    """fastinit Orthogonal (each method) and torch.nn.init.orthogonal_, on the GPU."""
    import fastinit.initializers as fi
    rows = []
    for shape in shapes:
        name = f"{shape[0]}x{shape[1]}"
        buf = cupy.empty(shape, dtype=cupy.float32)
        cases = [(f"fastinit {m}", lambda m=m: fi.Orthogonal(seed=0, method=m)(out=buf))
                 for m in ("auto", "stewart", "cholqr2", "qr")]
        try:
            import torch
            if torch.cuda.is_available():
                t = torch.as_tensor(buf, device="cuda")
                cases.append(("torch.nn.init.orthogonal_",
                              lambda: torch.nn.init.orthogonal_(t)))
        except ImportError:
            pass
        for label, fn in cases:
            try:
                seconds = _timer(cupy, fn, repeat)
                q = buf.astype(cupy.float64)
                q = q if q.shape[0] >= q.shape[1] else q.T
                error = float(cupy.abs(q.T @ q - cupy.eye(q.shape[1])).max())
                del q
            except Exception as exc:  # report, keep going
                rows.append(dict(shape=name, name=label, error=str(exc)))
                continue
            rows.append(dict(shape=name, name=label, seconds=seconds, max_gram_error=error))
        torch_s = [r["seconds"] for r in rows if r["shape"] == name and "torch" in r["name"]
                   and "seconds" in r]
        for r in rows:
            if r["shape"] == name and "seconds" in r and torch_s:
                r["vs_torch"] = torch_s[0] / r["seconds"]
        cupy.get_default_memory_pool().free_all_blocks()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=float, default=1e9)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--orthogonal", default="8192x8192,8192x2048",
                        help="shapes for the orthogonal table ('' to skip)")
    args = parser.parse_args(argv)
    try:
        from fastinit.backends import cuda as cupy_backend
        cupy = cupy_backend.import_cupy("the GPU benchmark")
    except Exception as exc:
        print(f"GPU benchmark not run: {exc}", file=sys.stderr)
        return 2
    import numpy as np

    import fastinit
    import fastinit.gpu
    from fastinit import backends, stream
    from fastinit import random as fr

    n = int(args.size)
    nbytes = 4 * n
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    buf = cupy.empty(n, dtype=cupy.float32)
    key = stream.derive_key(0, 0)

    def fastinit_fill(dist):
        return lambda: cupy_backend.fill(dist, key, buf, np.array([0]), n)

    inf = float("inf")
    plan = stream.truncated_normal_plan(-2.0, 2.0)
    dists = {
        "normal": backends.Distribution(stream.NORMAL, False, 0.0, 1.0, -inf, inf),
        "uniform": backends.Distribution(stream.UNIFORM, False, 0.0, 1.0, 0.0,
                                         float(np.nextafter(np.float32(1), np.float32(0)))),
        "truncated_normal": backends.Distribution(stream.TRUNCATED_NORMAL, False, 0.0, 1.0,
                                                  -2.0, 2.0, *plan),
    }
    rows = [("fill (cupy.ndarray.fill)", lambda: buf.fill(0.5))]
    rows += [(f"fastinit {name}", fastinit_fill(d)) for name, d in dists.items()]
    rows.append(("cupy.random standard_normal",
                 lambda: cupy.random.default_rng(0).standard_normal(n, dtype=cupy.float32,
                                                                    out=buf)))
    try:
        import torch
        if torch.cuda.is_available():
            t = torch.as_tensor(buf, device="cuda")  # same memory (CUDA array interface)
            rows.append(("torch normal_", lambda: t.normal_()))
            rows.append(("torch.nn.init.trunc_normal_",
                         lambda: torch.nn.init.trunc_normal_(t, a=-2.0, b=2.0)))
    except ImportError:
        pass

    results = []
    for name, fn in rows:
        try:
            seconds = _timer(cupy, fn, args.repeat)
        except Exception as exc:  # report, keep going
            results.append(dict(name=name, error=str(exc)))
            continue
        results.append(dict(name=name, seconds=seconds, gb_per_s=nbytes / seconds / 1e9))
    fill_s = results[0].get("seconds")
    for r in results:
        if "seconds" in r and fill_s:
            r["fraction_of_fill_bandwidth"] = fill_s / r["seconds"]

    device_name = (props["name"].decode() if isinstance(props["name"], bytes)
                   else str(props["name"]))
    report = dict(device=device_name, size=n, dtype="float32", fastinit=fastinit.__version__,
                  cupy=cupy.__version__, python=platform.python_version(),
                  time=time.strftime("%Y-%m-%d %H:%M:%S"), results=results)
    if args.json:  # the fill table first: kept if a later part runs out of time
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)

    # Memory: the pool peak of a device= call (CuPy's pool: with torch imported, fastinit
    # would allocate through torch), and bits against the NumPy backend.
    del buf
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    peak = [0]

    def malloc(size):
        mem = pool.malloc(size)
        peak[0] = max(peak[0], pool.used_bytes())
        return mem

    base = pool.used_bytes()
    cupy.cuda.set_allocator(malloc)
    previous_allocator = fastinit.gpu.set_allocator("cupy")
    try:
        if "device" in __import__("inspect").signature(fr.normal).parameters:
            x = fr.truncated_normal(n, seed=0, device="cuda")
        else:
            x = cupy_backend.allocate((n,), "float32")
            cupy_backend.fill(dists["truncated_normal"], stream.derive_key(0, 0), x,
                              np.array([0]), n)
        dev.synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
        fastinit.gpu.set_allocator(previous_allocator)
    memory = dict(output_bytes=x.nbytes, pool_peak_bytes=peak[0] - base)
    prefix = min(n, 1 << 22)
    same = bool(np.array_equal(cupy.asnumpy(x[:prefix]).view(np.uint32),
                               fr.truncated_normal(prefix, seed=0, backend="numpy")
                               .view(np.uint32)))
    del x

    shapes = [tuple(int(v) for v in s.split("x")) for s in args.orthogonal.split(",") if s]
    orthogonal = _orthogonal_rows(cupy, shapes, args.repeat)
    report.update(memory=memory, bit_identical_prefix=same, orthogonal=orthogonal)
    print(f"{report['device']}, n = {n:.3g} float32 ({nbytes / 1e9:.1f} GB)")
    print(f"{'':32s} {'ms':>9s} {'GB/s':>8s} {'% of fill':>10s}")
    for r in results:
        if "error" in r:
            print(f"{r['name']:32s} error: {r['error']}")
        else:
            print(f"{r['name']:32s} {r['seconds'] * 1e3:9.2f} {r['gb_per_s']:8.1f} "
                  f"{100 * r.get('fraction_of_fill_bandwidth', 0):9.1f}%")
    print(f"memory-pool peak {memory['pool_peak_bytes']} B for a {memory['output_bytes']} B "
          f"output; bit-identical to the NumPy backend on the first {prefix} values: {same}")
    if orthogonal:
        print(f"\northogonal, float32 ({args.repeat} runs, median)")
        print(f"{'shape':>12s} {'implementation':28s} {'ms':>9s} {'vs torch':>9s} "
              f"{'max|QtQ-I|':>11s}")
        for r in orthogonal:
            if "error" in r:
                print(f"{r['shape']:>12s} {r['name']:28s} error: {r['error']}")
            else:
                ratio = f"{r['vs_torch']:.2f}x" if "vs_torch" in r else ""
                print(f"{r['shape']:>12s} {r['name']:28s} {r['seconds'] * 1e3:9.2f} "
                      f"{ratio:>9s} {r['max_gram_error']:11.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
