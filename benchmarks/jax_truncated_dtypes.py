"""fastinit.jax's truncated normal in float32, bfloat16 and float16 under jit, one CPU
device: temporaries of the compiled program against the output (docs/jax.md promises
under a quarter) and the time, each dtype's time as a ratio of float32's measured in the
same interleaved rounds.

    python benchmarks/jax_truncated_dtypes.py                 # 2**22 elements, 5 rounds
    python benchmarks/jax_truncated_dtypes.py --size 1e7 --rounds 7
"""

import argparse
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=2**22)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    import jax
    import jax.numpy as jnp
    import fastinit
    import fastinit.jax as fj

    n, key = int(args.size), jax.random.key(0)
    print(f"fastinit from {fastinit.__file__}; jax {jax.__version__}; {n:,} elements, "
          f"best of {args.rounds} interleaved rounds")
    print("| bounds | dtype | temporaries / output | best (s) | time / float32's |")
    print("| --- | --- | ---: | ---: | ---: |")
    for lower, upper in ((-2.0, 2.0), (2.0, 3.0)):
        init = fj.truncated_normal(1.0, lower=lower, upper=upper)
        compiled = {}
        for name in ("float32", "bfloat16", "float16"):
            c = jax.jit(lambda k, dt=jnp.dtype(name): init(k, (n,), dt)).lower(key).compile()
            c(key).block_until_ready()
            compiled[name] = c
        best = dict.fromkeys(compiled, float("inf"))
        for _ in range(args.rounds):
            for name, c in compiled.items():
                t = time.perf_counter()
                c(key).block_until_ready()
                best[name] = min(best[name], time.perf_counter() - t)
        for name, c in compiled.items():
            temp = c.memory_analysis().temp_size_in_bytes / (n * np.dtype(name).itemsize)
            print(f"| [{lower:g}, {upper:g}] | {name} | {temp:.3f} | {best[name]:.3f} | "
                  f"{best[name] / best['float32']:.2f}x |")


if __name__ == "__main__":
    main()
