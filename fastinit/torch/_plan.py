"""The typed plan of a model's init: what writes each tensor, recorded before it is written.

An operation is a :class:`Fill` (an initializer over the tensor or a region of it)
or a :class:`Copy` (values copied in: transformers' ``copy_``, a buffer of a
rebuilt module, a value computed at construction). A tensor's operations, in
the order the init ran them, are one :class:`Planned` initializer: the last
operation over the whole tensor and every later one count, and any region of
the tensor is computed from the operations' intersections with it. So
``init_module_`` (into the model's own tensors, or a DTensor's shard) and
``materialize_module`` (chunk by chunk into a file) write the same values from
the same :class:`TensorPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .. import sharding
from ..initializers.base import Initializer, call_initializer
from . import _tensor

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from .._typing import Array, Backend, GpuArray, Layout, Shape, TensorT
    from ..initializers.base import Request

__all__ = ["Fill", "Copy", "Op", "TensorPlan", "Planned", "write", "write_ops", "whole_index",
           "as_numpy"]


@dataclass(frozen=True)
class Fill:
    """``initializer`` over region ``index`` of the tensor (None: all of it).

    ``layout="keras"``: the initializer sees a ``(out, in, *k)`` tensor as the
    Keras kernel ``(*k, in, out)`` (as :func:`fastinit.torch.fill_`).
    """

    initializer: Any
    index: Optional[tuple[Any, ...]] = None
    layout: Layout = "torch"


@dataclass(frozen=True)
class Copy:
    """The values of ``value`` (a CPU tensor of the region's shape) in region ``index``."""

    value: torch.Tensor
    index: Optional[tuple[Any, ...]] = None


Op = Union[Fill, Copy]


@dataclass(frozen=True)
class TensorPlan:
    """The operations that fill the tensor called ``name`` (prefix included).

    ``tensor`` is the storage written (a DTensor's local shard, or the tensor
    itself); it holds region ``index`` (None: all) of the global tensor of
    ``global_shape``. The values draw from ``name_stream(name)``.
    """

    name: str
    tensor: torch.Tensor
    ops: tuple[Op, ...]
    global_shape: Shape
    index: Optional[tuple[Any, ...]] = None


def whole_index(index: tuple[Any, ...] | None, shape: Sequence[int]
                ) -> list[tuple[int, int, bool]]:
    """Per axis of ``shape``: ``(start, stop, kept)`` of an index of ints and step-1 slices."""
    index = tuple(index or ()) + (slice(None),) * (len(shape) - len(index or ()))
    out = []
    for item, n in zip(index, shape):
        if isinstance(item, slice):
            a, b, _ = item.indices(n)
            out.append((a, b, True))
        else:
            out.append((int(item), int(item) + 1, False))
    return out


def as_numpy(value: torch.Tensor) -> Array:
    """A NumPy view of a CPU tensor (bfloat16 as ml_dtypes' bfloat16)."""
    import torch
    value = value.detach()
    if value.dtype == torch.bfloat16:
        from .._dtypes import bfloat16
        return value.view(torch.int16).numpy().view(bfloat16())
    return value.numpy()


class Planned(Initializer):
    """The values a tensor's operations give, as a region-capable initializer.

    ``ops`` are :class:`Fill` and :class:`Copy`, in the order the init ran them;
    the last one over the whole tensor and every later one count.
    """

    dtype_kind = "any"

    def __init__(self, ops: Sequence[Op]) -> None:
        ops = tuple(ops)
        if not all(isinstance(op, (Fill, Copy)) for op in ops):
            raise TypeError(f"A plan holds Fill and Copy operations. Received: {ops!r}")
        last = max((i for i, op in enumerate(ops) if op.index is None), default=None)
        if last is None:
            raise ValueError(f"No operation covers the whole tensor. Received: {ops!r}")
        self.ops = ops[last:]

    @property
    def elementwise(self) -> bool:  # type: ignore[override]  # from the operations
        return all(isinstance(op, Copy) or sharding.is_elementwise(op.initializer)
                   for op in self.ops)

    def generate(self, request: Request) -> Array:
        shape = request.shape
        out: Array | GpuArray = (request.out if request.out is not None else
                                 np.empty(request.region.shape, request.dtype))
        want = whole_index(request.index, shape)
        for op in self.ops:
            have = whole_index(op.index, shape)
            inter = [(max(a, c), min(b, d)) for (a, b, _), (c, d, _) in zip(want, have)]
            if any(lo >= hi for lo, hi in inter):
                continue
            dst = tuple(slice(lo - a, hi - a) for (lo, hi), (a, _, kept) in zip(inter, want)
                        if kept)
            sub = tuple(slice(lo, hi) if kept else lo
                        for (lo, hi), (_, _, kept) in zip(inter, want))
            if isinstance(op, Fill):
                target = out[dst + (Ellipsis,)]  # a view, also of a 0-d output
                gshape = shape
                if op.layout == "keras" and len(shape) >= 2:
                    perm = _tensor.keras_permutation(len(shape))
                    gshape = tuple(shape[p] for p in perm)
                    sub = tuple(sub[p] for p in perm)
                    kept = [k for *_, k in want]
                    target = target.transpose([sum(kept[:p]) for p in perm if kept[p]])
                call_initializer(op.initializer, gshape, request.dtype, out=target, index=sub,
                                 stream=request.stream, backend=request.backend)
            else:
                full = as_numpy(op.value)
                rel = tuple(slice(lo - c, hi - c) if kept else lo - c
                            for (lo, hi), (_, _, kept), (c, _, kept_op)
                            in zip(inter, want, have) if kept_op)
                out[dst] = full[rel]
        return out


def write(plan: TensorPlan, backend: Backend = "auto") -> torch.Tensor:
    """Fill ``plan.tensor`` in place with its operations, from the stream of its name."""
    return write_ops(plan.tensor, plan.ops, sharding.name_stream(plan.name),
                     global_shape=plan.global_shape, index=plan.index, backend=backend)


def write_ops(tensor: TensorT, ops: Sequence[Op], stream: int, *,
              global_shape: Sequence[int] | None = None, index: tuple[Any, ...] | None = None,
              backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` (region ``index`` of a tensor of ``global_shape``) with ``ops``.

    One initializer over the whole tensor is written as :func:`fastinit.torch.fill_`
    writes (in place on the tensor's device); more operations are computed region by
    region on the CPU (:class:`Planned`), then copied to a tensor on another device.
    """
    first = ops[0] if len(ops) == 1 else None
    if isinstance(first, Fill) and first.index is None:
        return _tensor.fill(tensor, first.initializer, layout=first.layout,
                            global_shape=global_shape, index=index, stream=stream,
                            backend=backend)
    import torch
    host = tensor if tensor.device.type in ("cpu", "meta") else \
        torch.empty_like(tensor, device="cpu")
    _tensor.fill(host, Planned(ops), global_shape=global_shape, index=index, stream=stream,
                 backend=backend)
    if host is not tensor:
        with torch.no_grad():
            tensor.copy_(host)
    return tensor
