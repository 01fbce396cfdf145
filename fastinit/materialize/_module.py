"""Random-weight checkpoints of torch models: :func:`materialize_module`.

The model's init (what :func:`fastinit.torch.init_module_` does) runs on the
meta device in a recording session: every write of a tensor becomes a typed
operation (``fastinit.torch._plan``: an initializer, or a value a transformers
``copy_`` gives), and each saved tensor is written chunk by chunk from its
operations by the checkpoint writer (``_commit``), so the model is never
allocated. A model whose init cannot be recorded (in-place arithmetic, values
computed from its own meta tensors) is initialised live instead. The files,
and what ``from_pretrained`` does with them, are described in ``docs/models.md``.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from typing import TYPE_CHECKING, Literal, SupportsIndex, overload

import numpy as np

from .. import sharding
from ..initializers.base import Initializer
from ..initializers.constant import Zeros
from ..torch import _hf, _module, _names, _tensor
from ..torch._plan import Planned, as_numpy
from ..torch._recording import RecordingSession
from ._commit import check_flags, chunk_size, write_safetensors
from ._lock import check_timeout
from ._staging import check_out_dir

if TYPE_CHECKING:
    import torch

    from .._typing import Array, Backend, Layout, Rules, StrPath
    from ..initializers.base import Request
    from ..torch._module import RuleList
    from ..torch._plan import Op
    from ._plan import Plan
    from ._spec import TensorSpec

    #: ``mode=`` of :func:`materialize_module`.
    Mode = Literal["auto", "plan", "live"]

__all__ = ["materialize_module", "DEFAULT_CHUNK_BYTES", "Planned"]

DEFAULT_CHUNK_BYTES = 32 << 20
MODES = ("auto", "plan", "live")


def _record(module: torch.nn.Module, seed: int, rules: RuleList, layout: Layout
            ) -> tuple[dict[int, tuple[Op, ...]], dict[str, str]]:
    """Run the init in a recording session; ``(operations by tensor id, unrecordable names)``."""
    session = RecordingSession(seed, skip=_module.ruled(module, rules))
    touched, bumped = _module.run_own_init(module, session, _module.own_resets(module)) \
        if _hf.is_pretrained(module) or _module.own_resets(module) else (set(), set())
    names = _names.Names(module)
    unrecordable: dict[str, str] = {}
    for key, why in session.unrecordable.items():
        label = names.canonical(key) if isinstance(key, int) and key in names.aliases else key
        unrecordable[str(label)] = why
    for key in bumped:
        if key in names.aliases:
            unrecordable[names.canonical(key)] = "written in place outside the init functions"
    ops = {k: tuple(v) for k, v in session.plan.items()}
    rebuild = _hf.rebuilder(module) if _hf.is_pretrained(module) else None
    plans, uncovered = _module.plan_rest(module, seed, rules, layout, {}, "",
                                         touched | bumped, rebuild)
    if uncovered:
        raise _module.uncovered_error(uncovered, True, rebuild is not None)
    for plan in plans:
        ops[id(plan.tensor)] = plan.ops
    return ops, unrecordable


def _saved(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``name -> tensor`` of the checkpoint: save_pretrained's keys for a transformers
    model, else the state dict with each shared tensor once."""
    tensors: dict[str, torch.Tensor] = dict(module.named_parameters(remove_duplicate=False))
    tensors.update(module.named_buffers(remove_duplicate=False))
    if _hf.is_pretrained(module):
        return {name: tensors[name] for name in _hf.saved_keys(module)}
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
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

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def generate(self, request: Request) -> Array:
        return request.write(as_numpy(self.tensor)[request.index or ()])


# torch.__future__'s swap flag is process-wide; threads materialising models at once
# take turns at setting it, converting and restoring it.
_SWAP_LOCK = threading.Lock()


def _live(module: torch.nn.Module, seed: int, rules: Rules | None, layout: Layout,
          backend: Backend) -> torch.nn.Module:
    """The model, materialised on the CPU and initialised by ``init_module_``."""
    import torch
    from ..torch import init_module_
    meta = any(t.is_meta for t in list(module.parameters()) + list(module.buffers()))
    if meta:
        module = copy.deepcopy(module)
        with _SWAP_LOCK:  # the flag is the process's: one thread's set / to_empty / restore
            swap = torch.__future__.get_swap_module_params_on_conversion()
            torch.__future__.set_swap_module_params_on_conversion(True)  # keeps tied weights tied
            try:
                module.to_empty(device="cpu")
            finally:
                torch.__future__.set_swap_module_params_on_conversion(swap)
    init_module_(module, seed, rules, layout=layout, backend=backend)
    return module


@overload
def materialize_module(module: torch.nn.Module, out_dir: StrPath, seed: SupportsIndex = 0, *,
                       rules: Rules | None = None, layout: Layout = "keras", mode: Mode = "auto",
                       max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                       backend: Backend = "auto", progress: bool | None = None,
                       check_space: bool = True, write_config: bool = True,
                       lock_timeout: float | None = 0.0,
                       dry_run: Literal[False] = False) -> list[str]: ...


@overload
def materialize_module(module: torch.nn.Module, out_dir: StrPath, seed: SupportsIndex = 0, *,
                       rules: Rules | None = None, layout: Layout = "keras", mode: Mode = "auto",
                       max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                       backend: Backend = "auto", progress: bool | None = None,
                       check_space: bool = True, write_config: bool = True,
                       lock_timeout: float | None = 0.0, dry_run: Literal[True]) -> Plan: ...


@overload
def materialize_module(module: torch.nn.Module, out_dir: StrPath, seed: SupportsIndex = 0, *,
                       rules: Rules | None = None, layout: Layout = "keras", mode: Mode = "auto",
                       max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                       backend: Backend = "auto", progress: bool | None = None,
                       check_space: bool = True, write_config: bool = True,
                       lock_timeout: float | None = 0.0,
                       dry_run: bool = False) -> list[str] | Plan: ...


def materialize_module(module: torch.nn.Module, out_dir: StrPath, seed: SupportsIndex = 0, *,
                       rules: Rules | None = None, layout: Layout = "keras", mode: Mode = "auto",
                       max_shard_size: int | str | None = None,
                       chunk_bytes: int = DEFAULT_CHUNK_BYTES, backend: Backend = "auto",
                       progress: bool | None = None, check_space: bool = True,
                       write_config: bool = True, lock_timeout: float | None = 0.0,
                       dry_run: bool = False) -> list[str] | Plan:
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
        The paths written, the commit file (index or single file) last (a ``Plan``
        for ``dry_run``).
    """
    from .. import backends
    from .._checks import check_flag, check_uint64
    from .._units import parse_bytes
    import torch
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"Expected a torch.nn.Module. Received: {type(module).__name__}")
    seed = check_uint64(seed, "seed", TypeError)
    # every argument before the model is initialised or anything is written
    check_out_dir(out_dir)
    chunk_bytes = chunk_size(chunk_bytes)
    check_timeout(lock_timeout)
    check_flags(progress, check_space, dry_run)
    check_flag(write_config, "write_config")
    backends.check_name(backend)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    shard_bytes = None if max_shard_size is None else parse_bytes(max_shard_size,
                                                                   "max_shard_size")
    rule_list = _module.rule_list(rules)
    _module.check_rules_used(module, rule_list)
    meta = all(t.is_meta for t in list(module.parameters()) + list(module.buffers()))
    tensors: list[TensorSpec] | None = None
    why: dict[str, str] = {}
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
    extra: list[tuple[str, str]] = []
    if write_config and _hf.is_pretrained(module):
        dtype = next((t.dtype for t in module.parameters()), torch.float32)
        extra = _config_files(module, dtype)
    return write_safetensors(out_dir, tensors, metadata, max_shard_size=shard_bytes,
                             chunk_bytes=chunk_bytes, backend=backend, progress=progress,
                             check_space=check_space, extra=extra, lock_timeout=lock_timeout,
                             dry_run=dry_run)


def _spec(name: str, tensor: torch.Tensor, init: Initializer, names: _names.Names
          ) -> TensorSpec:
    from ._spec import TensorSpec
    stream = sharding.name_stream(names.canonical(id(tensor))) if tensor in names else 0
    return TensorSpec(name, tuple(tensor.shape), np.dtype(_tensor.numpy_dtype(tensor)), init,
                      stream)


def _config_files(module: torch.nn.Module, dtype: torch.dtype) -> list[tuple[str, str]]:
    """``(name, text)`` of the config files (written to a temporary directory by
    transformers, then by the commit into its staging directory)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        names = _hf.save_config(module, tmp, dtype)
        texts: dict[str, str] = {}
        for n in names:
            with open(os.path.join(tmp, n), encoding="utf-8") as f:
                texts[n] = f.read()
    json.loads(texts["config.json"])  # written by transformers: a JSON document
    return [(n, texts[n]) for n in names]
