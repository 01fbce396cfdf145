"""Whole-model initialization for PyTorch: :func:`init_module_` (re-exported by ``fastinit.torch``).

Every parameter and buffer of a ``torch.nn.Module`` is filled in place from
the fastinit stream :func:`fastinit.sharding.name_stream` of its
fully-qualified name (``prefix`` + the name ``module.named_parameters()``
gives it) under one seed. A tensor's values therefore depend only on
``(seed, name, global shape, dtype, rule)``: not on the other parameters, the
order of modules, the device, the number of processes or the sharding.

Default rules (PyTorch's own ``reset_parameters``)
--------------------------------------------------
======================================  ===========================================
module                                  rule
======================================  ===========================================
``Linear`` (and subclasses),            weight ``kaiming_uniform_(a=sqrt(5))``
``Conv*``, ``ConvTranspose*``           (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``);
                                        bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
                                        with ``fan_in`` of the weight
``Bilinear``                            weight and bias ``U(-1/sqrt(in1), 1/sqrt(in1))``
``Embedding``, ``EmbeddingBag``         ``normal_(0, 1)``, row ``padding_idx`` zero
``LayerNorm``, ``RMSNorm``,             weight ones, bias zeros
``GroupNorm``
``BatchNorm*``, ``InstanceNorm*``       weight ones, bias zeros, ``running_mean``
                                        zeros, ``running_var`` ones,
                                        ``num_batches_tracked`` 0
``MultiheadAttention``                  ``in_proj_weight`` (or ``q/k/v_proj_weight``)
                                        ``xavier_uniform_``; ``in_proj_bias`` and
                                        ``out_proj.bias`` zeros; ``bias_k``,
                                        ``bias_v`` ``xavier_normal_``;
                                        ``out_proj.weight`` as ``Linear``
``RNN``, ``LSTM``, ``GRU`` (+ cells)    all ``U(-1/sqrt(hidden), 1/sqrt(hidden))``
``PReLU``                               ``init`` (0.25)
======================================  ===========================================

(``nn.Transformer``'s extra ``xavier_uniform_`` pass over its matrices is
not a default: add ``rules={nn.Transformer: ...}`` or name patterns.)

Rules
-----
``rules`` maps keys to initializers, checked in order before the defaults:

- a ``str``: an ``fnmatch`` pattern over the fully-qualified name
  (``"*.q_proj.weight"``, ``"lm_head.weight"``); a compiled ``re.Pattern``
  is searched in the name;
- a module type (``torch.nn.Linear``): the parameters and buffers of modules
  of that type; the value may be a dict from local name (``"weight"``) to
  initializer.

An initializer is either a PyTorch-style rule, ``("kaiming_normal_",
{"mode": "fan_out"})`` or the bare name of an ``nn.init`` function ending in
``_`` (``"zeros_"``, ``"xavier_uniform_"``, ``"orthogonal_"``...), computed in
PyTorch's ``(out, in, *k)`` layout with PyTorch's formulas (the values equal
``fastinit.torch.<fn>(tensor, seed=seed, stream=name_stream(name))``); or
anything :func:`fastinit.initializers.get` accepts (a Keras-style
initializer, name or config), applied as :func:`fastinit.torch.fill_` does
with ``layout`` (``"keras"``: the tensor is seen as the transposed
``(*k, in, out)`` Keras kernel). A seeded fastinit initializer given by name,
config or class takes the call's ``seed``; an instance keeps its own.

Sharded parameters
------------------
A parameter that is a ``torch.distributed.tensor.DTensor`` is filled through
its local shard (``to_local()``) with exactly the global tensor's values for
that shard: its global region is computed from ``device_mesh`` and
``placements`` (``Shard(d)`` with ``torch.chunk`` semantics, applied over the
mesh dimensions in order; ``Replicate()`` keeps the whole extent). This is
how FSDP2 (``fully_shard``: ``Shard(0)`` over the data-parallel mesh) and
tensor parallelism (``ColwiseParallel``: ``Shard(0)`` of a Linear weight,
``RowwiseParallel``: ``Shard(1)``) lay out parameters, so the sharded model
equals the single-process model. ``_StridedShard`` (FSDP2 over TP on the
same dimension) and ``Partial`` are refused. For hand-made shards that are
plain tensors, pass ``regions={name: (global_shape, region)}`` with
``region`` a tuple of slices or a :class:`fastinit.sharding.ShardSpec`.

Devices
-------
Meta tensors cannot be filled: build on ``device="meta"``, then
``module.to_empty(device=...)``, then call :func:`init_module_`. CPU float
tensors are written in place through a NumPy view (no copy); CUDA float
tensors in place on their GPU by fastinit's CUDA kernels (CuPy needed; the
same values); non-float buffers and other devices are produced in a CPU
buffer and copied (``Tensor.copy_``).
"""

import fnmatch
import math
import re

import numpy as np

from . import _fans, sharding
from .initializers import base as _base

__all__ = ["init_module_", "default_rule", "torch_rule", "dtensor_region"]

_TORCH_FNS = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_",
              "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
              "kaiming_normal_", "orthogonal_", "sparse_")


def _torch():
    import torch
    return torch


class _AbsTruncNormal(_base.SeededInitializer):
    """Truncated normal with absolute bounds (``torch.nn.init.trunc_normal_``), region-aware."""

    def __init__(self, mean=0.0, std=1.0, a=-2.0, b=2.0, seed=None):
        self.mean, self.std, self.a, self.b = float(mean), float(std), float(a), float(b)
        super().__init__(seed)

    def generate(self, request):
        from . import random as fr
        return fr.truncated_normal(request.shape, self.mean, self.std, self.a, self.b,
                                   **request.engine(self.seed))

    def get_config(self):
        return {"mean": self.mean, "std": self.std, "a": self.a, "b": self.b,
                **super().get_config()}


def torch_rule(fn, global_shape, seed, **kwargs):
    """The fastinit initializer that ``torch.nn.init.<fn>(**kwargs)`` amounts to for ``global_shape``.

    Parameters come from the global (unsharded) shape with PyTorch's formulas
    (:func:`fastinit.torch.parameters`); the result is used in PyTorch layout.

    Examples
    --------
    >>> init = torch_rule("kaiming_uniform_", (64, 256), 0, a=math.sqrt(5))
    >>> type(init).__name__, round(init.maxval, 12)       # 1 / sqrt(fan_in)
    ('RandomUniform', 0.0625)
    """
    from . import torch as ft
    from .initializers import (
        Constant, Dirac, Identity, Ones, Orthogonal, RandomNormal, RandomUniform, Sparse, Zeros,
    )
    shape = tuple(global_shape)
    if fn == "uniform_":
        return RandomUniform(kwargs.get("a", 0.0), kwargs.get("b", 1.0), seed=seed)
    if fn == "normal_":
        return RandomNormal(kwargs.get("mean", 0.0), kwargs.get("std", 1.0), seed=seed)
    if fn == "trunc_normal_":
        return _AbsTruncNormal(kwargs.get("mean", 0.0), kwargs.get("std", 1.0),
                               kwargs.get("a", -2.0), kwargs.get("b", 2.0), seed=seed)
    if fn == "constant_":
        return Constant(kwargs["val"])
    if fn == "zeros_":
        return Zeros()
    if fn == "ones_":
        return Ones()
    if fn == "eye_":
        return Identity()
    if fn == "dirac_":
        return Dirac(kwargs.get("groups", 1))
    if fn == "orthogonal_":
        return Orthogonal(kwargs.get("gain", 1.0), seed=seed, column_axis=0)
    if fn == "sparse_":
        return Sparse(kwargs["sparsity"], kwargs.get("std", 0.01), seed=seed)
    if fn in ("xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"):
        if fn.startswith("kaiming") and 0 in shape:
            return Zeros()
        p = ft.parameters(fn, shape, **kwargs)
        if "bound" in p:
            return RandomUniform(-p["bound"], p["bound"], seed=seed)
        return RandomNormal(0.0, p["std"], seed=seed)
    raise ValueError(f"Unknown torch.nn.init function {fn!r}. Expected one of "
                     f"{', '.join(_TORCH_FNS)}. Received: {fn!r}")


def default_rule(module, local_name, global_shapes):
    """PyTorch's ``reset_parameters`` rule for ``module.<local_name>``, as ``(fn, kwargs)``, or None.

    ``global_shapes`` maps the module's local tensor names to their global shapes.
    """
    nn = _torch().nn
    shape = global_shapes.get(local_name)

    def fan_in_bound(weight_name="weight"):
        fan_in = _fans.torch_fans(global_shapes[weight_name])[0]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return ("uniform_", {"a": -bound, "b": bound})

    if isinstance(module, nn.MultiheadAttention):
        if local_name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return ("xavier_uniform_", {})
        if local_name == "in_proj_bias":
            return ("zeros_", {})
        if local_name in ("bias_k", "bias_v"):
            return ("xavier_normal_", {})
        return None
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        if local_name == "weight":
            return ("kaiming_uniform_", {"a": math.sqrt(5)})
        if local_name == "bias":
            return fan_in_bound()
        return None
    if isinstance(module, nn.Bilinear):
        bound = 1 / math.sqrt(global_shapes["weight"][1])
        return ("uniform_", {"a": -bound, "b": bound}) if local_name in ("weight", "bias") \
            else None
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return ("normal_", {}) if local_name == "weight" else None
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return {"weight": ("ones_", {}), "bias": ("zeros_", {}),
                "running_mean": ("zeros_", {}), "running_var": ("ones_", {}),
                "num_batches_tracked": ("zeros_", {})}.get(local_name)
    norms = (nn.LayerNorm, nn.GroupNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
    if isinstance(module, norms):
        return {"weight": ("ones_", {}), "bias": ("zeros_", {})}.get(local_name)
    if isinstance(module, (nn.RNNBase, nn.modules.rnn.RNNCellBase)):
        stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
        return ("uniform_", {"a": -stdv, "b": stdv})
    if isinstance(module, nn.PReLU):
        return ("constant_", {"val": module.init}) if local_name == "weight" else None
    del shape
    return None


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
    if isinstance(value, str) and value in _TORCH_FNS:
        return value, {}
    if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
            and value[0] in _TORCH_FNS and isinstance(value[1], dict)):
        return value
    return None


def _resolve(value, global_shape, seed, layout):
    """``(initializer, layout)`` for a rule value."""
    from .initializers import get
    rule = _as_torch_rule(value)
    if rule is not None:
        return torch_rule(rule[0], global_shape, seed, **rule[1]), "torch"
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        raise ValueError(f"Unknown torch.nn.init rule {value!r}: expected one of "
                         f"{', '.join(_TORCH_FNS)} with a dict of arguments.")
    init = get(value)
    if init is None:
        raise ValueError(f"A rule's initializer must not be None. Received: {value!r}")
    if isinstance(init, _base.SeededInitializer) and not isinstance(value, _base.Initializer):
        init = type(init).from_config({**init.get_config(), "seed": seed})
    return init, layout


# -- filling ---------------------------------------------------------------------------------


def _fill(tensor, init, layout, global_shape, index, stream, backend, padding_row=None):
    """Fill ``tensor`` (the local part) with region ``index`` of the global tensor."""
    from . import torch as ft
    torch = _torch()
    ndim = len(global_shape)
    full = index if index is not None else tuple(slice(0, n) for n in global_shape)
    kshape, kindex = global_shape, full
    perm = None
    if layout == "keras" and ndim >= 2:
        perm = tuple(range(2, ndim)) + (1, 0)
        kshape = tuple(global_shape[p] for p in perm)
        kindex = tuple(full[p] for p in perm)
    kw = {"stream": stream, "backend": backend} if isinstance(init, _base.Initializer) else {}
    name = str(tensor.dtype).replace("torch.", "")
    if tensor.device.type == "cpu" and name in ft._DTYPES:
        view = ft._view(tensor)
        ptr = tensor.data_ptr()
        if view.size:
            out = view.transpose(perm) if perm is not None else view
            _base.call_initializer(init, kshape, out.dtype, out=out, index=kindex, **kw)
        if tensor.data_ptr() != ptr:  # pragma: no cover
            raise RuntimeError("The tensor was reallocated while filling it")
        ft.bump_version(tensor)
    elif tensor.device.type == "cuda" and name in ft._DTYPES:
        if tensor.numel():
            out = tensor.detach()
            out = out.permute(perm) if perm is not None else out
            _base.call_initializer(init, kshape, out=out, index=kindex, **kw)
            ft.bump_version(tensor)
    else:
        if name == "bfloat16":
            import ml_dtypes
            np_dtype = np.dtype(ml_dtypes.bfloat16)
        else:
            np_dtype = torch.empty((), dtype=tensor.dtype).numpy().dtype
        values = _base.call_initializer(init, kshape, np_dtype, index=kindex, **kw)
        if perm is not None:
            values = values.transpose(np.argsort(perm))
        values = np.array(values, order="C", copy=True)
        if name == "bfloat16":
            src = torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
        else:
            src = torch.from_numpy(values)
        with torch.no_grad():
            tensor.copy_(src)
    if padding_row is not None:
        row = padding_row % global_shape[0]
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
    seed = _base.check_uint64(seed, "seed", TypeError)
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
    from ._region import region as _region_of
    for fq, local, init, lay, global_shape, index, padding in plan:
        if index is not None:
            full = tuple(index) + (slice(None),) * (len(global_shape) - len(index))
            if not all(isinstance(s, slice) and s.step in (None, 1) for s in full):
                raise ValueError(f"{fq}: a region of a module tensor is a tuple of slices "
                                 f"with step 1. Received: {index!r}")
            full = tuple(slice(*s.indices(n)) for s, n in zip(full, global_shape))
            rshape = _region_of(global_shape, full).shape
            if tuple(local.shape) != rshape:
                raise ValueError(f"{fq}: the tensor has shape {tuple(local.shape)} but its "
                                 f"region {full} of {global_shape} has shape {rshape}")
            index = full
        _fill(local, init, lay, global_shape, index, sharding.name_stream(fq), backend, padding)
    return module
