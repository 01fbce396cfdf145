"""What an intercepted write does: the sessions of ``fastinit.torch``.

A session is open in one thread (``fastinit.torch._intercept`` hands it that
thread's writes) for one ``fast_init`` block, one run of a model's own init by
``init_module_``, or one replayed construction. Its parts, one concern each:

- ``streams`` (:class:`~fastinit.torch._streams.Streams`): the seed and stream of
  every write;
- ``pending`` (:class:`~fastinit.torch._pending.Pending`): the draws a model's
  construction deferred;
- ``init`` (:class:`ModelInit`): the transformers init in progress;
- ``touched`` / ``skip``: the named tensors written, and those a user rule owns.

Every write is reduced to ``torch.nn.init.<fn>(tensor, **kwargs)`` (a tensor
method too: ``w.normal_(0, s)`` is ``normal_``, ``w.fill_(v)`` is ``constant_``).
:class:`LiveSession` writes it; ``fastinit.torch._recording`` records it as a typed
operation (``materialize_module`` on a meta model) and ``fastinit.torch._replay``
builds a model again and keeps what its construction did.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, cast

from .. import sharding
from . import _hf, _intercept, _regions, _tensor
from ._calls import leaves, method_rule, ops, scalar, view_at
from ._names import storage_key
from ._pending import Pending
from ._plan import Fill
from ._rules import CONSTANT, RANDOM, check_dims, torch_rule
from ._streams import Streams

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import torch
    from transformers import PreTrainedModel   # not followed: Any

    from .._typing import Backend
    from ._intercept import Kind
    from ._names import HeldRegion, Target
    from ._pending import Deferred

    #: torch's own write (a constant written by torch, exactly), or None.
    Exact = Callable[[], object] | None

__all__ = ["ModelInit", "Session", "LiveSession"]

TORCH_RNG = "<torch-rng>/{}/{}"


class ModelInit:
    """The transformers init in progress in a session: whether a model's
    ``initialize_weights`` runs, the module whose ``_init_weights`` runs (its name),
    nested models waiting for their outermost model, and the models hooked."""

    def __init__(self) -> None:
        self.in_init = False
        self.call_site: str | None = None
        self.deferred: list[tuple[PreTrainedModel, Callable[[], Any]]] = []
        self.hooked: list[PreTrainedModel] = []


class Session:
    """The routing every session shares; subclasses decide what a write does."""

    seeds_torch = False  # seed torch's generator for each module whose _init_weights runs

    def __init__(self, seed: int, *, backend: Backend = "auto", prefix: str = "",
                 module: torch.nn.Module | None = None,
                 regions: Mapping[str, HeldRegion] | None = None, torch_rng: bool = True,
                 follow_torch: bool = False, skip: Iterable[int] = (),
                 construction: bool = False) -> None:
        self.streams = Streams(seed, prefix=prefix, module=module, regions=regions,
                               follow_torch=follow_torch)
        self.backend, self.torch_rng, self.construction = backend, torch_rng, construction
        self.init = ModelInit()
        self.pending = Pending()
        self.touched: set[int] = set()
        self.skip = set(skip)
        self.redirects: dict[int, torch.Tensor] = {}  # id(float32 temporary) -> model's tensor

    # -- entry points (fastinit's own torch calls pass through while they run)

    def init_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``torch.nn.init.<name>(*args, **kwargs)``."""
        try:
            bound = _intercept.signature(name).bind(*args, **kwargs)
        except TypeError:
            return _intercept.original(name)(*args, **kwargs)  # torch's own error
        bound.apply_defaults()
        kw = dict(bound.arguments)
        tensor = kw.pop(next(iter(bound.signature.parameters)))
        generator = kw.pop("generator", None)
        if name.startswith("kaiming") and 0 in tensor.shape:
            _intercept.warn_no_op()
            return tensor
        if name == "orthogonal_" and _hf.loaded():
            model_tensor = _hf.redirected_temporary(tensor)
            if model_tensor is not None:  # fill the model's tensor, skip the copy_ after
                self.redirects[id(tensor)] = model_tensor
                self.write(name, kw, model_tensor, generator)
                return tensor
        self.write(name, kw, tensor, generator,
                   lambda: _intercept.original(name)(tensor, **kw))
        return tensor

    def torch_function(self, kind: Kind, func: Callable[..., Any], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
        """Any torch call of this thread (``kind`` from ``_intercept``)."""
        if kind is None:
            return self._other(func, args, kwargs)
        what, name = kind
        if what == "init":
            return self.init_call(cast(str, name), args, kwargs)  # init kinds have a name
        return getattr(self, "_" + what)(name, func, args, kwargs)

    # -- writes

    def write(self, fn: str, kw: dict[str, Any], tensor: torch.Tensor,
              generator: torch.Generator | None = None, exact: Exact = None) -> None:
        """One ``torch.nn.init.<fn>(tensor, **kw)``: deferred, skipped or performed.
        ``exact()`` is torch's own write (constants are written by torch, exactly)."""
        models = self._models()
        target = self.streams.resolve(tensor, refresh=not self.init.in_init)
        if target is not None and (id(target.base) in self.skip or self._tied_target(target)):
            return
        entry = self.pending.find(tensor)
        if fn in RANDOM and target is None and self._defers(tensor, entry, models):
            init = torch_rule(fn, tuple(tensor.shape), self.streams.seed_for(generator), **kw)
            self.pending.defer(tensor, Fill(init))
            return
        if target is not None:
            self.touched.add(id(target.base))
        if entry is not None:
            if entry.covers(tensor):
                self.pending.drop(entry)  # overwritten
            else:
                index = entry.region(tensor)
                init = torch_rule(fn, tuple(tensor.shape), self.streams.seed_for(generator),
                                  **kw)
                if index is not None and sharding.is_elementwise(init):
                    entry.ops.append(Fill(init, index))  # after the deferred draw
                    return
                self.materialize(entry, tensor)
        self._perform(fn, kw, tensor, target, generator, exact)

    def _write_now(self, fn: str, kw: dict[str, Any], tensor: torch.Tensor, target: Target | None,
                   generator: torch.Generator | None, exact: Exact) -> None:
        if fn in CONSTANT and exact is not None and not _torch_cannot(fn, target):
            exact()
            return
        if tensor.is_meta:
            return
        check_dims(fn, tensor.ndim)
        if target is None:
            seed, stream = self.streams.unnamed(generator)
            init = torch_rule(fn, tuple(tensor.shape), seed, **kw)
            _regions.fill_tensor(tensor, init, stream, self.backend)
            return
        init = torch_rule(fn, target.shape, self.streams.seed_for(generator), **kw)
        stream = sharding.name_stream(target.name)
        if target.index is None:
            _regions.fill_tensor(target.base, init, stream, self.backend, target.region)
        elif sharding.is_elementwise(init):
            _regions.fill_region(target.base, init, target.index, stream, self.backend,
                                 target.region)
        elif not target.sharded:  # a global initializer on a view: the view on its own
            _tensor.fill(tensor, init, stream=sharding.name_stream(
                f"{target.name}{list(target.index)}"), backend=self.backend)
        else:
            raise NotImplementedError(f"fastinit cannot fill a view of the sharded tensor "
                                      f"{target.name} with {fn}")

    def _method(self, name: str, func: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        """``tensor.normal_/uniform_/fill_/zero_(...)`` (``weight.data.normal_()`` too)."""
        import torch
        tensor = args[0]
        rule = method_rule(name, args, kwargs)
        if rule is None or (torch.is_grad_enabled() and tensor.requires_grad):
            return self._other(func, args, kwargs)  # torch's own rules (errors, autograd)
        fn, kw, generator = rule
        if self.streams.resolve(tensor) is None and self.pending.find(tensor) is None and \
                not (fn in RANDOM and self._defers(tensor, None, self._models())):
            return self._other(func, args, kwargs)  # not the model's: torch's method
        self.write(fn, kw, tensor, generator, lambda: func(*args, **kwargs))
        return tensor

    def _copy(self, _: object, func: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        """``dst.copy_(src)``: a value copied into a named tensor."""
        dst = args[0]
        src = args[1] if len(args) > 1 else kwargs.get("src")
        if self.redirects.get(id(src)) is dst:
            del self.redirects[id(src)]
            return dst
        self._read([src])
        target = self.streams.resolve(dst, refresh=not self.init.in_init)
        entry = self.pending.find(dst)
        if target is None and entry is None:
            return func(*args, **kwargs)
        if target is not None:
            if id(target.base) in self.skip or self._tied_target(target):
                return dst
            self.touched.add(id(target.base))
        if entry is not None:
            if entry.covers(dst):
                self.pending.drop(entry)
            else:
                self.materialize(entry, dst)
        return self._perform_copy(func, args, kwargs, dst, src, target)

    def _setitem(self, _: object, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        """``tensor[index] = value``."""
        dst, index, value = args[0], args[1], args[2]
        self._read([value])
        target = self.streams.resolve(dst, refresh=not self.init.in_init)
        entry = self.pending.find(dst)
        if target is None and entry is None:
            return func(*args, **kwargs)
        number, view = scalar(value), view_at(dst, index)
        if target is not None:
            if id(target.base) in self.skip or self._tied_target(target):
                return None
            self.touched.add(id(target.base))
        if entry is not None:
            region = entry.region(view) if view is not None else None
            if number is not None and region is not None:
                entry.ops.append(Fill(torch_rule("constant_", (), None, val=number), region))
                return None
            self.materialize(entry, dst)
        return self._perform_setitem(func, args, kwargs, target, view, number)

    def _eye(self, _: object, func: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        """``torch.eye(n, m, out=tensor)``."""
        out = kwargs.get("out")
        if out is None or (self.streams.resolve(out) is None and self.pending.find(out) is None):
            return self._other(func, args, kwargs)
        self.write("eye_", {}, out, None, lambda: func(*args, **kwargs))
        return out

    def _factory(self, name: str, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        """``torch.randn`` / ``rand`` (and ``_like``) in a construction: a deferred draw."""
        models = self._models()
        if kwargs.get("out") is not None or not self._defers(None, None, models):
            return self._other(func, args, kwargs)
        import torch
        kw = {k: v for k, v in kwargs.items() if k != "generator"}
        tensor = (torch.empty if name in ("randn", "rand") else torch.empty_like)(*args, **kw)
        if not tensor.is_floating_point() or storage_key(tensor) is None:
            return func(*args, **kwargs)
        fn = "normal_" if name.startswith("randn") else "uniform_"
        seed = self.streams.seed_for(kwargs.get("generator"))
        self.pending.defer(tensor, Fill(torch_rule(fn, tuple(tensor.shape), seed)))
        return tensor

    def _other(self, func: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        """Any other call: a deferred tensor it reads is written first (a copy of one is
        deferred in turn)."""
        if self.construction and not self.init.in_init and func in ops("factories"):
            self._models()  # hook a model whose construction makes only such tensors
        self._other_write(func, args)
        if not self.pending or func in ops("metadata") or \
                getattr(func, "__name__", "") == "__get__":
            return func(*args, **kwargs)
        found = [(t, e) for t in leaves((args, kwargs))
                 if (e := self.pending.find(t)) is not None]
        if not found:
            return func(*args, **kwargs)
        if func in ops("copies") or func in ops("views"):
            out = func(*args, **kwargs)
            sources = {storage_key(t) for t, _ in found}
            results = list(leaves(out))
            if all(storage_key(r) in sources for r in results):
                return out  # views and aliases read nothing
            tensor, entry = found[0]
            if func in ops("copies") and len(found) == 1 and tensor is args[0] and \
                    len(results) == 1 and entry.covers(tensor) and \
                    results[0].shape == tensor.shape and results[0].is_floating_point():
                self.pending.copy(entry, results[0])
                return out
        self._read([t for t, _ in found])
        return func(*args, **kwargs)

    def _read(self, values: object) -> None:
        for tensor in leaves(values):
            entry = self.pending.find(tensor)
            if entry is not None:
                self.materialize(entry, tensor)

    def materialize(self, entry: Deferred, alias: torch.Tensor) -> torch.Tensor:
        """Write a deferred tensor now (something reads it): by its name when it has one."""
        target = self.streams.resolve(alias)
        if target is not None and entry.covers(target.base):
            stream = sharding.name_stream(target.name)
        else:
            models = _hf.constructing() if _hf.loaded() else []
            stream = self.streams.construction(models[0]) if models else \
                self.streams.next_anonymous()
        return self.pending.write(entry, alias, stream, self.backend)

    # -- the transformers init

    def _models(self) -> list[PreTrainedModel]:
        """The transformers models under construction in this thread, hooked (when this
        session defers construction draws)."""
        if not self.construction or self.init.in_init or not _hf.loaded():
            return []
        models = _hf.constructing()
        for model in models:
            self.hook(model)
        return models

    def _defers(self, tensor: torch.Tensor | None, entry: Deferred | None,
                models: list[PreTrainedModel]) -> bool:
        """A random write into a fresh tensor of a model under construction waits."""
        if not models:
            return False
        if entry is not None:
            return tensor is not None and entry.covers(tensor)
        return tensor is None or (getattr(tensor, "_base", None) is None
                                  and storage_key(tensor) is not None)

    def hook(self, model: PreTrainedModel) -> None:
        if _hf.hook(model, _on_initialize, _on_visit):
            self.init.hooked.append(model)

    def model_init(self, model: PreTrainedModel, run: Callable[[], Any]) -> Any:
        """``model.initialize_weights()`` (``run`` is transformers' own)."""
        if self.init.in_init:
            return run()
        if _hf.outer_under_construction(model) is not None:
            self.init.deferred.append((model, run))  # the outermost model initialises it
            return None
        return self.managed(model, run)

    def managed(self, root: PreTrainedModel, run: Callable[[], Any]) -> Any:
        """Run ``root``'s own init with ``root``-relative names, then settle the draws its
        construction deferred that the init did not overwrite."""
        saved = (self.streams.names, self.init.in_init, self.init.call_site)
        names = self.streams.names = self.streams.rooted(root)
        for module in root.modules():
            if _hf.is_pretrained(module):
                self.hook(module)
        self.init.in_init, self.init.call_site = True, None
        try:
            result = run()
            for key, tensor in names.tensors.items():
                entry = self.pending.find(tensor)
                if entry is not None and entry.covers(tensor) and key not in self.skip:
                    target = names.resolve(tensor)
                    if target is not None:  # always: a tensor of names resolves to itself
                        self._settle(entry, tensor, target)
        finally:
            self.streams.names, self.init.in_init, self.init.call_site = saved
        self.init.deferred = [d for d in self.init.deferred if id(d[0]) not in names.modules]
        return result

    def visit(self, module: torch.nn.Module, run: Callable[[], Any], flagged: bool = False) -> Any:
        """HF's ``_initialize_weights(module)``: ``module`` is the call site; torch's own
        generator is seeded from (seed, module name) for code that calls it directly."""
        saved = self.init.call_site
        if self.streams.names is not None:
            self.init.call_site = self.streams.names.modules.get(id(module))
        try:
            if self.seeds_torch and self.torch_rng and not flagged \
                    and self.init.call_site is not None:
                with _torch_rng(self.streams.seed, self.streams.prefix + self.init.call_site,
                                module):
                    return run()
            return run()
        finally:
            self.init.call_site = saved

    def finish(self) -> None:
        """At the end of a block: nested models whose outermost model never initialised
        them (under their own names), then deferred tensors no init reached."""
        while self.init.deferred:
            model, run = self.init.deferred.pop(0)
            self.managed(model, run)
        for entry, tensor in self.pending.alive():
            if tensor is not None:
                self.materialize(entry, tensor)
        self.pending.entries.clear()

    def close(self) -> None:
        for model in self.init.hooked:
            _hf.unhook(model)
        self.init.hooked = []

    def _tied_target(self, target: Target) -> bool:
        """A fill through a tied *target* name (``lm_head.weight``): HF discards it when
        tying, and it would overwrite the source (and BERT's zero padding row)."""
        names, site = self.streams.names, self.init.call_site
        if site is None or names is None or not names.targets:
            return False
        targets = names.targets
        pre = site + "." if site else ""
        local = [a for a in target.aliases if a.startswith(pre)]
        return bool(local) and all(a in targets for a in local)

    # -- what a write does (subclasses)

    def _perform(self, fn: str, kw: dict[str, Any], tensor: torch.Tensor, target: Target | None,
                 generator: torch.Generator | None, exact: Exact) -> None:
        raise NotImplementedError

    def _perform_copy(self, func: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any], dst: torch.Tensor, src: object,
                      target: Target | None) -> Any:
        return func(*args, **kwargs)

    def _other_write(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Any other in-place operation (``erfinv_``, ``mul_``): a live write just runs."""

    def _perform_setitem(self, func: Callable[..., Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any], target: Target | None,
                         view: torch.Tensor | None, scalar: float | None) -> Any:
        return func(*args, **kwargs)

    def _settle(self, entry: Deferred, tensor: torch.Tensor, target: Target) -> None:
        self.pending.write(entry, tensor, sharding.name_stream(target.name), self.backend)


class LiveSession(Session):
    """Writes every intercepted write now (``fast_init``, ``init_module_``)."""

    seeds_torch = True

    def _perform(self, fn: str, kw: dict[str, Any], tensor: torch.Tensor, target: Target | None,
                 generator: torch.Generator | None, exact: Exact) -> None:
        self._write_now(fn, kw, tensor, target, generator, exact)


# -- the hooks' targets (the calling thread's session, or transformers' own code)

def _on_initialize(model: PreTrainedModel, run: Callable[[], Any]) -> Any:
    session = _claimed(model)
    return run() if session is None else session.model_init(model, run)


def _on_visit(model: PreTrainedModel, module: torch.nn.Module, run: Callable[[], Any]) -> Any:
    session = _claimed(model)
    if session is None:
        return run()
    return session.visit(module, run, getattr(module, "_is_hf_initialized", False))


def _claimed(model: PreTrainedModel) -> Session | None:
    """The calling thread's session, which removes ``model``'s hooks when it closes (a deep
    copy of a hooked model is hooked too); with no session, the hooks go now."""
    session = cast("Session | None", _intercept.current())  # every session is a Session
    if session is None:
        _hf.unhook(model)
    elif not any(m is model for m in session.init.hooked):
        session.init.hooked.append(model)
    return session


def _torch_cannot(fn: str, target: Target | None) -> bool:
    """A constant write torch's function cannot do on its own: a structured one on a
    shard, or into a view of a DTensor (a copy)."""
    structured = fn in ("eye_", "dirac_") and target is not None and target.sharded
    view_of_dtensor = target is not None and target.index is not None \
        and _regions.is_dtensor(target.base)
    return structured or view_of_dtensor


# torch's default generators are the process's: two threads' blocks must not interleave
# their save / seed / restore (each would draw from, and then undo, the other's state).
# Re-entrant: an ``_init_weights`` may run another's in the same thread.
_TORCH_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def _torch_rng(seed: int, name: str, module: torch.nn.Module) -> Iterator[None]:
    """torch's generators seeded from (seed, module name) for the block, then restored;
    one thread at a time (``_TORCH_RNG_LOCK``)."""
    import torch
    devices = sorted({t.device.index or 0 for t in module.parameters(recurse=False)
                      if t.device.type == "cuda"})
    with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=devices):
        value = sharding.name_stream(TORCH_RNG.format(seed, name)) >> 1
        torch.default_generator.manual_seed(value)
        for d in devices:  # pragma: no cover - needs a GPU
            torch.cuda.default_generators[d].manual_seed(value)
        yield
