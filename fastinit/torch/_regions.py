"""Where a module's tensor lies in its global tensor, and filling that part.

A tensor of a model holds the whole global tensor, a region of it (a
DTensor's local shard, a plain tensor given in ``regions=``), or is a view of
a named tensor (``weight[padding_idx]``). :func:`fill_tensor` and
:func:`fill_region` write the values of the global tensor into the part
the local storage holds, so they equal the single-process values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from . import _tensor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeGuard

    import torch
    from torch.distributed.tensor import DTensor, Shard

    from .._typing import Backend, Shape, TensorT

__all__ = ["dtensor_type", "is_dtensor", "dtensor_region", "view_region", "fill_tensor",
           "fill_region"]


def dtensor_type() -> type[DTensor] | None:
    """``torch.distributed.tensor.DTensor``, or None (torch built without distributed)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return None
    return DTensor


def is_dtensor(tensor: object) -> TypeGuard[DTensor]:
    """True for a DTensor (never imports torch.distributed when it is not loaded)."""
    import sys
    if "torch.distributed.tensor" not in sys.modules:
        return False
    DTensor = dtensor_type()
    return DTensor is not None and isinstance(tensor, DTensor)


def dtensor_region(tensor: DTensor) -> tuple[Shape, tuple[slice, ...]]:
    """``(global_shape, index)`` of a DTensor's local shard: the slices of the global tensor it holds.

    ``Shard(d)`` placements split dimension ``d`` with ``torch.chunk``
    semantics, in the order of the mesh dimensions; ``Replicate()`` keeps it.
    """
    from .. import sharding
    shape = tuple(tensor.shape)
    ndim = len(shape)
    starts, stops = [0] * ndim, list(shape)
    mesh = tensor.device_mesh
    coord = mesh.get_coordinate()
    if coord is None:
        raise ValueError("This rank is not part of the DTensor's device mesh; it holds no shard.")
    for mesh_dim, placement in enumerate(tensor.placements):
        kind = type(placement).__name__
        if kind == "Replicate":
            continue
        if kind != "Shard":
            raise NotImplementedError(
                f"fastinit fills DTensors with Shard and Replicate placements only. "
                f"Received: placements={tensor.placements}")
        d = cast("Shard", placement).dim % ndim  # by name: not a subclass (_StridedShard)
        s, e = sharding.shard_bounds(stops[d] - starts[d], mesh.size(mesh_dim), coord[mesh_dim])
        starts[d], stops[d] = starts[d] + s, starts[d] + e
    local_shape = tuple(b - a for a, b in zip(starts, stops))
    actual = tuple(tensor.to_local().shape)
    if actual != local_shape:
        raise ValueError(f"The local shard has shape {actual}, but its placements give "
                         f"{local_shape} (uneven or padded sharding is not supported). "
                         f"Received: global shape {shape}, placements={tensor.placements}")
    return shape, tuple(slice(a, b) for a, b in zip(starts, stops))


def view_region(base: torch.Tensor, view: torch.Tensor) -> tuple[Any, ...] | None:
    """The index (ints and step-1 slices) of ``view`` inside a C-contiguous ``base``, or None.

    Works on DTensor views too: they keep the global offsets and strides.
    """
    if not base.is_contiguous():
        return None
    off = int(view.storage_offset() - base.storage_offset())
    index: list[int | slice] = []
    axis = 0
    for n, stride in zip(base.shape, base.stride()):
        start, off = divmod(off, stride) if stride else (0, off)
        if axis < view.ndim and view.stride(axis) == stride and start + view.shape[axis] <= n:
            index.append(slice(start, start + view.shape[axis]))
            axis += 1
        else:
            index.append(start)
    if axis != view.ndim or off != 0:
        return None
    check = base[tuple(index)]
    if (check.storage_offset(), tuple(check.shape), check.stride()) != \
            (view.storage_offset(), tuple(view.shape), view.stride()):
        return None
    return tuple(index)


def fill_tensor(tensor: TensorT, init: Callable[..., Any], stream: int, backend: Backend = "auto",
                region: tuple[Sequence[int], tuple[Any, ...]] | None = None) -> TensorT:
    """Fill a whole named tensor: a DTensor's shard, or ``region = (global_shape, index)``
    of a plain tensor holding part of a larger one, or the tensor itself."""
    if is_dtensor(tensor):
        global_shape, index = dtensor_region(tensor)
        _tensor.fill(tensor.to_local(), init, global_shape=global_shape, index=index,
                     stream=stream, backend=backend)
    elif region is not None:
        _tensor.fill(tensor, init, global_shape=region[0], index=region[1], stream=stream,
                     backend=backend)
    else:
        _tensor.fill(tensor, init, stream=stream, backend=backend)
    return tensor


def _bounds(item: int | slice) -> tuple[int, int]:
    return (item, item + 1) if isinstance(item, int) else (item.start, item.stop)


def fill_region(base: TensorT, init: Callable[..., Any], index: tuple[Any, ...], stream: int,
                backend: Backend = "auto",
                region: tuple[Sequence[int], tuple[Any, ...]] | None = None) -> TensorT:
    """Fill region ``index`` (ints and step-1 slices of the global tensor) of ``base``.

    Only the part of the region that the local storage holds is written: for
    a DTensor its shard (a DTensor view is a redistributed copy, so writing it
    would not reach the shard), for ``region = (global_shape, local_index)``
    that box.
    """
    if is_dtensor(base):
        global_shape, held = dtensor_region(base)
        local = base.to_local()
    elif region is not None:
        global_shape, held = tuple(region[0]), region[1]
        local = base
    else:
        _tensor.fill(base[index], init, global_shape=tuple(base.shape), index=index,
                     stream=stream, backend=backend)
        return base
    held = tuple(held) + (slice(None),) * (len(global_shape) - len(held))
    select: list[int | slice] = []
    sub: list[int | slice] = []
    for item, part, n in zip(index, held, global_shape):
        a, b = _bounds(item)
        ps, pe, _ = part.indices(n)
        lo, hi = max(a, ps), min(b, pe)
        if lo >= hi:
            return base
        if isinstance(item, int):
            select.append(lo - ps)
            sub.append(lo)
        else:
            select.append(slice(lo - ps, hi - ps))
            sub.append(slice(lo, hi))
    _tensor.fill(local[tuple(select)], init, global_shape=global_shape, index=tuple(sub),
                 stream=stream, backend=backend)
    return base
