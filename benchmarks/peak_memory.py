"""Peak RSS above the output for fastinit's elementwise fills at large n.

    python benchmarks/peak_memory.py --size 1e9

Each case runs once on a preallocated, touched float32 output; the peak RSS
counter is reset just before the call (``fastinit.bench.peak_rss_above``).
The design rule is "output plus a small constant": the issue's bound is
64 MiB above the output.
"""

import argparse
import time

import numpy as np

import fastinit.random as fr
from fastinit.bench import parse_size, peak_rss_above

MiB = float(1 << 20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=10**9)
    parser.add_argument("--backends", default="numba,numpy")
    args = parser.parse_args(argv)
    out = np.ones(args.size, dtype=np.float32)  # allocated and resident before measuring
    fr.normal(out=out[:1000], seed=0)  # compile / load the kernels outside the measurement
    print(f"n = {args.size:,} float32 ({out.nbytes / MiB:,.0f} MiB output)")
    print(f"{'case':18s} {'backend':8s} {'seconds':>8s} {'peak MiB above output':>22s}")
    for backend in args.backends.split(","):
        for name, fn in (("normal", fr.normal), ("uniform", fr.uniform),
                         ("truncated_normal", fr.truncated_normal)):
            fn(out=out[:1000], seed=0, backend=backend)
            start = time.perf_counter()
            peak = peak_rss_above(lambda: fn(out=out, seed=0, backend=backend))
            seconds = time.perf_counter() - start
            shown = "n/a" if peak is None else f"{peak / MiB:.1f}"
            print(f"{name:18s} {backend:8s} {seconds:8.2f} {shown:>22s}", flush=True)


if __name__ == "__main__":
    main()
