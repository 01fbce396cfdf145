"""Hugging Face transformers specifics: the only module of fastinit that imports transformers.

Nothing here imports transformers unless it is already imported (or a function
is handed a transformers model or config). It provides the supported range of
releases, the models under construction in this thread, the per-model hooks
that run a model's own ``initialize_weights`` under a fastinit session (set on
the model instances being initialised, never on transformers' classes), the
flags and tying rules of ``PreTrainedModel``, the buffers of a normally built
model, the keys ``save_pretrained`` writes and the model of a ``config.json``.
The behaviour is described in ``docs/models.md``.

transformers names relied on (all present from 5.0.0 to 5.25.0):
``transformers.initialization`` (its ``orthogonal_``), ``PreTrainedModel`` with
``initialize_weights``, ``_initialize_weights``, ``_auto_class``,
``all_tied_weights_keys``, ``tie_weights(recompute_mapping=)``,
``_keys_to_ignore_on_save`` and ``_from_config``, the ``_is_hf_initialized`` flags,
and ``modeling_utils.remove_tied_weights_from_state_dict``.
"""

from __future__ import annotations

import functools
import re
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from transformers import PretrainedConfig, PreTrainedModel   # not followed: Any

    from .._typing import StrPath

    #: ``on_initialize(model, run)`` and ``on_visit(model, module, run)`` of :func:`hook`.
    OnInitialize = Callable[[PreTrainedModel, Callable[[], Any]], Any]
    OnVisit = Callable[[PreTrainedModel, torch.nn.Module, Callable[[], Any]], Any]

__all__ = ["SUPPORTED", "loaded", "is_pretrained", "require_supported", "constructing",
           "outer_under_construction", "hook", "unhook", "redirected_temporary",
           "clear_flags", "tie", "rebuilder", "saved_keys", "save_config",
           "model_from_config", "INIT_MODULE"]

INIT_MODULE = "transformers.initialization"
_MODELING = "transformers.modeling_utils"
#: The transformers releases fastinit.torch supports: (oldest, first unsupported).
SUPPORTED = ((5, 0, 0), (6, 0, 0))
_CHECKED: list[str] = []


def loaded() -> bool:
    """True when transformers' model code is imported (fastinit never imports it itself)."""
    return _MODELING in sys.modules


def _pretrained() -> type[PreTrainedModel] | None:
    mod = sys.modules.get(_MODELING)
    return None if mod is None else getattr(mod, "PreTrainedModel", None)


def require_supported() -> None:
    """RuntimeError naming the installed release unless it is in :data:`SUPPORTED`."""
    if _CHECKED:
        return
    import transformers
    version = str(getattr(transformers, "__version__", "0"))
    numbers = tuple(int(m.group()) if m else 0 for m in
                    (re.match(r"\d+", part) for part in (version.split(".") + ["0"] * 3)[:3]))
    low, high = SUPPORTED
    if not low <= numbers < high or INIT_MODULE not in sys.modules:
        raise RuntimeError(
            f"fastinit.torch runs transformers models with transformers "
            f"{'.'.join(map(str, low))} up to (not including) {'.'.join(map(str, high))}; "
            f"this is transformers {version}. Install a supported release: "
            f"pip install 'transformers>={low[0]},<{high[0]}'. "
            f"Received: transformers {version}")
    _CHECKED.append(version)


def is_pretrained(module: object) -> bool:
    """True for a transformers ``PreTrainedModel`` (of a supported release, else RuntimeError)."""
    cls = _pretrained()
    if cls is None or not isinstance(module, cls):
        return False
    require_supported()
    return True


def constructing() -> list[PreTrainedModel]:
    """The ``PreTrainedModel`` instances whose ``__init__`` runs in this thread, outermost first."""
    base = _pretrained()
    if base is None:
        return []
    frame: types.FrameType | None = sys._getframe(1)
    found: list[PreTrainedModel] = []
    while frame is not None:
        if frame.f_code.co_name == "__init__":
            obj = frame.f_locals.get("self")
            if isinstance(obj, base) and not any(obj is f for f in found):
                found.append(obj)
        frame = frame.f_back
    return found[::-1]


def outer_under_construction(model: PreTrainedModel) -> PreTrainedModel | None:
    """The outermost ``PreTrainedModel`` other than ``model`` whose ``__init__`` is running
    in this thread, or None. (A nested model's ``post_init`` runs inside its parent's
    ``__init__``; the parent initialises the whole tree, under its own names.)"""
    return next((obj for obj in constructing() if obj is not model), None)


_HOOKS = ("initialize_weights", "_initialize_weights")


def hook(model: PreTrainedModel, on_initialize: OnInitialize, on_visit: OnVisit) -> bool:
    """Route ``model``'s own init through a session: ``model.initialize_weights()`` calls
    ``on_initialize(model, run)`` and ``model._initialize_weights(module, ...)`` calls
    ``on_visit(model, module, run)``, ``run()`` being transformers' method. The hooks are
    methods bound to this instance only (its class is untouched; a deep copy of the model
    gets them bound to the copy); False if already hooked."""
    if _HOOKS[0] in model.__dict__:
        return False
    require_supported()
    model.__dict__[_HOOKS[0]] = types.MethodType(functools.partial(_initialize, on_initialize),
                                                 model)
    model.__dict__[_HOOKS[1]] = types.MethodType(functools.partial(_visit, on_visit), model)
    return True


def _initialize(on_initialize: OnInitialize, model: PreTrainedModel) -> Any:
    return on_initialize(model, lambda: type(model).initialize_weights(model))


def _visit(on_visit: OnVisit, model: PreTrainedModel, module: torch.nn.Module, *args: Any,
           **kwargs: Any) -> Any:
    fixed = _custom_code_flag(model)
    if args and fixed is not None:  # HF's is_custom_code of the class, FSDP2 or not
        args = (fixed,) + args[1:]
    return on_visit(model, module,
                    lambda: type(model)._initialize_weights(model, module, *args, **kwargs))


def unhook(model: PreTrainedModel) -> None:
    for name in _HOOKS:
        model.__dict__.pop(name, None)


def _custom_code_flag(model: PreTrainedModel) -> bool | None:
    """``is_custom_code()`` of the model's class, not of FSDP2's dynamic ``FSDP<Name>``
    subclass, whose value is True (its module is torch's): that makes
    ``_initialize_weights`` skip every module without direct parameters (GPT-2's scaled
    ``c_proj``). None for releases without it."""
    cls = model_class_of(type(model))
    return cls.is_custom_code() if hasattr(cls, "is_custom_code") else None


def redirected_temporary(tensor: torch.Tensor) -> torch.Tensor | None:
    """The model's tensor when ``tensor`` is the float32 temporary transformers'
    ``orthogonal_`` fills for a low-precision tensor (and then copies in), else None."""
    init = sys.modules.get(INIT_MODULE)
    code = getattr(getattr(init, "orthogonal_", None), "__code__", None)
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    if frame is None:
        return None
    local = frame.f_locals
    return local.get("tensor") if local.get("fp32_tensor") is tensor else None


def clear_flags(model: torch.nn.Module) -> None:
    """Remove the ``_is_hf_initialized`` flags (modules, parameters, buffers) that make a
    second ``initialize_weights`` skip everything."""
    for m in model.modules():
        m.__dict__.pop("_is_hf_initialized", None)
    for t in list(model.parameters()) + list(model.buffers()):
        t.__dict__.pop("_is_hf_initialized", None)


def tie(model: PreTrainedModel) -> None:
    """Tie the model's weights as its ``init_weights`` does (``to_empty`` unties them)."""
    model.tie_weights(recompute_mapping=False)


def model_class_of(cls: type) -> type:
    """A model class, not FSDP2's dynamic subclass of it."""
    for c in cls.__mro__:
        if not c.__module__.startswith("torch.distributed"):
            return c
    return cls  # pragma: no cover


def model_class(model: PreTrainedModel) -> type:
    """The model's class, not FSDP2's dynamic subclass."""
    return model_class_of(type(model))


def rebuilder(model: PreTrainedModel) -> Callable[[], torch.nn.Module]:
    """A function building ``model`` again from its config (for its buffers)."""
    cls = model_class(model)

    def rebuild() -> torch.nn.Module:
        import torch
        with torch.device("cpu"):
            return cls(model.config)
    return rebuild


def saved_keys(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """``name -> tensor`` of what ``save_pretrained`` writes (without non-persistent
    buffers, ignored keys and tied targets), in the model's own layout."""
    from transformers.modeling_utils import remove_tied_weights_from_state_dict
    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    for key in getattr(model, "_keys_to_ignore_on_save", None) or ():
        state.pop(key, None)
    return state


def save_config(model: PreTrainedModel, directory: StrPath, dtype: torch.dtype) -> list[str]:
    """Write ``config.json`` (and ``generation_config.json`` for generative models) as
    ``save_pretrained`` does; returns the file names."""
    import copy
    config = copy.deepcopy(model.config)
    config.architectures = [model_class(model).__name__]
    config.dtype = str(dtype).replace("torch.", "")
    config.save_pretrained(directory)
    names = ["config.json"]
    if model.can_generate() and getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(directory)
        names.append("generation_config.json")
    return names


def model_from_config(path: StrPath | PretrainedConfig, *, dtype: str | torch.dtype | None = None,
                      trust_remote_code: bool = False) -> PreTrainedModel:
    """The model a ``config.json`` (file or directory, or a loaded config) describes, on
    the meta device.

    The class is ``config.architectures[0]`` (as transformers' serving code picks it),
    else ``AutoModelForCausalLM`` / ``AutoModel``. ``dtype`` overrides ``config.dtype``.
    """
    import os

    import torch
    import transformers
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code) \
        if isinstance(path, (str, os.PathLike)) else path
    if dtype is not None:
        config.dtype = dtype
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    with torch.device("meta"):
        if cls is not None:
            return cls._from_config(config)
        for auto in (transformers.AutoModelForCausalLM, transformers.AutoModel):
            try:
                return auto.from_config(config, trust_remote_code=trust_remote_code)
            except ValueError:
                continue
    raise ValueError(f"No transformers model class for {path!r} (architectures={arch!r}).")
