"""GPU helpers: is a GPU usable, and zero-copy hand-off of CuPy results to PyTorch and JAX.

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

    # bfloat16: CuPy holds the bits as uint16; to_torch reinterprets them.
    b = fr.normal((1024, 1024), dtype="bfloat16", seed=0, device="cuda")
    tb = to_torch(b, dtype="bfloat16")               # torch.bfloat16, same memory

    # Or fill framework tensors in place, on their current stream:
    import torch
    x = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
    fr.normal(std=0.02, seed=0, out=x)               # same bits as the CPU backends

Nothing is imported until a helper is called.
"""

__all__ = ["is_available", "to_torch", "to_jax"]


def is_available():
    """True when CuPy is installed and CUDA reports at least one GPU."""
    try:
        from .backends.cuda import import_cupy
        import_cupy()
    except Exception:
        return False
    return True


def _bits_dtype(array, dtype):
    name = str(dtype) if dtype is not None else str(array.dtype)
    return name.replace("torch.", "")


def to_torch(array, dtype=None):
    """A ``torch.Tensor`` sharing ``array``'s GPU memory (``torch.from_dlpack``, no copy).

    ``dtype="bfloat16"`` reinterprets uint16 bits (how CuPy holds bfloat16) as
    ``torch.bfloat16``, still without a copy.

    Examples (need CuPy, PyTorch with CUDA and a GPU)::

        >>> x = fastinit.random.normal((2, 3), seed=0, device="cuda")  # doctest: +SKIP
        >>> t = to_torch(x)                                            # doctest: +SKIP
        >>> t.device, t.data_ptr() == x.data.ptr                       # doctest: +SKIP
        (device(type='cuda', index=0), True)
    """
    import torch
    name = _bits_dtype(array, dtype)
    if name == "bfloat16" and str(array.dtype) in ("uint16", "int16"):
        tensor = torch.from_dlpack(array.view("int16") if str(array.dtype) == "uint16"
                                   else array)
        return tensor.view(torch.bfloat16)
    tensor = torch.from_dlpack(array)
    if dtype is not None and str(tensor.dtype).replace("torch.", "") != name:
        raise TypeError(f"to_torch: the array holds {array.dtype}, not {name}. "
                        f"Received: dtype={dtype!r}")
    return tensor


def to_jax(array, dtype=None):
    """A ``jax.Array`` on the GPU from ``array`` through DLPack (zero-copy where JAX allows).

    JAX arrays are immutable: do not write to ``array`` afterwards. ``dtype=
    "bfloat16"`` reinterprets uint16 bits as ``jnp.bfloat16`` (``jax.lax.bitcast_convert_type``,
    which JAX may compute into a new buffer).

    Examples (need CuPy, JAX with CUDA and a GPU)::

        >>> x = fastinit.random.uniform((2, 3), seed=0, device="cuda")  # doctest: +SKIP
        >>> to_jax(x).devices()                                         # doctest: +SKIP
        {CudaDevice(id=0)}
    """
    import jax
    import jax.numpy as jnp
    name = _bits_dtype(array, dtype)
    if name == "bfloat16" and str(array.dtype) in ("uint16", "int16"):
        bits = jax.dlpack.from_dlpack(array)
        return jax.lax.bitcast_convert_type(bits, jnp.bfloat16)
    return jax.dlpack.from_dlpack(array)
