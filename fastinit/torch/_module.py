"""Whole-model initialization for PyTorch: :func:`init_module_` (``fastinit.torch.init_module_``).

Every parameter and buffer of a ``torch.nn.Module`` is filled in place from
the stream :func:`fastinit.sharding.name_stream` of its fully-qualified name
under one seed, so its values depend only on ``(seed, name, global shape,
dtype, rule)``: not on the other tensors, the order of modules, the device,
the number of processes or the sharding. The rules (PyTorch's own
``reset_parameters`` by default, user rules by name pattern or module type),
DTensor shards and devices are described in ``docs/scaleout.md``.
"""


import fnmatch
import re

from .. import sharding
from .._checks import check_uint64
from .._region import region as region_of
from ..initializers import base as _base
from . import _tensor
from ._rules import TORCH_FNS, default_rule, torch_rule

__all__ = ["init_module_", "dtensor_region"]


def _torch():
    import torch
    return torch


# -- regions of sharded tensors ----------------------------------------------------------


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return None
    return DTensor


def dtensor_region(tensor):
    """``(global_shape, index)`` of a DTensor's local shard: the slices of the global tensor it holds.

    ``Shard(d)`` placements split dimension ``d`` with ``torch.chunk``
    semantics, in the order of the mesh dimensions; ``Replicate()`` keeps it.
    """
    shape = tuple(tensor.shape)
    ndim = len(shape)
    starts, stops = [0] * ndim, list(shape)
    mesh = tensor.device_mesh
    coord = mesh.get_coordinate()
    if coord is None:
        raise ValueError("This rank is not part of the DTensor's device mesh; it holds no shard.")
    for mesh_dim, placement in enumerate(tensor.placements):
        kind = type(placement).__name__
        if kind == "Replicate":
            continue
        if kind != "Shard":
            raise NotImplementedError(
                f"fastinit fills DTensors with Shard and Replicate placements only. "
                f"Received: placements={tensor.placements}")
        d = placement.dim % ndim
        s, e = sharding.shard_bounds(stops[d] - starts[d], mesh.size(mesh_dim), coord[mesh_dim])
        starts[d], stops[d] = starts[d] + s, starts[d] + e
    local_shape = tuple(b - a for a, b in zip(starts, stops))
    actual = tuple(tensor.to_local().shape)
    if actual != local_shape:
        raise ValueError(f"The local shard has shape {actual}, but its placements give "
                         f"{local_shape} (uneven or padded sharding is not supported). "
                         f"Received: global shape {shape}, placements={tensor.placements}")
    return shape, tuple(slice(a, b) for a, b in zip(starts, stops))


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


# -- filling ---------------------------------------------------------------------------------


def _fill(tensor, init, layout, global_shape, index, stream, backend, padding_row=None):
    """Fill ``tensor`` (the local part) with region ``index`` of the global tensor."""
    torch = _torch()
    _tensor.fill(tensor, init, layout=layout, global_shape=global_shape, index=index,
                 stream=stream, backend=backend)
    if padding_row is not None:
        row = padding_row % global_shape[0]
        full = index if index is not None else (slice(0, global_shape[0]),)
        start = full[0].start if isinstance(full[0], slice) else 0
        stop = full[0].stop if isinstance(full[0], slice) else global_shape[0]
        if start <= row < stop:
            with torch.no_grad():
                tensor[row - start].fill_(0)


def init_module_(module, seed, rules=None, *, layout="keras", missing="error", regions=None,
                 prefix="", backend="auto"):
    """Fill every parameter and buffer of ``module`` in place (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
    seed : int
        In ``[0, 2**64)``; one seed for the whole model.
    rules : mapping or list of (key, initializer), optional
        Name patterns or module types to initializers, checked in order before
        the defaults.
    layout : {"keras", "torch"}
        How a Keras-style initializer in ``rules`` sees a weight (as
        :func:`fastinit.torch.fill_`). PyTorch-style rules always use PyTorch's layout.
    missing : {"error", "keep"}
        A parameter or buffer that no rule covers: an error naming all of them
        (nothing is filled), or left as it is.
    regions : mapping, optional
        ``name -> (global_shape, region)`` for plain tensors that hold a
        region of a larger tensor.
    prefix : str
        Prepended to the names (the module's name inside a larger model).
    backend : {"auto", "numba", "numpy"}

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
    regions = dict(regions or {})
    DTensor = _dtensor_type()
    plan, uncovered, seen = [], [], set()
    overrides = {}
    for mod_name, mod in module.named_modules():
        base_name = prefix + (mod_name + "." if mod_name else "")
        if isinstance(mod, torch.nn.MultiheadAttention) and mod.out_proj.bias is not None:
            overrides[f"{base_name}out_proj.bias"] = ("zeros_", {})
        tensors = [(n, t) for n, t in list(mod._parameters.items()) + list(mod._buffers.items())
                   if t is not None]
        global_shapes = {n: tuple(t.shape) for n, t in tensors}
        for local_name, tensor in tensors:
            fq = base_name + local_name
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            value = _match(rule_list, fq, mod, local_name)
            padding = None
            if value is None:
                value = overrides.get(fq) or default_rule(mod, local_name, global_shapes)
                if value is not None and isinstance(mod, (torch.nn.Embedding,
                                                          torch.nn.EmbeddingBag)):
                    padding = mod.padding_idx
            if value is None:
                uncovered.append(f"{fq} ({type(mod).__name__})")
                continue
            if tensor.is_meta:
                raise ValueError(f"{fq} is on the meta device: materialise the module first "
                                 "(module.to_empty(device='cpu' or 'cuda')), then call "
                                 "init_module_.")
            if DTensor is not None and isinstance(tensor, DTensor):
                global_shape, index = dtensor_region(tensor)
                local = tensor.to_local()
            elif fq in regions:
                gshape, region = regions[fq]
                global_shape = tuple(gshape)
                index = sharding.to_index(global_shape, region)
                local = tensor
            else:
                global_shape, index, local = tuple(tensor.shape), None, tensor
            try:
                init, lay = _resolve(value, global_shape, seed, layout)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{fq}: bad rule {value!r}: {exc}") from None
            plan.append((fq, local, init, lay, global_shape, index, padding))
    if uncovered and missing == "error":
        raise ValueError("No rule for these parameters/buffers (add rules={pattern or module "
                         "type: initializer}, or missing='keep'): " + ", ".join(uncovered))
    for fq, local, init, lay, global_shape, index, padding in plan:
        if index is not None:
            full = tuple(index) + (slice(None),) * (len(global_shape) - len(index))
            if not all(isinstance(s, slice) and s.step in (None, 1) for s in full):
                raise ValueError(f"{fq}: a region of a module tensor is a tuple of slices "
                                 f"with step 1. Received: {index!r}")
            full = tuple(slice(*s.indices(n)) for s, n in zip(full, global_shape))
            rshape = region_of(global_shape, full).shape
            if tuple(local.shape) != rshape:
                raise ValueError(f"{fq}: the tensor has shape {tuple(local.shape)} but its "
                                 f"region {full} of {global_shape} has shape {rshape}")
            index = full
        _fill(local, init, lay, global_shape, index, sharding.name_stream(fq), backend, padding)
    return module
