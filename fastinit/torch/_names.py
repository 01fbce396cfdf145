"""The fully-qualified names of a model's tensors, and the one each draws its stream from.

A tensor shared by several modules (tied weights) has several names; its
*canonical* name is the first one (``named_parameters`` order, then
``named_buffers``) that is not a tied *target* of a transformers model
(a key of ``all_tied_weights_keys``): the name ``save_pretrained`` keeps.
A tensor draws from :func:`fastinit.sharding.name_stream` of ``prefix +``
its canonical name. A write reaches a named tensor through the tensor itself,
a view of it (``weight[padding_idx]``) or an alias of its storage
(``weight.data``, a view of that): :meth:`Names.resolve` finds which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _regions

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

    from .._typing import Shape

    #: ``(global shape, index)`` of a plain tensor holding part of a larger one.
    HeldRegion = tuple[Shape, tuple[Any, ...]]

__all__ = ["Names", "Target", "storage_key", "same_geometry"]


def storage_key(tensor: torch.Tensor) -> int | None:
    """An identity of ``tensor``'s storage, shared by its aliases (``.data``) and views;
    None for tensors without one fastinit can see (a DTensor, other wrappers)."""
    if _regions.is_dtensor(tensor):
        return None
    try:
        return tensor.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, AttributeError, TypeError):
        return None


def same_geometry(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` and ``b`` cover the same elements of one storage (``b`` is ``a.data``, say)."""
    return (a.storage_offset(), tuple(a.shape), a.stride()) == \
        (b.storage_offset(), tuple(b.shape), b.stride())


class Target:
    """A named tensor a fill reaches: ``base`` (the model's tensor), its canonical ``name``
    (prefix included), all its ``aliases``, ``index`` (the region of the global tensor a
    view covers, or None), ``region`` (``(global_shape, index)`` of a plain tensor that
    holds part of a larger one, or None) and ``shape``, the global shape a fill of the
    view or tensor sees (fans are computed from it)."""

    __slots__ = ("base", "name", "aliases", "index", "region", "shape")

    def __init__(self, base: torch.Tensor, name: str, aliases: list[str],
                 index: tuple[Any, ...] | None, region: HeldRegion | None,
                 shape: Shape) -> None:
        self.base, self.name, self.aliases = base, name, aliases
        self.index, self.region, self.shape = index, region, shape

    @property
    def sharded(self) -> bool:
        """The storage holds only part of the global tensor."""
        return self.region is not None or _regions.is_dtensor(self.base)


class Names:
    """``id(tensor) -> names`` and ``id(module) -> name`` of a root module.

    Parameters
    ----------
    root : torch.nn.Module
    prefix : str
        Prepended to every name (the root's name inside a larger model).
    regions : mapping, optional
        ``name -> (global_shape, index)`` (full index tuples, prefix included in the
        names, as ``init_module_`` takes them) for plain tensors holding part of a
        larger tensor.
    """

    def __init__(self, root: torch.nn.Module, prefix: str = "",
                 regions: Mapping[str, tuple[Sequence[int], tuple[Any, ...]]] | None = None
                 ) -> None:
        self.root, self.prefix = root, prefix
        self.aliases: dict[int, list[str]] = {}
        self.tensors: dict[int, torch.Tensor] = {}
        self.buffers: set[int] = set()
        for n, p in root.named_parameters(remove_duplicate=False):
            self.aliases.setdefault(id(p), []).append(n)
            self.tensors[id(p)] = p
        for n, b in root.named_buffers(remove_duplicate=False):
            if id(b) not in self.tensors:
                self.buffers.add(id(b))
            self.aliases.setdefault(id(b), []).append(n)
            self.tensors[id(b)] = b
        self.targets = set(getattr(root, "all_tied_weights_keys", None) or ())
        self.modules: dict[int, str] = {}
        for n, m in root.named_modules(remove_duplicate=False):
            self.modules.setdefault(id(m), n)
        self.regions = dict(regions or {})
        self.storages: dict[int, list[int]] = {}  # storage key -> ids of the named tensors
        for key, t in self.tensors.items():
            skey = storage_key(t)
            if skey is not None:
                self.storages.setdefault(skey, []).append(key)

    def canonical(self, key: int) -> str:
        """The canonical name of tensor ``id`` ``key``, without the prefix."""
        aliases = self.aliases[key]
        return next((a for a in aliases if a not in self.targets), aliases[0])

    def __contains__(self, tensor: object) -> bool:
        return id(tensor) in self.aliases

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """``(canonical name, tensor)`` for every distinct tensor, parameters first."""
        return [(self.canonical(k), t) for k, t in self.tensors.items()]

    def base_of(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """The named tensor ``tensor`` is, is a view of, or shares its storage with; or None."""
        if id(tensor) in self.aliases:
            return tensor
        parent = getattr(tensor, "_base", None)
        if parent is not None and id(parent) in self.aliases:
            return parent
        skey = storage_key(tensor)
        keys = self.storages.get(skey, ()) if self.storages and skey is not None else ()
        for key in keys:  # an exact alias first (weight.data), then a tensor holding the view
            if same_geometry(self.tensors[key], tensor):
                return self.tensors[key]
        for key in keys:
            if _regions.view_region(self.tensors[key], tensor) is not None:
                return self.tensors[key]
        return None

    def resolve(self, tensor: torch.Tensor) -> Target | None:
        """The :class:`Target` a fill of ``tensor`` reaches, or None (not a tensor of root)."""
        base = self.base_of(tensor)
        if base is None:
            return None
        index = None
        if base is not tensor and not (storage_key(base) is not None
                                       and same_geometry(base, tensor)):
            index = _regions.view_region(base, tensor)
            if index is None:
                return None  # a view fastinit cannot map: handled as unnamed
        name = self.canonical(id(base))
        region = self.regions.get(self.prefix + name)
        if region is not None:
            region = (tuple(region[0]), region[1])
        if index is None:
            shape = region[0] if region is not None else tuple(tensor.shape)
        else:
            shape = tuple(tensor.shape)
            if region is not None:  # local view coordinates -> global ones
                index = _shift(index, region[1], region[0])
        return Target(base, self.prefix + name, self.aliases[id(base)], index, region, shape)


def _shift(index: tuple[Any, ...], held: tuple[Any, ...], global_shape: Sequence[int]
           ) -> tuple[Any, ...]:
    held = tuple(held) + (slice(None),) * (len(global_shape) - len(held))
    out = []
    for item, part, n in zip(index, held, global_shape):
        start = part.indices(n)[0]
        out.append(item + start if isinstance(item, int)
                   else slice(item.start + start, item.stop + start))
    return tuple(out)
