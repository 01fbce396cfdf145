"""Whole-model initialization for PyTorch: :func:`init_module_` (``fastinit.torch.init_module_``).

Every parameter and buffer of a ``torch.nn.Module`` is filled in place from
the stream :func:`fastinit.sharding.name_stream` of its fully-qualified name
under one seed, so its values depend only on ``(seed, name, global shape,
dtype, rule)``: not on the other tensors, the order of modules, the device,
the number of processes or the sharding. A tensor takes, in this order, a
user rule (name pattern or module type); the model's own init code run on
fastinit (a transformers model's ``_init_weights``, a custom module's
``reset_parameters``); PyTorch's ``reset_parameters`` rule of a built-in
module; then what the module's construction did (a rebuilt copy: its buffers,
values computed in ``__init__``, draws by name). What each tensor gets is a
``TensorPlan`` (``fastinit.torch._plan``), shared with ``materialize_module``.
See ``docs/scaleout.md`` and ``docs/models.md``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex

from .. import sharding
from .._checks import check_shape, check_uint64
from .._region import region as region_of
from ..initializers import base as _base
from ..initializers.constant import Zeros
from . import _hf, _intercept, _plan, _regions
from ._names import Names
from ._plan import Copy, Fill, TensorPlan
from ._regions import dtensor_region
from ._rules import TORCH_FNS, default_rule, torch_rule
from ._replay import ReplaySession
from ._session import LiveSession

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TypeGuard

    import torch
    from transformers import PreTrainedModel   # not followed: Any

    from .._typing import Backend, Layout, ModuleT, Regions, RuleValue, Rules, Shape
    from ._plan import Op
    from ._session import Session

    #: Checked rules, in order.
    RuleList = list[tuple[Any, RuleValue]]
    #: ``(name, tensor, owner module)`` of tensors nothing covers.
    Uncovered = list[tuple[str, torch.Tensor, torch.nn.Module]]
    #: Checked regions: ``name -> (global shape, full index of step-1 slices)``.
    HeldRegions = dict[str, tuple[Shape, tuple[slice, ...]]]

__all__ = ["init_module_", "dtensor_region", "run_own_init", "own_resets", "plan_rest",
           "ruled", "uncovered_error", "entries", "rule_list", "construction_record"]


# -- rules ----------------------------------------------------------------------------------


def _is_module_type(key: object) -> TypeGuard[type[torch.nn.Module]]:
    import torch
    return isinstance(key, type) and issubclass(key, torch.nn.Module)


def rule_list(rules: Rules | None) -> RuleList:
    """``rules`` as a list of ``(key, value)``, every key and value checked (before
    anything is written): a misspelled argument of a ``torch.nn.init`` rule, an unknown
    initializer name or a required argument left out is an error naming it."""
    if rules is None:
        return []
    items = list(rules.items()) if isinstance(rules, dict) else list(rules)
    out = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"rules is a mapping or a list of (key, initializer) pairs. "
                            f"Received: {item!r}")
        key, value = item
        if not (isinstance(key, (str, re.Pattern)) or _is_module_type(key)):
            raise TypeError(f"A rule key is a name pattern (str or re.Pattern) or a module "
                            f"type. Received: {key!r}")
        values = value.values() if _is_module_type(key) and isinstance(value, dict) \
            else [value]
        for v in values:
            try:
                _check_value(v)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"bad rule {_shown_key(key)}: {v!r}: {exc}") from None
        out.append((key, value))
    return out


def _shown_key(key: object) -> str:
    return key.__name__ if isinstance(key, type) else repr(getattr(key, "pattern", key))


def _check_value(value: object) -> None:
    """A rule's value: a ``torch.nn.init`` name or ``(name, arguments)``, or anything
    :func:`fastinit.initializers.get` accepts."""
    from ..initializers import get
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        if len(value) != 2 or not isinstance(value[1], dict):
            raise ValueError(f"A torch.nn.init rule is (name, dict of arguments). "
                             f"Received: {value!r}")
        torch_rule(value[0], (2, 2, 2), 0, **value[1])  # its arguments' names and values
        return
    if isinstance(value, str) and value in TORCH_FNS:
        torch_rule(value, (2, 2, 2), 0)
        return
    if value is None or get(value) is None:
        raise ValueError(f"A rule's initializer must not be None. Received: {value!r}")


def check_rules_used(module: torch.nn.Module, rule_list: RuleList, prefix: str = "") -> None:
    """ValueError naming the rules that match no parameter or buffer of ``module`` (a typo
    such as ``"*.q_projj.weight"`` must not pass silently)."""
    used = set()
    for fq, _, mod, local_name, _ in entries(module, prefix):
        for i, rule in enumerate(rule_list):
            if i not in used and _match([rule], fq, mod, local_name) is not None:
                used.add(i)
    unused = [key for i, (key, _) in enumerate(rule_list) if i not in used]
    if unused:
        shown = ", ".join(_shown_key(k) for k in unused)
        raise ValueError(f"These rules match no parameter or buffer of the module (names "
                         f"are fully qualified, e.g. 'layers.0.attn.q_proj.weight'): "
                         f"{shown}. Received: rules with {len(rule_list)} entries")


def check_regions_used(module: torch.nn.Module, regions: HeldRegions, prefix: str = "") -> None:
    """ValueError naming the regions whose name is no tensor of ``module`` (a typo would
    otherwise fill that tensor whole, as if it were not sharded)."""
    unknown = set(regions) - {fq for fq, *_ in entries(module, prefix)}
    if unknown:
        raise ValueError(f"These regions name no parameter or buffer of the module (names are "
                         f"fully qualified, with the prefix): {sorted(unknown)}. Received: "
                         f"regions with {len(regions)} entries")


def _match(rules: RuleList, fq_name: str, module: torch.nn.Module,
           local_name: str) -> RuleValue | None:
    for key, value in rules:
        if isinstance(key, str):
            if fnmatch.fnmatchcase(fq_name, key):
                return value
        elif isinstance(key, re.Pattern):
            if key.search(fq_name):
                return value
        elif isinstance(module, key):
            if isinstance(value, dict):
                if local_name in value:
                    return value[local_name]
                continue
            return value
    return None


def _resolve(value: RuleValue, global_shape: Shape, seed: int,
             layout: Layout) -> tuple[Callable[..., Any], Layout]:
    """``(initializer, layout)`` for a rule value (checked by :func:`rule_list`)."""
    from ..initializers import get
    if isinstance(value, str) and value in TORCH_FNS:
        return torch_rule(value, global_shape, seed), "torch"
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return torch_rule(value[0], global_shape, seed, **value[1]), "torch"
    init = get(value)
    if init is None:
        raise ValueError(f"A rule's initializer must not be None. Received: {value!r}")
    if not isinstance(value, _base.Initializer):  # a name, class or config: the run's seed
        init = init.with_seed(seed) if isinstance(init, _base.Initializer) else init
    return init, layout


# -- the model's own init code ---------------------------------------------------------------


def _own_reset(mod: torch.nn.Module) -> bool:
    """A ``reset_parameters`` written outside torch (torch's modules have built-in rules)."""
    reset = getattr(type(mod), "reset_parameters", None)
    return callable(reset) and not type(mod).__module__.startswith("torch.")


def run_own_init(module: torch.nn.Module, session: Session,
                 candidates: list[torch.nn.Module]) -> tuple[set[int], set[int]]:
    """HF's ``initialize_weights`` (a transformers model) or the custom ``reset_parameters``
    ``candidates`` (children first) under ``session``. Returns ``(touched, bumped)``: the
    ids of the tensors its writes reached, and of those written in place otherwise (the
    autograd version counter moved)."""
    import torch
    tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    versions = {k: t._version for k, t in tensors.items()}
    pretrained = _hf.is_pretrained(module)
    with _intercept.activated(session), torch.no_grad():
        if pretrained:
            model: PreTrainedModel = module
            _hf.clear_flags(model)
            session.hook(model)
            model.initialize_weights()
        else:
            for mod in candidates:  # own_resets: each has a reset_parameters of its own
                session.streams.names = session.streams.rooted(module)
                session.visit(mod, getattr(mod, "reset_parameters"))
    if pretrained:
        _hf.tie(module)  # to_empty unties; HF's init_weights ties after the init
    bumped = {k for k, t in tensors.items() if t._version != versions[k]}
    return session.touched, bumped - session.touched


def own_resets(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules whose ``reset_parameters`` is their own code (not torch's), children first."""
    if _hf.is_pretrained(module):
        return []
    return [m for _, m in _post_order(module) if _own_reset(m)]


# -- init_module_ -----------------------------------------------------------------------------


def _check_regions(regions: Regions | None) -> HeldRegions:
    """``regions`` checked: each a ``(global shape, region)`` pair whose region (a tuple of
    step-1 slices, a ``ShardSpec``, or None for the whole tensor) fits the shape."""
    if regions is not None and not isinstance(regions, Mapping):
        raise TypeError(f"regions is a mapping of tensor names to (global_shape, region). "
                        f"Received: regions={regions!r}")
    out: HeldRegions = {}
    for fq, entry in (regions or {}).items():
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"{fq}: a region of a module tensor is (global_shape, region). "
                             f"Received: {entry!r}")
        gshape, region = entry
        try:
            global_shape = check_shape(gshape, "global_shape")
            index = sharding.to_index(global_shape, region) or ()  # None: the whole tensor
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{fq}: {exc}") from None
        if len(index) > len(global_shape):
            raise ValueError(f"{fq}: the region has {len(index)} items for a global shape of "
                             f"{len(global_shape)} dimensions. Received: {index!r}")
        full = tuple(index) + (slice(None),) * (len(global_shape) - len(index))
        if not all(isinstance(s, slice) and s.step in (None, 1) for s in full):
            raise ValueError(f"{fq}: a region of a module tensor is a tuple of slices "
                             f"with step 1. Received: {index!r}")
        out[fq] = (global_shape, tuple(slice(*s.indices(n)) for s, n in zip(full, global_shape)))
    return out


def entries(module: torch.nn.Module, prefix: str
            ) -> list[tuple[str, torch.Tensor, torch.nn.Module, str, bool]]:
    """``(fq, tensor, owner module, local name, is buffer)`` of every distinct tensor."""
    names = Names(module, prefix)
    out = []
    for key, tensor in names.tensors.items():
        owner_name, _, local = names.canonical(key).rpartition(".")
        out.append((prefix + names.canonical(key), tensor, module.get_submodule(owner_name),
                    local, key in names.buffers))
    return out


def init_module_(module: ModuleT, seed: SupportsIndex, rules: Rules | None = None, *,
                 layout: Layout = "keras", missing: Literal["error", "keep"] = "error",
                 regions: Regions | None = None, prefix: str = "", backend: Backend = "auto",
                 rebuild: Callable[[], torch.nn.Module] | None = None) -> ModuleT:
    """Fill every parameter and buffer of ``module`` in place (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        A transformers ``PreTrainedModel`` is initialised by its own
        ``_init_weights`` (its ``initializer_range``, scaled projections,
        padding rows, tied weights, buffers), on fastinit's kernels.
    seed : int
        In ``[0, 2**64)``; one seed for the whole model.
    rules : mapping or list of (key, initializer), optional
        Name patterns or module types to initializers, checked in order
        before anything else. A rule that matches nothing is an error.
    layout : {"keras", "torch"}
        How a Keras-style initializer in ``rules`` sees a weight (as
        :func:`fastinit.torch.fill_`). PyTorch-style rules always use PyTorch's layout.
    missing : {"error", "keep"}
        A parameter or buffer that nothing covers (not even the rebuilt
        module): an error naming all of them, or left as it is (after
        ``to_empty``, that is uninitialised memory). The error comes before
        anything is filled unless the model's own init code had to run first
        (it is then raised after it).
    regions : mapping, optional
        ``name -> (global_shape, region)`` for plain tensors that hold a
        region of a larger tensor.
    prefix : str
        Prepended to the names (the module's name inside a larger model).
    backend : {"auto", "numba", "numpy"}
    rebuild : callable, optional
        Builds the module again: a tensor nothing else covers takes what that
        construction gave it (a buffer's value, a value computed in
        ``__init__`` such as ``nn.Parameter(torch.tensor(2.6592))``, or a
        random draw such as ``nn.Parameter(torch.randn(d))`` from the stream of
        its name). The construction runs with its random draws deferred (never
        written) and its init skipped, so it costs the memory of what it
        computes, not of its parameters. Default for a transformers model: its
        class from its config.

    Returns
    -------
    module

    Examples
    --------
    >>> import torch
    >>> from fastinit.sharding import name_stream
    >>> import fastinit.torch as ft
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.LayerNorm(4))
    >>> _ = init_module_(model, seed=0)
    >>> w = ft.kaiming_uniform_(torch.empty(4, 8), a=5 ** 0.5, seed=0, stream=name_stream("0.weight"))
    >>> torch.equal(model[0].weight.detach(), w), torch.equal(model[1].weight.detach(), torch.ones(4))
    (True, True)
    """
    import torch
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module. Received: {type(module).__name__}")
    seed = check_uint64(seed, "seed", TypeError)
    if layout not in ("keras", "torch"):
        raise ValueError(f"layout must be 'keras' or 'torch'. Received: layout={layout!r}")
    if missing not in ("error", "keep"):
        raise ValueError(f"missing must be 'error' or 'keep'. Received: missing={missing!r}")
    rules = rule_list(rules)
    regions = _check_regions(regions)
    for fq, tensor, *_ in entries(module, prefix):
        if tensor.is_meta:
            raise ValueError(f"{fq} is on the meta device: materialise the module first "
                             "(module.to_empty(device='cpu' or 'cuda')), then call "
                             "init_module_.")
    check_rules_used(module, rules, prefix)
    check_regions_used(module, regions, prefix)
    if rebuild is not None and not callable(rebuild):
        raise TypeError(f"rebuild must be a callable building the module again. "
                        f"Received: rebuild={rebuild!r}")
    pretrained = _hf.is_pretrained(module)
    own = own_resets(module)
    written = set()
    if pretrained or own:
        session = LiveSession(seed, backend=backend, prefix=prefix, regions=regions,
                              skip=ruled(module, rules, prefix))
        written = set().union(*run_own_init(module, session, own))
    if rebuild is None and pretrained:
        rebuild = _hf.rebuilder(module)
    plans, uncovered = plan_rest(module, seed, rules, layout, regions, prefix, written,
                                 rebuild, backend)
    if uncovered and missing == "error":
        raise uncovered_error(uncovered, bool(pretrained or own), rebuild is not None)
    for plan in plans:
        _plan.write(plan, backend)
    return module


def ruled(module: torch.nn.Module, rule_list: RuleList, prefix: str = "") -> set[int]:
    """The ids of the tensors a user rule covers."""
    return {id(t) for fq, t, mod, local, _ in entries(module, prefix)
            if _match(rule_list, fq, mod, local) is not None}


def uncovered_error(uncovered: Uncovered, ran: bool, rebuilt: bool = False) -> ValueError:
    listed = ", ".join(f"{fq} ({type(mod).__name__})" for fq, _, mod in uncovered)
    done = " (the model's own init code has run)" if ran else ""
    how = "rules={pattern or module type: initializer}" + \
        ("" if rebuilt else ", or rebuild= (a function building the module again)")
    return ValueError(f"No rule for these parameters/buffers (add {how}; missing='keep' "
                      f"leaves them as they are, uninitialised after to_empty){done}: "
                      f"{listed}")


def _post_order(module: torch.nn.Module, name: str = "") -> Iterator[tuple[str, torch.nn.Module]]:
    for child_name, child in module.named_children():
        yield from _post_order(child, f"{name}{child_name}.")
    yield name, module


def plan_rest(module: torch.nn.Module, seed: int, rules: RuleList, layout: Layout,
              regions: HeldRegions, prefix: str, written: set[int],
              rebuild: Callable[[], torch.nn.Module] | None, backend: Backend = "auto"
              ) -> tuple[list[TensorPlan], Uncovered]:
    """What fills each tensor that the model's own init code did not write.

    Returns ``(plans, uncovered)``: a ``TensorPlan`` (``fastinit.torch._plan``) per
    tensor (a rule, a default rule, or what a rebuilt module's construction gave it),
    and ``(fq, tensor, module)`` of the tensors nothing covers.
    """
    import torch
    plans: list[TensorPlan] = []
    uncovered: Uncovered = []
    late: Uncovered = []
    overrides: dict[str, RuleValue] = {}
    for mod_name, mod in module.named_modules():
        if isinstance(mod, torch.nn.MultiheadAttention) and mod.out_proj.bias is not None:
            overrides[f"{prefix}{mod_name + '.' if mod_name else ''}out_proj.bias"] = \
                ("zeros_", {})
    for fq, tensor, mod, local_name, is_buffer in entries(module, prefix):
        value = _match(rules, fq, mod, local_name)
        padding = None
        if value is None and id(tensor) in written:
            continue
        if value is None:
            shapes = {n: tuple(t.shape) for n, t in list(mod._parameters.items())
                      + list(mod._buffers.items()) if t is not None}
            value = overrides.get(fq) or default_rule(mod, local_name, shapes)
            if value is not None and isinstance(mod, (torch.nn.Embedding,
                                                      torch.nn.EmbeddingBag)):
                padding = mod.padding_idx
        if value is None:
            late.append((fq, tensor, mod))
            continue
        local, global_shape, index = _placement(fq, tensor, regions)
        try:
            init, lay = _resolve(value, global_shape, seed, layout)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{fq}: bad rule {value!r}: {exc}") from None
        fills = [Fill(init, None, lay)]
        if padding is not None:
            fills.append(Fill(Zeros(), (padding % global_shape[0],)))
        plans.append(TensorPlan(fq, local, tuple(fills), global_shape, index))
    if late and rebuild is not None:
        built = construction_record(rebuild, seed, backend)
        for fq, tensor, mod in late:
            made = built.get(fq[len(prefix):])
            if made is None or tuple(getattr(made, "shape", tensor.shape)) != \
                    tuple(tensor.shape):
                uncovered.append((fq, tensor, mod))
                continue
            local, global_shape, index = _placement(fq, tensor, regions)
            ops = made if isinstance(made, tuple) else (Copy(made.to(tensor.dtype)),)
            plans.append(TensorPlan(fq, local, ops, global_shape, index))
    else:
        uncovered += late
    return plans, uncovered


def _placement(fq: str, tensor: torch.Tensor, regions: HeldRegions
               ) -> tuple[torch.Tensor, Shape, tuple[Any, ...] | None]:
    """``(local tensor, global shape, index)``: where ``tensor`` lies in its global tensor."""
    if _regions.is_dtensor(tensor):
        global_shape, index = dtensor_region(tensor)
        local = tensor.to_local()
    elif fq in regions:
        global_shape, index = regions[fq]
        local = tensor
    else:
        return tensor, tuple(tensor.shape), None
    rshape = region_of(global_shape, index).shape
    if tuple(local.shape) != rshape:
        raise ValueError(f"{fq}: the tensor has shape {tuple(local.shape)} but its "
                         f"region {index} of {global_shape} has shape {rshape}")
    return local, global_shape, index


def construction_record(rebuild: Callable[[], torch.nn.Module], seed: int,
                        backend: Backend = "auto"
                        ) -> dict[str, tuple[Op, ...] | torch.Tensor | None]:
    """``name -> operations | value | None``: what ``rebuild()``'s construction did to each
    tensor of the module it returns (``fastinit.torch._replay``)."""
    import torch
    session = ReplaySession(seed, backend=backend)
    with _intercept.activated(session):
        built = rebuild()
    if not isinstance(built, torch.nn.Module):
        raise TypeError(f"rebuild must return a torch.nn.Module. Received: "
                        f"{type(built).__name__}")
    return session.record(built)
