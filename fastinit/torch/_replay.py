"""A model's construction replayed, to learn what it did to each tensor (``init_module_``).

``init_module_`` on a model built on the meta device and materialised with
``to_empty`` finds tensors that neither the model's init nor torch's rules
cover: buffers, values computed in ``__init__`` (CLIP's ``logit_scale``,
``torch.ones(n) / n``), draws made there (``nn.Parameter(torch.randn(d))``) and
tensors derived from them (``weight_norm``'s ``original0``/``original1``).
:class:`ReplaySession` builds the model again with its random draws deferred
(never written, so its parameters cost address space, not memory) and its init
skipped, and :meth:`ReplaySession.record` says, per tensor name, which
operations a deferred draw holds (written from the stream of the name, as
``fast_init`` does), which value construction computed, or that construction
left it unwritten or made it where fastinit cannot see (None).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ._calls import leaves, ops
from ._names import Names, storage_key
from ._session import LiveSession

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import torch
    from transformers import PreTrainedModel   # not followed: Any

    from .._typing import Backend
    from ._intercept import Kind
    from ._pending import Deferred
    from ._plan import Op

__all__ = ["ReplaySession"]


class ReplaySession(LiveSession):
    """Builds a model again to learn what its construction did, without running its init
    and without writing its random draws: :meth:`record` gives, per tensor name, the
    operations of a deferred draw, the value construction computed, or None (left
    uninitialised, or made where fastinit cannot see)."""

    def __init__(self, seed: int, *, backend: Backend = "auto") -> None:
        super().__init__(seed, backend=backend, construction=True)
        # storage key -> weak reference: the storages construction computed
        self.written: dict[int, weakref.ref[torch.UntypedStorage]] = {}

    def _mark(self, tensors: Iterable[torch.Tensor]) -> None:
        for tensor in tensors:
            key = storage_key(tensor)
            if key is not None:
                self.written[key] = weakref.ref(tensor.untyped_storage())

    def _computed_by_construction(self, tensor: torch.Tensor) -> bool:
        """``tensor``'s storage was written (not a freed one's address, reused)."""
        key = storage_key(tensor)
        ref = self.written.get(key) if key is not None else None
        return ref is not None and ref() is tensor.untyped_storage()

    def _defers(self, tensor: torch.Tensor | None, entry: Deferred | None,
                models: list[PreTrainedModel]) -> bool:
        if entry is not None:
            return tensor is not None and entry.covers(tensor)
        return tensor is None or (getattr(tensor, "_base", None) is None
                                  and storage_key(tensor) is not None)

    def model_init(self, model: PreTrainedModel, run: Callable[[], Any]) -> Any:
        return None  # construction only

    def torch_function(self, kind: Kind, func: Callable[..., Any], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        out = super().torch_function(kind, func, args, kwargs)
        self._computed(kind, func, args, kwargs, out)
        return out

    def init_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        out = super().init_call(name, args, kwargs)
        if self.pending.find(out) is None:  # written now, not deferred
            self._mark([out])
        return out

    def materialize(self, entry: Deferred, alias: torch.Tensor) -> torch.Tensor:
        target = super().materialize(entry, alias)
        self._mark([target])
        return target

    def _computed(self, kind: Kind, func: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any], out: object) -> None:
        if kind is not None and kind[0] == "factory":
            return
        if kind is not None and kind[0] in ("method", "copy", "setitem"):
            if self.pending.find(args[0]) is None:
                self._mark([args[0]])
            return
        if kind is None and func not in ops("empty"):
            self._mark(leaves(out))
            name = getattr(func, "__name__", "")
            if name.endswith("_") and not name.endswith("__") and args:
                self._mark(leaves(args[:1]))

    def record(self, model: torch.nn.Module) -> dict[str, tuple[Op, ...] | torch.Tensor | None]:
        """``name -> tuple of operations | tensor | None`` for every tensor of ``model``."""
        names = Names(model)
        out: dict[str, tuple[Op, ...] | torch.Tensor | None] = {}
        for key, tensor in names.tensors.items():
            entry = self.pending.find(tensor)
            value: tuple[Op, ...] | torch.Tensor | None
            if entry is not None and entry.covers(tensor):
                value = tuple(entry.ops)
            elif self._computed_by_construction(tensor):
                value = tensor.detach()
            else:
                value = None
            for alias in names.aliases[key]:
                out[alias] = value
        return out


