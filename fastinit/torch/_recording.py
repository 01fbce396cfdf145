"""A session that records a model's init instead of performing it (``materialize_module``).

:class:`RecordingSession` runs the init of a model on the meta device: each write of a
named tensor becomes a typed operation (``fastinit.torch._plan``: a :class:`Fill` or a
:class:`Copy`) kept by tensor, and nothing named is written; a write it cannot record
(in-place arithmetic, a value computed from meta tensors, an assignment into part of a
tensor) is named in :attr:`RecordingSession.unrecordable`, so the caller initialises the
model live instead. The routing of writes is ``fastinit.torch._session``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import sharding
from ._calls import ops
from ._plan import Copy, Fill
from ._rules import check_dims, torch_rule
from ._session import Session

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from ._names import Target
    from ._pending import Deferred
    from ._plan import Op
    from ._session import Exact

__all__ = ["RecordingSession"]


class RecordingSession(Session):
    """Records each write of a named tensor as a typed operation (:attr:`plan`, by tensor
    id), writing nothing named: the model is on the meta device (``materialize_module``).
    What cannot be recorded is named in :attr:`unrecordable`."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.plan: dict[int, list[Op]] = {}
        # tensor id (or a description of an unnamed write) -> why it cannot be recorded
        self.unrecordable: dict[int | str, str] = {}

    def _perform(self, fn: str, kw: dict[str, Any], tensor: torch.Tensor, target: Target | None,
                 generator: torch.Generator | None, exact: Exact) -> None:
        if target is None:
            if not tensor.is_meta:  # a CPU temporary: its values may be copied in later
                self._write_now(fn, kw, tensor, None, generator, exact)
            elif self.init.in_init:
                site = self.streams.prefix + (self.init.call_site or "")
                self.unrecordable[f"<unnamed {fn} at {site!r}>"] = \
                    "a fill of a meta tensor that is not a named tensor or a view of one"
            return
        check_dims(fn, tensor.ndim)
        init = torch_rule(fn, target.shape, self.streams.seed_for(generator), **kw)
        key = id(target.base)
        if target.index is not None and not sharding.is_elementwise(init):
            self.unrecordable[key] = f"{fn} on a view"
            return
        self.plan.setdefault(key, []).append(Fill(init, target.index))

    def _perform_copy(self, func: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any], dst: torch.Tensor, src: object,
                      target: Target | None) -> Any:
        if target is None:
            return func(*args, **kwargs)
        import torch
        key = id(target.base)
        if not isinstance(src, torch.Tensor):
            src = torch.as_tensor(src)
        if src.is_meta:
            self.unrecordable[key] = "copy_ of a value computed from meta tensors"
        else:
            value = src.detach().to("cpu", dst.dtype).expand(dst.shape).clone()
            self.plan.setdefault(key, []).append(Copy(value, target.index))
        return dst

    def _perform_setitem(self, func: Callable[..., Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any], target: Target | None,
                         view: torch.Tensor | None, scalar: float | None) -> Any:
        if target is None:
            return func(*args, **kwargs)
        region = self.streams.resolve(view) if view is not None else None
        if scalar is None or region is None:
            self.unrecordable[id(target.base)] = "an assignment into part of it"
            return None
        init = torch_rule("constant_", (), None, val=scalar)
        self.plan.setdefault(id(target.base), []).append(Fill(init, region.index))
        return None

    def _settle(self, entry: Deferred, tensor: torch.Tensor, target: Target) -> None:
        self.pending.drop(entry)
        self.plan[id(tensor)] = list(entry.ops)

    def _other_write(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        import torch
        name = getattr(func, "__name__", "")
        if args and name.endswith("_") and not name.endswith("__") \
                and func not in ops("views"):
            target = self.streams.resolve(args[0]) if isinstance(args[0], torch.Tensor) \
                else None
            if target is not None:
                self.unrecordable[id(target.base)] = \
                    f"written in place outside the init functions ({name})"
