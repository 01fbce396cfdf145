"""How ``fastinit.torch`` reads the torch calls a session sees (no state here).

- :func:`ops`: torch operations grouped by what they do to a deferred tensor:
  views and metadata read nothing, copies (``clone``, ``to``) copy a deferred
  draw, the empty family leaves memory unwritten; everything else reads.
- :func:`method_rule`: a tensor method as the ``torch.nn.init`` call it amounts
  to (``w.normal_(0, s)`` is ``normal_(w, mean=0, std=s)``, ``w.fill_(v)`` is
  ``constant_``, ``w.zero_()`` is ``zeros_``).
- :func:`leaves`, :func:`scalar`, :func:`view_at`: tensors in arguments, a
  number, a view made by indexing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._names import storage_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import torch

__all__ = ["ops", "leaves", "method_rule", "scalar", "view_at"]

#: tensor method -> (torch.nn.init function, ((method argument, function argument, default)))
_METHODS: dict[str, tuple[str, tuple[tuple[str, str, float | None], ...]]] = {
    "normal_": ("normal_", (("mean", "mean", 0.0), ("std", "std", 1.0))),
    "uniform_": ("uniform_", (("from", "a", 0.0), ("to", "b", 1.0))),
    "fill_": ("constant_", (("value", "val", None),)),
    "zero_": ("zeros_", ())}
_OPS: dict[str, set[Callable[..., Any]]] = {}


def ops(kind: str) -> set[Callable[..., Any]]:
    """Torch operations by what they do to a deferred tensor (built on first use)."""
    if not _OPS:
        import torch
        t = torch.Tensor
        _OPS["views"] = {getattr(t, n) for n in (
            "__getitem__", "view", "view_as", "reshape", "reshape_as", "detach", "t",
            "transpose", "permute", "expand", "expand_as", "unsqueeze", "squeeze", "flatten",
            "unflatten", "narrow", "select", "as_strided", "unbind", "split", "chunk",
            "requires_grad_") if hasattr(t, n)}
        _OPS["copies"] = {getattr(t, n) for n in (
            "clone", "contiguous", "to", "float", "double", "half", "bfloat16", "type_as",
            "cpu") if hasattr(t, n)}
        _OPS["metadata"] = {getattr(t, n) for n in (
            "size", "dim", "ndimension", "numel", "nelement", "stride", "storage_offset",
            "untyped_storage", "data_ptr", "is_contiguous", "element_size",
            "is_floating_point", "is_complex", "__len__", "get_device", "__hash__")
            if hasattr(t, n)}
        _OPS["factories"] = {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor}
        _OPS["empty"] = {torch.empty, torch.empty_like, torch.empty_strided, t.new_empty}
    return _OPS[kind]


def leaves(value: object) -> Iterator[torch.Tensor]:
    """The tensors in ``value`` (nested lists, tuples and dict values)."""
    import torch
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, torch.Tensor):
        yield value


def method_rule(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
                ) -> tuple[str, dict[str, float], torch.Generator | None] | None:
    """``(fn, kwargs, generator)`` of a tensor method's call, or None (torch decides)."""
    fn, params = _METHODS[name]
    rest, kw = list(args[1:]), dict(kwargs)
    generator = kw.pop("generator", None)
    if len(rest) > len(params):
        return None
    out = {}
    for i, (method_name, our_name, default) in enumerate(params):
        if i < len(rest):
            value = rest[i]
        elif method_name in kw:
            value = kw.pop(method_name)
        elif default is not None:
            value = default
        else:
            return None
        value = scalar(value)
        if value is None:
            return None
        out[our_name] = value
    return None if kw else (fn, out, generator)


def scalar(value: object) -> float | None:
    """A real Python number of ``value`` (a number or a one-element tensor), else None."""
    import torch
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_meta or value.is_complex():
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def view_at(tensor: torch.Tensor, index: Any) -> torch.Tensor | None:
    """``tensor[index]`` when it is a view of ``tensor`` (basic indexing), else None."""
    try:
        view = tensor[index]
    except (IndexError, TypeError, RuntimeError, ValueError):
        return None
    return view if storage_key(view) == storage_key(tensor) else None


