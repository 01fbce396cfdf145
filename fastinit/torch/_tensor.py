"""Writing into a torch tensor: the one fill every ``fastinit.torch`` function uses.

A CPU tensor is written through a NumPy view of its own storage (bfloat16
through an int16 view reinterpreted as ``ml_dtypes.bfloat16``), a CUDA tensor
in place on its GPU (see ``fastinit.backends.cuda``); both without a copy,
whatever the strides. Other dtypes (integer and bool buffers) and devices are
computed in a CPU buffer and copied with ``Tensor.copy_``. Meta tensors are
left alone. The autograd version counter is bumped, as by torch's own
in-place fills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, SupportsIndex

import numpy as np

from .. import _dtypes
from ..initializers.base import Initializer, call_initializer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import torch

    from .._typing import Array, Backend, DTypeKind, Layout, TensorT

__all__ = ["FLOAT_DTYPES", "fill", "numpy_dtype"]

#: Tensor dtypes written in place (the others go through a CPU buffer).
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).replace("torch.", "")


def numpy_dtype(tensor: torch.Tensor) -> np.dtype[Any]:
    """The NumPy dtype of a tensor's elements (bfloat16 from ml_dtypes)."""
    import torch
    if tensor.dtype == torch.bfloat16:
        from .._dtypes import bfloat16
        return bfloat16()
    return torch.empty((), dtype=tensor.dtype).numpy().dtype


def keras_permutation(ndim: int) -> tuple[int, ...]:
    """The axes that show a ``(out, in, *k)`` tensor as a Keras ``(*k, in, out)`` kernel."""
    return tuple(range(2, ndim)) + (1, 0)


def _check(tensor: object) -> None:
    import torch
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"Expected a torch.Tensor. Received: {type(tensor).__name__}")
    if tensor.is_conj() or tensor.is_neg():
        raise ValueError("Cannot fill a tensor with a lazy conjugate or negation bit. "
                         "Received: a tensor with is_conj() or is_neg()")
    if tensor.numel() > 1 and _has_overlap(tensor):
        raise ValueError("Cannot fill a tensor whose elements overlap in memory (an "
                         "expanded or as_strided view), as torch's in-place ops refuse. "
                         f"Received: shape {tuple(tensor.shape)}, stride {tensor.stride()}")


def _has_overlap(tensor: torch.Tensor) -> bool:
    from .._checks import has_overlap
    return has_overlap(tuple(tensor.shape), tuple(tensor.stride()), 1)


def _cpu_view(data: torch.Tensor) -> Array:
    """A NumPy view of a CPU tensor's storage, with its strides (no copy)."""
    import torch
    if data.dtype == torch.bfloat16:
        from .._dtypes import bfloat16
        array = data.view(torch.int16).numpy().view(bfloat16())
    else:
        array = data.numpy()
    if data.numel() and array.__array_interface__["data"][0] != data.data_ptr():
        raise RuntimeError("The NumPy view does not share the tensor's memory. "
                           f"Received: tensor with data_ptr {data.data_ptr()}")
    return array


def fill(tensor: TensorT, initializer: Callable[..., Any], *, layout: Layout = "torch",
         global_shape: Sequence[int] | None = None, index: tuple[Any, ...] | None = None,
         stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` in place with ``initializer`` and return it.

    ``tensor`` holds region ``index`` of a tensor of ``global_shape`` (by
    default: all of a tensor of its own shape), in PyTorch layout. With
    ``layout="keras"`` the initializer sees the Keras layout ``(*k, in, out)``
    (a permuted view); ``"torch"`` passes the shape as it is. ``stream`` and
    ``backend`` go to fastinit initializers; any other callable
    ``(shape, dtype=None)`` is called as it is.
    """
    import torch
    _check(tensor)
    if tensor.is_meta:
        return tensor
    shape = tuple(tensor.shape) if global_shape is None else tuple(global_shape)
    full = tuple(slice(0, n) for n in shape) if index is None else tuple(index)
    perm = keras_permutation(len(shape)) if layout == "keras" and len(shape) >= 2 else None
    if perm is not None:
        shape = tuple(shape[p] for p in perm)
        full = tuple(full[p] for p in perm)
    kw: dict[str, Any] = {"stream": stream, "backend": backend} \
        if isinstance(initializer, Initializer) else {}
    if tensor.numel() == 0:
        return tensor
    if dtype_name(tensor) in FLOAT_DTYPES and tensor.device.type in ("cpu", "cuda"):
        ptr = tensor.data_ptr()
        data = tensor.detach()
        out = _cpu_view(data) if tensor.device.type == "cpu" else data
        if perm is not None:
            out = out.transpose(perm) if isinstance(out, np.ndarray) else out.permute(perm)
        call_initializer(initializer, shape, out=out, index=full, **kw)
        if tensor.data_ptr() != ptr:  # pragma: no cover - a fill never reallocates
            raise RuntimeError("The tensor was reallocated while filling it")
        # Writes through a NumPy or CuPy view are invisible to autograd's version counter.
        torch.autograd.graph.increment_version(tensor)
        return tensor
    dtype = numpy_dtype(tensor)
    kind: DTypeKind = getattr(initializer, "dtype_kind", "any")
    try:
        _dtypes.resolve(dtype, kind)
    except TypeError:
        raise TypeError(f"{type(initializer).__name__} fills "
                        f"{'float' if kind == 'float' else 'float or complex'} tensors. "
                        f"Received: tensor with dtype {tensor.dtype}") from None
    values = call_initializer(initializer, shape, dtype, index=full, **kw)
    if perm is not None:
        values = values.transpose(np.argsort(perm))
    values = np.array(values, order="C", copy=True)
    if tensor.dtype == torch.bfloat16:
        source = torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
    else:
        source = torch.from_numpy(values)
    with torch.no_grad():
        tensor.copy_(source)  # bumps the version counter itself
    return tensor
