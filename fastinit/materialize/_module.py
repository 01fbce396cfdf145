"""Random-weight checkpoints of torch models: :func:`materialize_module`.

The model's init (what :func:`fastinit.torch.init_module_` does) runs on the
meta device in *record* mode: every fill of a tensor becomes an operation
(an initializer, or a value a transformers ``copy_`` gives), and each saved
tensor is written chunk by chunk from its operations by the checkpoint writer
(``_commit``), so the model is never allocated. A model whose init cannot be
recorded (in-place arithmetic, values computed from its own meta tensors) is
initialised live instead. The files, and what ``from_pretrained`` does with
them, are described in ``docs/models.md``.
"""

import copy
import json
import os

import numpy as np

from .. import sharding
from ..initializers.base import Initializer, call_initializer
from ..initializers.constant import Zeros
from ..torch import _fast_init, _hf, _module, _names, _tensor
from ._commit import write_safetensors

__all__ = ["materialize_module", "DEFAULT_CHUNK_BYTES"]

DEFAULT_CHUNK_BYTES = 32 << 20
MODES = ("auto", "plan", "live")


def _dims(index, shape):
    """Per axis of ``shape``: ``(start, stop, kept)`` of an index of ints and step-1 slices."""
    index = tuple(index or ()) + (slice(None),) * (len(shape) - len(index or ()))
    out = []
    for item, n in zip(index, shape):
        if isinstance(item, slice):
            a, b, _ = item.indices(n)
            out.append((a, b, True))
        else:
            out.append((int(item), int(item) + 1, False))
    return out


def _as_numpy(value):
    torch = _tensor._torch()
    if value.dtype == torch.bfloat16:
        from .._dtypes import bfloat16
        return value.view(torch.int16).numpy().view(bfloat16())
    return value.numpy()


class Planned(Initializer):
    """The values a tensor's recorded operations give, as a region-capable initializer.

    ``ops`` are ``("init", initializer, index, layout)`` or ``("value", tensor, index)``,
    in the order the init ran them; the last one over the whole tensor and every later
    one count. A region (``index=``) is computed from the ops' intersections with it.
    """

    dtype_kind = "any"

    def __init__(self, ops):
        last = max((i for i, op in enumerate(ops) if op[2] is None), default=None)
        if last is None:
            raise ValueError("no operation covers the whole tensor")
        self.ops = list(ops[last:])

    @property
    def elementwise(self):
        return all(op[0] == "value" or sharding.is_elementwise(op[1]) for op in self.ops)

    def generate(self, request):
        shape = request.shape
        out = request.out if request.out is not None else np.empty(request.region.shape,
                                                                   request.dtype)
        want = _dims(request.index, shape)
        for op in self.ops:
            have = _dims(op[2], shape)
            inter = [(max(a, c), min(b, d)) for (a, b, _), (c, d, _) in zip(want, have)]
            if any(lo >= hi for lo, hi in inter):
                continue
            dst = tuple(slice(lo - a, hi - a) for (lo, hi), (a, _, kept) in zip(inter, want)
                        if kept)
            sub = tuple(slice(lo, hi) if kept else lo
                        for (lo, hi), (_, _, kept) in zip(inter, want))
            if op[0] == "init":
                _, init, _, layout = op
                target = out[dst + (Ellipsis,)]  # a view, also of a 0-d output
                gshape = shape
                if layout == "keras" and len(shape) >= 2:
                    perm = _tensor.keras_permutation(len(shape))
                    gshape = tuple(shape[p] for p in perm)
                    sub = tuple(sub[p] for p in perm)
                    kept = [k for *_, k in want]
                    target = target.transpose([sum(kept[:p]) for p in perm if kept[p]])
                call_initializer(init, gshape, request.dtype, out=target, index=sub,
                                 stream=request.stream, backend=request.backend)
            else:
                full = _as_numpy(op[1])
                rel = tuple(slice(lo - c, hi - c) if kept else lo - c
                            for (lo, hi), (_, _, kept), (c, _, kept_op)
                            in zip(inter, want, have) if kept_op)
                out[dst] = full[rel]
        return out


def _record(module, seed, rule_list, layout):
    """Run the init in record mode; ``(ops by tensor id, unrecordable names)``."""
    state = _fast_init.State(seed, mode="record")
    state.skip = _module.ruled(module, rule_list)
    touched, bumped = _module.run_own_init(module, state, _module.own_resets(module)) \
        if _hf.is_pretrained(module) or _module.own_resets(module) else (set(), set())
    names = _names.Names(module)
    unrecordable = {}
    for key, why in state.unrecordable.items():
        label = names.canonical(key) if isinstance(key, int) and key in names.aliases else key
        unrecordable[str(label)] = why
    for key in bumped:
        if key in names.aliases:
            unrecordable[names.canonical(key)] = "written in place outside the init functions"
    ops = {k: [(op[0], op[1], op[2], "torch") if op[0] == "init" else op for op in v]
           for k, v in state.plan.items()}
    rebuild = _hf.rebuilder(module) if _hf.is_pretrained(module) else None
    plan, uncovered = _module.plan_rest(module, seed, rule_list, layout, {}, "",
                                        touched | bumped, rebuild)
    if uncovered:
        raise _module.uncovered_error(uncovered, True)
    for fq, tensor, init, lay, _, _, padding in plan:
        if lay == "copy":
            ops[id(tensor)] = [("value", init.to(tensor.dtype), None)]
            continue
        ops[id(tensor)] = [("init", init, None, lay)]
        if padding is not None:
            ops[id(tensor)].append(("init", Zeros(), (padding % tensor.shape[0],), "torch"))
    return ops, unrecordable


def _saved(module):
    """``name -> tensor`` of the checkpoint: save_pretrained's keys for a transformers
    model, else the state dict with each shared tensor once."""
    tensors = dict(module.named_parameters(remove_duplicate=False))
    tensors.update(module.named_buffers(remove_duplicate=False))
    if _hf.is_pretrained(module):
        return {name: tensors[name] for name in _hf.saved_keys(module)}
    out, seen = {}, set()
    for name in module.state_dict(keep_vars=True):
        tensor = tensors[name]
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out[name] = tensor
    return out


class _FromTensor(Initializer):
    """Regions of a CPU tensor (the live mode's values)."""

    dtype_kind = "any"
    elementwise = True

    def __init__(self, tensor):
        self.tensor = tensor

    def generate(self, request):
        return request.write(_as_numpy(self.tensor.detach())[request.index or ()])


def _live(module, seed, rules, layout, backend):
    """The model, materialised on the CPU and initialised by ``init_module_``."""
    torch = _tensor._torch()
    from ..torch import init_module_
    meta = any(t.is_meta for t in list(module.parameters()) + list(module.buffers()))
    if meta:
        module = copy.deepcopy(module)
        swap = torch.__future__.get_swap_module_params_on_conversion()
        torch.__future__.set_swap_module_params_on_conversion(True)  # keeps tied weights tied
        try:
            module.to_empty(device="cpu")
        finally:
            torch.__future__.set_swap_module_params_on_conversion(swap)
    init_module_(module, seed, rules, layout=layout, backend=backend)
    return module


def materialize_module(module, out_dir, seed=0, *, rules=None, layout="keras", mode="auto",
                       max_shard_size=None, chunk_bytes=DEFAULT_CHUNK_BYTES, backend="auto",
                       progress=None, check_space=True, write_config=True, lock_timeout=0.0,
                       dry_run=False):
    """Write the checkpoint of ``module`` initialised as ``init_module_(module, seed, rules)``.

    Parameters
    ----------
    module : torch.nn.Module
        Built on the meta device (``with torch.device("meta"): model = ...``):
        it is never allocated. (A model with real tensors is initialised in
        place by ``init_module_`` and written.) A transformers
        ``PreTrainedModel`` gives the files ``save_pretrained`` would
        (safetensors, index, ``config.json``, ``generation_config.json``),
        which ``from_pretrained`` loads.
    out_dir : path
    seed : int
    rules, layout
        As for :func:`fastinit.torch.init_module_`.
    mode : {"auto", "plan", "live"}
        ``"plan"``: record the init, write chunk by chunk (an error if the init
        cannot be recorded); ``"live"``: allocate the model on the CPU and run
        ``init_module_`` (memory of the whole model); ``"auto"``: plan, else live.
    max_shard_size : int or str, optional
        Bytes of tensor data per file (``"5GB"``); default one file.
    chunk_bytes, backend, progress, check_space, lock_timeout, dry_run
        As for :func:`fastinit.materialize.materialize`.
    write_config : bool
        Write the transformers config files.

    Returns
    -------
    list of str
        The paths written, the commit file (index or single file) last.
    """
    from .._checks import check_uint64
    from .._units import parse_bytes
    torch = _tensor._torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module. Received: {type(module).__name__}")
    seed = check_uint64(seed, "seed", TypeError)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if max_shard_size is not None:
        max_shard_size = parse_bytes(max_shard_size, "max_shard_size")
    rule_list = _module._rule_list(rules)
    _module.check_rules_used(module, rule_list)
    meta = all(t.is_meta for t in list(module.parameters()) + list(module.buffers()))
    tensors, why = None, {}
    if mode != "live" and meta:
        ops, why = _record(module, seed, rule_list, layout)
        if why and mode == "plan":
            raise ValueError("The init of these tensors cannot be recorded (use mode='live' "
                             "or 'auto'): " + ", ".join(f"{k} ({v})" for k, v in why.items()))
        if not why:
            names = _names.Names(module)
            tensors = [_spec(name, t, Planned(ops[id(t)]), names) for name, t in
                       _saved(module).items()]
    elif mode == "plan":
        raise ValueError("mode='plan' needs a model on the meta device")
    source = module
    if tensors is None and dry_run:  # the plan of a live run, without allocating the model
        import warnings
        names = _names.Names(module)
        tensors = [_spec(name, t, Zeros(), names) for name, t in _saved(module).items()]
        warnings.warn("The init cannot be recorded: the run would initialise the model in "
                      f"memory (about {sum(t.nbytes for t in tensors) / 2**30:.2f} GiB).",
                      RuntimeWarning, stacklevel=2)
    if tensors is None:
        source = _live(module, seed, rules, layout, backend)
        names = _names.Names(source)
        tensors = [_spec(name, t, _FromTensor(t), names) for name, t in _saved(source).items()]
    from .. import STREAM_VERSION
    metadata = {"format": "pt", "fastinit_seed": seed, "fastinit_stream_version": STREAM_VERSION,
                "fastinit_mode": "plan" if source is module and meta else "live"}
    extra = []
    if write_config and _hf.is_pretrained(module):
        dtype = next((t.dtype for t in module.parameters()), torch.float32)
        extra = _config_files(module, dtype)
    return write_safetensors(out_dir, tensors, metadata, max_shard_size=max_shard_size,
                             chunk_bytes=chunk_bytes, backend=backend, progress=progress,
                             check_space=check_space, extra=extra, lock_timeout=lock_timeout,
                             dry_run=dry_run)


def _spec(name, tensor, init, names):
    from ._spec import TensorSpec
    stream = sharding.name_stream(names.canonical(id(tensor))) if tensor in names else 0
    return TensorSpec(name, tuple(tensor.shape), np.dtype(_tensor.numpy_dtype(tensor)), init,
                      stream)


def _config_files(module, dtype):
    """``(name, text)`` of the config files (written to a temporary directory by
    transformers, then by the commit into its staging directory)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        names = _hf.save_config(module, tmp, dtype)
        texts = {}
        for n in names:
            with open(os.path.join(tmp, n), encoding="utf-8") as f:
                texts[n] = f.read()
    json.loads(texts["config.json"])  # written by transformers: a JSON document
    return [(n, texts[n]) for n in names]
