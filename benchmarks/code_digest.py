"""Digests of the code fastinit runs: the Numba kernels' machine code and the XLA programs
of ``fastinit.jax``. The same digests in two checkouts mean the same code (the same
speed and the same bits), whatever changed in its Python source.

Annotations, comments and docstrings change the kernels' source hash (the disk cache
recompiles them once) and the line numbers in XLA's debug information, not the code.
Run this in each checkout, each with an empty kernel cache, and compare the lines:

    PYTHONPATH=/path/to/checkout NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/code_digest.py

Each line: what was compiled, its size (instructions; characters of the optimised HLO)
and a digest, leaving out what is not code (labels, comments, numbered names; XLA's
source locations and metadata). Without JAX the XLA lines are left out.
"""

import hashlib
import importlib.util
import re

import fastinit
from fastinit import stream
from fastinit.backends.numba import _kernels, _spec

# One kernel of each family: f32 uniform, f64 normal (Box-Muller), a truncated normal
# with a tail proposal and a bfloat16 output (the resampling loop and the rounding).
KERNELS = [(stream.UNIFORM, False, _spec.OUT_NATIVE, 0),
           (stream.NORMAL, True, _spec.OUT_NATIVE, 0),
           (stream.TRUNCATED_NORMAL, False, _spec.OUT_BFLOAT16, stream.PROPOSAL_EXPONENTIAL)]
# fastinit.jax builders (arguments) and shapes: the elementwise path, both truncated-normal
# paths (full passes on the small shape, compacted lists on the large one), float16 and QR.
JAX_CASES = [("uniform", (1.0,)), ("normal", (1.0,)), ("truncated_normal", (1.0,)),
             ("truncated_normal", (1.0, None, 3.0, 9.0)),
             ("glorot_uniform", (-2, -1, (), "float16")), ("orthogonal", ())]
JAX_SHAPES = [(64, 48), (1024, 2048)]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def kernel_code(asm: str) -> list[str]:
    """The instructions of an assembly listing, without labels, comments, directives and
    the numbers Numba appends to names."""
    lines = (re.sub(r"\$\d+|_\d{6,}|\.L\w+", "", line.split("#")[0]).strip()
             for line in asm.splitlines())
    return [line for line in lines if line and not line.startswith(".")]


def hlo_code(text: str) -> list[str]:
    """The computations of an optimised HLO module, without its tables of source files,
    functions and locations, and without each instruction's metadata."""
    body = text[text.index("\n%"):]
    return re.sub(r", metadata=\{[^}]*\}", "", body).splitlines()


def main() -> None:
    print(f"fastinit from {fastinit.__file__}")
    for kind, wide, out_kind, proposal in KERNELS:
        kernel = _kernels.fill_kernel(kind, wide, out_kind, proposal)
        if kernel is None:
            raise SystemExit("NUMBA_DISABLE_JIT is set: no kernel to read")
        code = kernel_code(next(iter(kernel.inspect_asm().values())))
        print(f"{_spec.kernel_name(kind, wide, out_kind, proposal):56s} {len(code):7d} "
              f"{_digest(code)}")
    if importlib.util.find_spec("jax") is None:
        return
    import jax

    import fastinit.jax as fj
    key = jax.random.key(0)
    for name, args in JAX_CASES:
        init = getattr(fj, name)(*args)
        for shape in JAX_SHAPES:
            compiled = jax.jit(init, static_argnums=1).lower(key, shape).compile()
            code = hlo_code(compiled.as_text())
            label = f"jax {name}{args} {shape}"
            print(f"{label:56s} {sum(map(len, code)):7d} {_digest(code)}")


if __name__ == "__main__":
    main()
