"""Draws deferred during a model's construction, kept by storage until they are settled.

While a transformers model is built inside ``fast_init`` (or a construction is
replayed for ``init_module_``), a random draw into a fresh tensor (the
``kaiming_uniform_`` of each ``nn.Linear``, ``torch.randn`` in a module's
``__init__``, ``torch.empty(n).uniform_()``) is not performed: the model's own
init overwrites most of them. Each becomes a :class:`Deferred`: the operations
(``fastinit.torch._plan``) that would have written the tensor, kept under its
storage, so that ``nn.Parameter(t)``, ``t.data`` and views of ``t`` find it.
Later constant writes into part of it (a padding row) are appended in order. A
deferred tensor is written when the model's init has run and left it (from the
stream of its name), or as soon as an operation reads it (``weight_norm``, a
scaled copy); a copy of it (``clone``, ``deepcopy``, a dtype change) is deferred
in turn.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from . import _regions
from ._names import storage_key
from ._plan import write_ops

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

    from .._typing import Backend
    from ._plan import Op

__all__ = ["Deferred", "Pending"]


class Deferred:
    """The operations of one deferred tensor: its storage, geometry and dtype, and the
    tensor it was made as (for the end of a block)."""

    __slots__ = ("key", "storage", "geometry", "dtype", "ops", "made_as")

    def __init__(self, tensor: torch.Tensor, ops: Iterable[Op]) -> None:
        self.key = storage_key(tensor)
        self.storage = weakref.ref(tensor.untyped_storage())
        self.geometry = (tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        self.dtype = tensor.dtype
        self.ops = list(ops)
        self.made_as = weakref.ref(tensor)

    def alive(self) -> bool:
        return self.storage() is not None

    def covers(self, tensor: torch.Tensor) -> bool:
        """``tensor`` is exactly the deferred tensor (itself, a ``Parameter`` of it, ``.data``)."""
        offset, shape, stride = self.geometry
        return tensor.dtype == self.dtype and \
            (tensor.storage_offset(), tuple(tensor.shape), tensor.stride()) == \
            (offset, shape, stride)

    def view_of(self, alias: torch.Tensor) -> torch.Tensor:
        """The deferred tensor itself, made from ``alias`` (any tensor on its storage)."""
        if self.covers(alias):
            return alias
        offset, shape, stride = self.geometry
        return alias.as_strided(shape, stride, offset)

    def region(self, tensor: torch.Tensor) -> tuple[Any, ...] | None:
        """The index of ``tensor`` (a view into the deferred tensor), or None."""
        if tensor.dtype != self.dtype:
            return None
        return _regions.view_region(self.view_of(tensor), tensor)


class Pending:
    """The deferred tensors of a session, by storage."""

    def __init__(self) -> None:
        self.entries: dict[int | None, Deferred] = {}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def find(self, tensor: torch.Tensor) -> Deferred | None:
        """The :class:`Deferred` on ``tensor``'s storage, or None."""
        if not self.entries:
            return None
        key = storage_key(tensor)
        entry = self.entries.get(key)
        if entry is not None and not entry.alive():
            del self.entries[key]
            return None
        return entry

    def defer(self, tensor: torch.Tensor, op: Op) -> None:
        """Defer ``op`` (over the whole of ``tensor``, a tensor with its own storage)."""
        entry = self.find(tensor)
        if entry is not None and entry.covers(tensor):
            entry.ops = [op]
        else:
            entry = Deferred(tensor, [op])
            self.entries[entry.key] = entry

    def copy(self, source: Deferred, tensor: torch.Tensor) -> None:
        """``tensor`` (a fresh copy of ``source``'s deferred tensor) is deferred in turn."""
        entry = Deferred(tensor, source.ops)
        self.entries[entry.key] = entry

    def drop(self, entry: Deferred) -> None:
        if self.entries.get(entry.key) is entry:
            del self.entries[entry.key]

    def write(self, entry: Deferred, alias: torch.Tensor, stream: int,
              backend: Backend = "auto") -> torch.Tensor:
        """Perform ``entry``'s operations into its storage (reached through ``alias``)."""
        self.drop(entry)
        target = entry.view_of(alias)
        if not target.is_meta:
            write_ops(target, entry.ops, stream, backend=backend)
        return target

    def alive(self) -> list[tuple[Deferred, torch.Tensor | None]]:
        """The live entries and a tensor each was made as (None when that tensor is gone)."""
        out = []
        for entry in list(self.entries.values()):
            if entry.alive():
                out.append((entry, entry.made_as()))
        return out
