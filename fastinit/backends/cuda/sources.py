"""The CUDA sources of the GPU backend, as files, and how they are compiled.

``fastinit_stream.cuh`` holds the per-element math (it also compiles as host
C++, which is how CI checks it without a GPU) and ``fastinit_fill.cu`` the
kernels. ``fastinit_householder.cu`` makes the Householder vectors of the GPU
orthogonal initializer (:mod:`fastinit.backends.cuda.orthogonal`). :func:`source`
returns the kernel source with the header inlined, so that a compiler cache
keyed by the source text (CuPy's) sees every change.
Nothing here needs CuPy or a GPU.
"""

from __future__ import annotations

from importlib import resources

HEADER = "fastinit_stream.cuh"
KERNELS = "fastinit_fill.cu"

# NVRTC options of the bit-identity rules (docs/stream.md, section 2): no FMA
# contraction, subnormals kept, IEEE division and square root.
OPTIONS = ("--std=c++14", "--fmad=false", "-ftz=false", "-prec-div=true", "-prec-sqrt=true")

DISTRIBUTIONS = ("uniform", "normal", "truncated_normal")  # stream.UNIFORM, NORMAL, ...
OUTPUTS = ("f32", "f16", "bf16", "f64")
FILL_KERNELS = tuple(f"fastinit_fill_{d}_{o}" for d in DISTRIBUTIONS for o in OUTPUTS)
RAW_WORDS_KERNEL = "fastinit_raw_words"
PHILOX_KERNEL = "fastinit_philox"
KERNEL_NAMES = FILL_KERNELS + (RAW_WORDS_KERNEL, PHILOX_KERNEL)

HOUSEHOLDER = "fastinit_householder.cu"
HOUSEHOLDER_KERNELS = ("fastinit_householder_f32", "fastinit_householder_f64")
HOUSEHOLDER_THREADS = 256  # the block size the kernel is written for


def read(name: str) -> str:
    """The text of one of the CUDA files shipped beside this module."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def source() -> str:
    """``fastinit_fill.cu`` with ``fastinit_stream.cuh`` inlined (one self-contained unit)."""
    text = read(KERNELS)
    include = f'#include "{HEADER}"'
    if include not in text:  # pragma: no cover - guards an edit of the .cu file
        raise RuntimeError(f"{KERNELS} must include {HEADER}")
    return text.replace(include, read(HEADER), 1)


def fill_kernel_name(kind: int, out_dtype_name: str) -> str:
    """Kernel for a distribution code (``stream.UNIFORM``...) and an output dtype name."""
    out = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64"}[
        out_dtype_name]
    return f"fastinit_fill_{DISTRIBUTIONS[kind]}_{out}"
