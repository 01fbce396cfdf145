"""The CUDA backend, through CuPy: the stream on an NVIDIA GPU (``fastinit_fill.cu``).

Same contract as the CPU backends (see ``fastinit.backends``):
``fill(dist, key, out, run_starts, run_length)``, with ``out`` a 1-D
C-contiguous CuPy array on the device that runs the kernel. bfloat16 outputs
are passed as their uint16 bits with ``dtype="bfloat16"``. The values are
bit-identical to the NumPy and Numba backends.

The CUDA module is compiled by NVRTC on first use with the flags of the
bit-identity rules and cached on disk (``_compile.py``: not through
``RawModule(code=...)``, which would add ``-ftz=true``). Kernels are launched
on CuPy's current stream; the output is written once, with no temporary
buffers. Each thread of a grid-stride loop owns whole Philox blocks, so the
result does not depend on the grid or block size (``grid=`` / ``block=``
exist to test that).

CuPy is imported on first use, not with this module.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import stream
from . import _compile, _memory, sources as cuda_sources
from ._errors import INSTALL_HINT, DeviceMemoryError, GpuUnavailableError  # noqa: F401

BLOCK = 256             # threads per CUDA block
WAVES = 4               # grid = at most WAVES full waves of resident blocks
_RESIDENT_PER_SM = 2048 // BLOCK

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    import numpy.typing as npt

    from ..._typing import GpuArray
    from .. import Distribution

_sm_count: dict[int, int] = {}   # device index -> number of SMs

def import_cupy(what: str = "a GPU output") -> ModuleType:
    """CuPy, or :class:`GpuUnavailableError` saying what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise GpuUnavailableError(
            f"{what} needs CuPy, which is not installed. {INSTALL_HINT}; or generate on "
            "the CPU (device=None)") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        raise GpuUnavailableError(
            f"{what} needs an NVIDIA GPU, but CUDA reports none ({exc}). "
            "Generate on the CPU instead (device=None)") from exc
    if count == 0:
        raise GpuUnavailableError(f"{what} needs an NVIDIA GPU, but CUDA reports none. "
                                  "Generate on the CPU instead (device=None)")
    return cupy


def kernel(name: str) -> Any:
    """The compiled kernel ``name`` of ``fastinit_fill.cu`` for the current device."""
    return _compile.function(import_cupy(), cuda_sources.KERNELS, cuda_sources.source, name)


def linalg(what: str = "Orthogonal on a GPU") -> tuple[ModuleType, ModuleType]:
    """``(cusolver, cublas)``: CuPy's bindings, or GpuUnavailableError naming what is missing."""
    try:  # "from cupy.cuda import": CuPy 14 locates the libraries on that path only
        from cupy.cuda import cublas, cusolver
    except Exception as exc:  # ImportError: libcusolver / libcublas / libnvJitLink not found
        raise GpuUnavailableError(f"{what} needs cuSOLVER and cuBLAS, which CuPy cannot load "
                                  f"({exc}). {INSTALL_HINT}") from exc
    return cusolver, cublas


def check(linalg_too: bool = True) -> ModuleType:
    """CuPy, a GPU and NVRTC (and cuSOLVER/cuBLAS with ``linalg_too``), or
    GpuUnavailableError naming the first missing piece. Compiles nothing."""
    cupy = import_cupy()
    _compile.nvrtc_binding()
    if linalg_too:
        linalg()
    return cupy


def _grid(n_items: int, grid: int | None, block: int | None) -> tuple[int, int]:
    block = BLOCK if block is None else int(block)
    if grid is None:
        import cupy
        dev = cupy.cuda.Device().id
        sms = _sm_count.get(dev)
        if sms is None:
            sms = _sm_count[dev] = int(cupy.cuda.runtime.deviceGetAttribute(
                cupy.cuda.runtime.cudaDevAttrMultiProcessorCount, dev))
        grid = max(1, min(-(-n_items // block), sms * _RESIDENT_PER_SM * WAVES))
    return int(grid), block


def _dtype_name(out: GpuArray, dtype: npt.DTypeLike | None) -> str:
    name = np.dtype(dtype).name if dtype is not None and not isinstance(dtype, str) else dtype
    name = name or out.dtype.name
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise TypeError(f"the cupy backend writes float16, bfloat16, float32 or float64. "
                        f"Received: out with dtype {out.dtype}, dtype={dtype!r}")
    expected = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[name]
    if out.dtype.itemsize != expected:
        raise TypeError(f"out has dtype {out.dtype}, which cannot hold {name} values")
    return name


def fill(dist: Distribution, key: tuple[int, int], out: GpuArray,
         run_starts: npt.ArrayLike, run_length: int, *, dtype: npt.DTypeLike | None = None,
         grid: int | None = None, block: int | None = None) -> None:
    """Fill ``out`` (1-D C-contiguous CuPy array) with runs of the stream.

    ``dtype`` names the output dtype when it is not ``out.dtype`` (bfloat16
    written into uint16 bits). ``grid`` and ``block`` override the launch
    geometry; the values do not depend on them.
    """
    loaded = sys.modules.get("cupy")  # (a stand-in CuPy's arrays are NumPy subclasses)
    if isinstance(out, np.ndarray) and not (loaded and isinstance(out, loaded.ndarray)):
        raise ValueError("backend='cupy' writes GPU arrays: pass device='cuda' or a GPU out=, "
                         "or use backend='auto' for NumPy outputs. Received: backend='cupy' "
                         "with a numpy.ndarray output")
    cupy = import_cupy("the cupy backend")
    if not isinstance(out, cupy.ndarray):
        raise TypeError("the cupy backend fills CuPy arrays (pass device='cuda' or a GPU "
                        f"out=). Received: out of type {type(out).__name__}")
    if out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError("the cupy backend fills 1-D C-contiguous arrays")
    name = _dtype_name(out, dtype)
    run_starts = np.ascontiguousarray(run_starts, dtype=np.int64)
    n_runs, run_length = run_starts.size, int(run_length)
    if out.size != n_runs * run_length:
        raise ValueError(f"out has {out.size} elements, the runs {n_runs * run_length}")
    if out.size == 0:
        return
    lanes = stream.LANES_F64 if dist.wide else stream.LANES_F32
    start0 = int(run_starts[0])
    if n_runs == 1:
        per_run = (start0 + run_length - 1) // lanes - start0 // lanes + 1
    else:
        per_run = (run_length + lanes - 2) // lanes + 1
    n_items = n_runs * per_run
    with out.device:
        starts_dev = cupy.asarray(run_starts) if n_runs > 1 else None
        starts_ptr = starts_dev if starts_dev is not None else np.uint64(0)
        params = dist.params()  # working precision: float32 or float64 scalars
        g, b = _grid(n_items, grid, block)
        kernel(cuda_sources.fill_kernel_name(dist.kind, name))(
            (g,), (b,),
            (out, np.uint64(n_items), np.uint64(n_runs), np.uint64(run_length), starts_ptr,
             np.uint64(start0), np.uint64(per_run), np.uint32(key[0]), np.uint32(key[1]),
             np.int32(dist.proposal), *params))


def raw_words(key: tuple[int, int], out: GpuArray, start: int, round_: int = 0, *,
              grid: int | None = None, block: int | None = None) -> GpuArray:
    """``out[i]`` = word ``p % 4`` of round ``round_`` of block ``p // 4``, ``p = start + i``."""
    import_cupy("the cupy backend")
    if out.dtype != np.uint32 or out.ndim != 1 or not out.flags.c_contiguous:
        raise TypeError("raw_words fills a 1-D C-contiguous uint32 CuPy array")
    n = out.size
    if n == 0:
        return out
    n_items = (start + n - 1) // 4 - start // 4 + 1
    with out.device:
        g, b = _grid(n_items, grid, block)
        kernel(cuda_sources.RAW_WORDS_KERNEL)(
            (g,), (b,), (out, np.uint64(n_items), np.uint64(start), np.uint64(n),
                         np.uint32(round_), np.uint32(key[0]), np.uint32(key[1])))
    return out


def philox4x32_10(counters: npt.ArrayLike | GpuArray,
                  keys: npt.ArrayLike | GpuArray) -> GpuArray:
    """Philox4x32-10 on the GPU: ``counters`` (n, 4) and ``keys`` (n, 2) uint32 arrays."""
    cupy = import_cupy("the cupy backend")
    counters = cupy.ascontiguousarray(cupy.asarray(counters, dtype=cupy.uint32).reshape(-1, 4))
    keys = cupy.ascontiguousarray(cupy.asarray(keys, dtype=cupy.uint32).reshape(-1, 2))
    out = cupy.empty_like(counters)
    n = counters.shape[0]
    if n:
        g, b = _grid(n, None, None)
        kernel(cuda_sources.PHILOX_KERNEL)((g,), (b,), (counters, keys, out, np.uint64(n)))
    return out


def allocate(shape: Sequence[int], dtype_name: str, device: int | None = None) -> GpuArray:
    """An uninitialised CuPy array for ``dtype_name`` (uint16 bits for bfloat16), from
    the allocator ``_memory.py`` chooses (torch's where the program uses torch).

    Out-of-memory becomes :class:`DeviceMemoryError` naming the size and the
    device; nothing stays allocated.
    """
    cupy = import_cupy()
    storage = np.uint16 if dtype_name == "bfloat16" else np.dtype(dtype_name)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(storage).itemsize
    dev = cupy.cuda.Device(device) if device is not None else cupy.cuda.Device()
    with dev:
        try:
            with _memory.allocations(cupy):
                return cupy.empty(shape, dtype=storage)
        except _memory.out_of_memory_errors(cupy) as exc:
            try:
                free, total = cupy.cuda.runtime.memGetInfo()
            except Exception:  # pragma: no cover
                free = total = None
            where = (f"; {free / 2**30:.2f} GiB of {total / 2**30:.2f} GiB free"
                     if free is not None else "")
            raise DeviceMemoryError(
                f"out of GPU memory: a {dtype_name} array of shape {tuple(shape)} needs "
                f"{nbytes / 2**30:.2f} GiB on cuda:{dev.id}{where} (CuPy's pool holds "
                f"{cupy.get_default_memory_pool().total_bytes() / 2**30:.2f} GiB). Free "
                "memory, generate in regions with index=, or use the CPU") from exc
