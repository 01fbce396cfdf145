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

import weakref

from ._calls import leaves, ops
from ._names import Names, storage_key
from ._session import LiveSession

__all__ = ["ReplaySession"]


class ReplaySession(LiveSession):
    """Builds a model again to learn what its construction did, without running its init
    and without writing its random draws: :meth:`record` gives, per tensor name, the
    operations of a deferred draw, the value construction computed, or None (left
    uninitialised, or made where fastinit cannot see)."""

    def __init__(self, seed, *, backend="auto"):
        super().__init__(seed, backend=backend, construction=True)
        self.written = {}  # storage key -> weak reference: the storages construction computed

    def _mark(self, tensors):
        for tensor in tensors:
            key = storage_key(tensor)
            if key is not None:
                self.written[key] = weakref.ref(tensor.untyped_storage())

    def _computed_by_construction(self, tensor):
        """``tensor``'s storage was written (not a freed one's address, reused)."""
        ref = self.written.get(storage_key(tensor))
        return ref is not None and ref() is tensor.untyped_storage()

    def _defers(self, tensor, entry, models):
        if entry is not None:
            return entry.covers(tensor)
        return tensor is None or (getattr(tensor, "_base", None) is None
                                  and storage_key(tensor) is not None)

    def model_init(self, model, run):
        return None  # construction only

    def torch_function(self, kind, func, args, kwargs):
        out = super().torch_function(kind, func, args, kwargs)
        self._computed(kind, func, args, kwargs, out)
        return out

    def init_call(self, name, args, kwargs):
        out = super().init_call(name, args, kwargs)
        if self.pending.find(out) is None:  # written now, not deferred
            self._mark([out])
        return out

    def materialize(self, entry, alias):
        target = super().materialize(entry, alias)
        self._mark([target])
        return target

    def _computed(self, kind, func, args, kwargs, out):
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

    def record(self, model):
        """``name -> tuple of operations | tensor | None`` for every tensor of ``model``."""
        names = Names(model)
        out = {}
        for key, tensor in names.tensors.items():
            entry = self.pending.find(tensor)
            if entry is not None and entry.covers(tensor):
                value = tuple(entry.ops)
            elif self._computed_by_construction(tensor):
                value = tensor.detach()
            else:
                value = None
            for alias in names.aliases[key]:
                out[alias] = value
        return out


