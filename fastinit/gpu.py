"""GPU helpers: is the GPU path usable, zero-copy hand-off of CuPy results to PyTorch
and JAX, and which allocator owns the GPU memory.

``fastinit.random`` functions called with ``device="cuda"`` (or ``"cuda:1"``)
return a CuPy array on that device; with ``out=`` a CuPy array or a CUDA
buffer (a torch CUDA tensor, bfloat16 included) they fill it in place. These
helpers pass such a result to a framework **without copying** it, through
DLPack: the tensor shares the CuPy array's memory.

Examples (need CuPy and an NVIDIA GPU)::

    import fastinit.random as fr
    from fastinit.gpu import to_torch, to_jax

    w = fr.truncated_normal((4096, 4096), std=0.02, a=-0.04, b=0.04, seed=0,
                            device="cuda")           # cupy.ndarray on cuda:0
    t = to_torch(w)                                  # torch.Tensor, same memory
    assert t.data_ptr() == w.data.ptr
    j = to_jax(w)                                    # jax.Array on the GPU (zero-copy)

    # bfloat16: a bfloat16 CuPy array on CuPy 14 (with ml_dtypes), the uint16
    # bits on CuPy 13; to_torch reinterprets either, without a copy.
    b = fr.normal((1024, 1024), dtype="bfloat16", seed=0, device="cuda")
    tb = to_torch(b, dtype="bfloat16")               # torch.bfloat16, same memory

    # Or fill framework tensors in place, on their current stream:
    import torch
    x = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
    fr.normal(std=0.02, seed=0, out=x)               # same bits as the CPU backends

Memory: a ``device=`` result comes from PyTorch's caching allocator when the
program has imported torch (and torch sees the GPU), else from CuPy's memory
pool, where it stays after :func:`to_torch` (see :func:`set_allocator`). Filling
a tensor allocated by torch (``out=``, or :mod:`fastinit.torch`) always leaves
the memory with torch.

Nothing is imported until a helper is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jax
    import torch

    from ._typing import Allocator, GpuArray

__all__ = ["is_available", "to_torch", "to_jax", "set_allocator"]


def is_available(linalg: bool = True) -> bool:
    """True when the GPU path can run: CuPy imports, CUDA reports a GPU, CuPy finds NVRTC
    (the kernels are compiled at run time) and, with ``linalg`` (``Orthogonal`` needs
    them), cuSOLVER and cuBLAS. Compiles nothing and allocates nothing."""
    try:
        from .backends.cuda import check
        check(linalg_too=linalg)
    except Exception:
        return False
    return True


def set_allocator(name: Allocator) -> Allocator:
    """Choose who allocates fastinit's GPU memory; returns the previous choice.

    ``"auto"`` (the default): PyTorch's caching allocator when torch is already
    imported and sees a GPU, else CuPy's memory pool. ``"torch"``: always
    PyTorch's (one allocator owns everything a torch program uses, and
    ``torch.cuda.memory_allocated`` counts it). ``"cupy"``: CuPy's pool.
    Applies to ``device=`` results and to every GPU temporary of a call.
    """
    from .backends.cuda import _memory
    return _memory.set_allocator(name)


def _bits_dtype(array: GpuArray, dtype: object) -> str:
    name = str(dtype) if dtype is not None else str(array.dtype)
    return name.replace("torch.", "")


def _is_bfloat16_bits(array: GpuArray, name: str) -> bool:
    return name == "bfloat16" and str(array.dtype) in ("uint16", "int16", "bfloat16")


def to_torch(array: GpuArray, dtype: object = None) -> torch.Tensor:
    """A ``torch.Tensor`` sharing ``array``'s GPU memory (``torch.from_dlpack``, no copy).

    bfloat16 (a bfloat16 CuPy array, or uint16 bits with ``dtype="bfloat16"``)
    is handed over as int16 and reinterpreted as ``torch.bfloat16``, still
    without a copy (CuPy 13 cannot export bfloat16 through DLPack).

    Examples (need CuPy, PyTorch with CUDA and a GPU)::

        >>> x = fastinit.random.normal((2, 3), seed=0, device="cuda")  # doctest: +SKIP
        >>> t = to_torch(x)                                            # doctest: +SKIP
        >>> t.device, t.data_ptr() == x.data.ptr                       # doctest: +SKIP
        (device(type='cuda', index=0), True)
    """
    import torch
    name = _bits_dtype(array, dtype)
    if _is_bfloat16_bits(array, name):
        bits = array if str(array.dtype) == "int16" else array.view("int16")
        return torch.from_dlpack(bits).view(torch.bfloat16)
    tensor = torch.from_dlpack(array)
    if dtype is not None and str(tensor.dtype).replace("torch.", "") != name:
        raise TypeError(f"to_torch: the array holds {array.dtype}, not {name}. "
                        f"Received: dtype={dtype!r}")
    return tensor


def to_jax(array: GpuArray, dtype: object = None) -> jax.Array:
    """A ``jax.Array`` on the GPU from ``array`` through DLPack (zero-copy where JAX allows).

    JAX arrays are immutable: do not write to ``array`` afterwards. bfloat16
    goes through DLPack as is where CuPy can export it (CuPy 14 with
    ml_dtypes), else as uint16 bits reinterpreted by ``jax.lax.bitcast_convert_type``
    (which JAX may compute into a new buffer). Without ``jax_enable_x64`` JAX
    turns float64 into float32.

    Examples (need CuPy, JAX with CUDA and a GPU)::

        >>> x = fastinit.random.uniform((2, 3), seed=0, device="cuda")  # doctest: +SKIP
        >>> to_jax(x).devices()                                         # doctest: +SKIP
        {CudaDevice(id=0)}
    """
    import jax
    import jax.numpy as jnp
    name = _bits_dtype(array, dtype)
    if _is_bfloat16_bits(array, name):
        import cupy

        from .backends.cuda import _compat
        if _compat.has_bfloat16(cupy):
            from ._dtypes import bfloat16
            return jax.dlpack.from_dlpack(array.view(bfloat16()))
        bits = jax.dlpack.from_dlpack(array.view("uint16"))
        return jax.lax.bitcast_convert_type(bits, jnp.bfloat16)
    return jax.dlpack.from_dlpack(array)
