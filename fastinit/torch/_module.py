"""Whole-model initialization for PyTorch: :func:`init_module_` (``fastinit.torch.init_module_``).

Every parameter and buffer of a ``torch.nn.Module`` is filled in place from
the stream :func:`fastinit.sharding.name_stream` of its fully-qualified name
under one seed, so its values depend only on ``(seed, name, global shape,
dtype, rule)``: not on the other tensors, the order of modules, the device,
the number of processes or the sharding. A tensor takes, in this order, a
user rule (name pattern or module type); the model's own init code run on
fastinit (a transformers model's ``_init_weights``, a custom module's
``reset_parameters``); PyTorch's ``reset_parameters`` rule of a built-in
module; for a buffer, the value of a normal build. See ``docs/scaleout.md``
and ``docs/models.md``.
"""


import contextlib
import fnmatch
import re

from .. import sharding
from .._checks import check_uint64
from .._region import region as region_of
from ..initializers import base as _base
from . import _fast_init, _hf, _regions, _tensor
from ._names import Names
from ._regions import dtensor_region
from ._rules import TORCH_FNS, default_rule, torch_rule

__all__ = ["init_module_", "dtensor_region", "run_own_init", "own_resets", "plan_rest",
           "ruled", "uncovered_error", "entries"]


def _torch():
    import torch
    return torch


# -- rules ----------------------------------------------------------------------------------


def _is_module_type(key):
    torch = _torch()
    return isinstance(key, type) and issubclass(key, torch.nn.Module)


def _rule_list(rules):
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
        out.append((key, value))
    return out


def check_rules_used(module, rule_list, prefix=""):
    """ValueError naming the rules that match no parameter or buffer of ``module`` (a typo
    such as ``"*.q_projj.weight"`` must not pass silently)."""
    used = set()
    for fq, _, mod, local_name, _ in entries(module, prefix):
        for i, rule in enumerate(rule_list):
            if i not in used and _match([rule], fq, mod, local_name) is not None:
                used.add(i)
    unused = [key for i, (key, _) in enumerate(rule_list) if i not in used]
    if unused:
        shown = ", ".join(k.__name__ if isinstance(k, type) else repr(getattr(k, "pattern", k))
                          for k in unused)
        raise ValueError(f"These rules match no parameter or buffer of the module (names "
                         f"are fully qualified, e.g. 'layers.0.attn.q_proj.weight'): "
                         f"{shown}. Received: rules with {len(rule_list)} entries")


def _match(rules, fq_name, module, local_name):
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


def _as_torch_rule(value):
    if isinstance(value, str) and value in TORCH_FNS:
        return value, {}
    if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
            and value[0] in TORCH_FNS and isinstance(value[1], dict)):
        return value
    return None


def _resolve(value, global_shape, seed, layout):
    """``(initializer, layout)`` for a rule value."""
    from ..initializers import get
    rule = _as_torch_rule(value)
    if rule is not None:
        return torch_rule(rule[0], global_shape, seed, **rule[1]), "torch"
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        raise ValueError(f"Unknown torch.nn.init rule {value!r}: expected one of "
                         f"{', '.join(TORCH_FNS)} with a dict of arguments.")
    init = get(value)
    if init is None:
        raise ValueError(f"A rule's initializer must not be None. Received: {value!r}")
    if not isinstance(value, _base.Initializer):  # a name, class or config: the run's seed
        init = init.with_seed(seed) if isinstance(init, _base.Initializer) else init
    return init, layout


# -- the model's own init code ---------------------------------------------------------------


def _own_reset(mod):
    """A ``reset_parameters`` written outside torch (torch's modules have built-in rules)."""
    reset = getattr(type(mod), "reset_parameters", None)
    return callable(reset) and not type(mod).__module__.startswith("torch.")


def run_own_init(module, state, candidates):
    """HF's ``initialize_weights`` (a transformers model) or the custom ``reset_parameters``
    ``candidates`` (children first) under ``state``. Returns ``(touched, bumped)``: the ids
    of the tensors their fills reached, and of those written in place otherwise (the
    autograd version counter moved)."""
    torch = _torch()
    tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    versions = {k: t._version for k, t in tensors.items()}
    with _fast_init.activated(state), torch.no_grad():
        if _hf.is_pretrained(module):
            _hf.clear_flags(module)
            module.initialize_weights()
        else:
            for mod in candidates:
                state.names = Names(module, state.prefix, state.regions)
                state.visit(mod, mod.reset_parameters)
    if _hf.is_pretrained(module):
        _hf.tie(module)  # to_empty unties; HF's init_weights ties after the init
    bumped = {k for k, t in tensors.items() if t._version != versions[k]}
    return state.touched, bumped - state.touched


def own_resets(module):
    """The modules whose ``reset_parameters`` is their own code (not torch's), children first."""
    if _hf.is_pretrained(module):
        return []
    return [m for _, m in _post_order(module) if _own_reset(m)]


# -- init_module_ -----------------------------------------------------------------------------


def _check_regions(regions):
    out = {}
    for fq, (gshape, region) in dict(regions or {}).items():
        global_shape = tuple(gshape)
        index = sharding.to_index(global_shape, region)
        full = tuple(index) + (slice(None),) * (len(global_shape) - len(index))
        if not all(isinstance(s, slice) and s.step in (None, 1) for s in full):
            raise ValueError(f"{fq}: a region of a module tensor is a tuple of slices "
                             f"with step 1. Received: {index!r}")
        out[fq] = (global_shape, tuple(slice(*s.indices(n)) for s, n in zip(full, global_shape)))
    return out


def entries(module, prefix):
    """``(fq, tensor, owner module, local name, is buffer)`` of every distinct tensor."""
    names = Names(module, prefix)
    out = []
    for key, tensor in names.tensors.items():
        owner_name, _, local = names.canonical(key).rpartition(".")
        out.append((prefix + names.canonical(key), tensor, module.get_submodule(owner_name),
                    local, key in names.buffers))
    return out


def init_module_(module, seed, rules=None, *, layout="keras", missing="error", regions=None,
                 prefix="", backend="auto", rebuild=None):
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
        A parameter or buffer that nothing covers: an error naming all of them,
        or left as it is. The error comes before anything is filled unless the
        model's own init code had to run first (it is then raised after it).
    regions : mapping, optional
        ``name -> (global_shape, region)`` for plain tensors that hold a
        region of a larger tensor.
    prefix : str
        Prepended to the names (the module's name inside a larger model).
    backend : {"auto", "numba", "numpy"}
    rebuild : callable, optional
        Builds the module again (its parameters are put on the meta device as
        they are made): buffers nothing else covers take its values. Default
        for a transformers model: its class from its config.

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
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module. Received: {type(module).__name__}")
    seed = check_uint64(seed, "seed", TypeError)
    if layout not in ("keras", "torch"):
        raise ValueError(f"layout must be 'keras' or 'torch'. Received: layout={layout!r}")
    if missing not in ("error", "keep"):
        raise ValueError(f"missing must be 'error' or 'keep'. Received: missing={missing!r}")
    rule_list = _rule_list(rules)
    regions = _check_regions(regions)
    for fq, tensor, *_ in entries(module, prefix):
        if tensor.is_meta:
            raise ValueError(f"{fq} is on the meta device: materialise the module first "
                             "(module.to_empty(device='cpu' or 'cuda')), then call "
                             "init_module_.")
    check_rules_used(module, rule_list, prefix)
    pretrained = _hf.is_pretrained(module)
    own = own_resets(module)
    written = set()
    if pretrained or own:
        state = _fast_init.State(seed, backend=backend, prefix=prefix, regions=regions)
        state.skip = ruled(module, rule_list, prefix)
        written = set().union(*run_own_init(module, state, own))
    if rebuild is None and pretrained:
        rebuild = _hf.rebuilder(module)
    plan, uncovered = plan_rest(module, seed, rule_list, layout, regions, prefix, written,
                                rebuild)
    if uncovered and missing == "error":
        raise uncovered_error(uncovered, bool(pretrained or own))
    _execute(plan, backend)
    return module


def ruled(module, rule_list, prefix=""):
    """The ids of the tensors a user rule covers."""
    return {id(t) for fq, t, mod, local, _ in entries(module, prefix)
            if _match(rule_list, fq, mod, local) is not None}


def uncovered_error(uncovered, ran):
    listed = ", ".join(f"{fq} ({type(mod).__name__})" for fq, _, mod in uncovered)
    done = " (the model's own init code has run)" if ran else ""
    return ValueError("No rule for these parameters/buffers (add rules={pattern or module "
                      "type: initializer}, or missing='keep')" + done + ": " + listed)


def _post_order(module, name=""):
    for child_name, child in module.named_children():
        yield from _post_order(child, f"{name}{child_name}.")
    yield name, module


def plan_rest(module, seed, rule_list, layout, regions, prefix, written, rebuild):
    """What fills each tensor that the model's own init code did not write.

    Returns ``(plan, uncovered)``: ``plan`` holds ``(fq, local tensor, initializer,
    layout, global shape, index, padding row)``, or ``(fq, tensor, value, "copy", None,
    None, None)`` for a buffer taken from the rebuilt module; ``uncovered`` holds
    ``(fq, tensor, module)``.
    """
    torch = _torch()
    plan, uncovered, late = [], [], []
    overrides = {}
    for mod_name, mod in module.named_modules():
        if isinstance(mod, torch.nn.MultiheadAttention) and mod.out_proj.bias is not None:
            overrides[f"{prefix}{mod_name + '.' if mod_name else ''}out_proj.bias"] = \
                ("zeros_", {})
    for fq, tensor, mod, local_name, is_buffer in entries(module, prefix):
        value = _match(rule_list, fq, mod, local_name)
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
            (late if is_buffer and rebuild is not None else uncovered).append(
                (fq, tensor, mod))
            continue
        if _regions.is_dtensor(tensor):
            global_shape, index = dtensor_region(tensor)
            local = tensor.to_local()
        elif fq in regions:
            global_shape, index = regions[fq]
            local = tensor
        else:
            global_shape, index, local = tuple(tensor.shape), None, tensor
        try:
            init, lay = _resolve(value, global_shape, seed, layout)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{fq}: bad rule {value!r}: {exc}") from None
        if index is not None:
            rshape = region_of(global_shape, index).shape
            if tuple(local.shape) != rshape:
                raise ValueError(f"{fq}: the tensor has shape {tuple(local.shape)} but its "
                                 f"region {index} of {global_shape} has shape {rshape}")
        plan.append((fq, local, init, lay, global_shape, index, padding))
    if late:
        with _parameters_on_meta():
            built = dict(rebuild().named_buffers(remove_duplicate=False))
        for fq, tensor, mod in late:
            if fq[len(prefix):] in built:
                plan.append((fq, tensor, built[fq[len(prefix):]], "copy", None, None, None))
            else:
                uncovered.append((fq, tensor, mod))
    return plan, uncovered


def _execute(plan, backend):
    torch = _torch()
    for fq, local, init, lay, global_shape, index, padding in plan:
        if lay == "copy":
            with torch.no_grad():
                local.copy_(init)
            continue
        _tensor.fill(local, init, layout=lay, global_shape=global_shape, index=index,
                     stream=sharding.name_stream(fq), backend=backend)
        if padding is not None:
            _regions.zero_row(local, padding, global_shape, index)


@contextlib.contextmanager
def _parameters_on_meta():
    """Parameters made in this block go to the meta device as they are registered (a
    rebuilt module takes the memory of its buffers only)."""
    torch = _torch()
    nn = torch.nn
    register = nn.Module.register_parameter

    def register_on_meta(self, name, param):
        if param is not None and not param.is_meta:
            param = type(param)(param.to("meta"), requires_grad=param.requires_grad)
        return register(self, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        with _fast_init.paused():
            yield
    finally:
        nn.Module.register_parameter = register
