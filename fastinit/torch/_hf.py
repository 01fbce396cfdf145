"""Hugging Face transformers specifics: the only module of fastinit that imports transformers.

Nothing here imports transformers unless it is already imported (or a function
is handed a transformers model or config). It provides the patches that make
a model's own ``_init_weights`` draw with fastinit (see
``fastinit.torch._fast_init``), the flags and tying rules of
``PreTrainedModel``, the buffers of a normally built model, the keys
``save_pretrained`` writes and the model of a ``config.json``. The
behaviour is described in ``docs/models.md``.
"""

import sys

__all__ = ["loaded", "is_pretrained", "patches", "outer_under_construction", "clear_flags",
           "tie", "rebuilder", "saved_keys", "save_config", "model_from_config",
           "INIT_MODULE"]

INIT_MODULE = "transformers.initialization"
_MODELING = "transformers.modeling_utils"


def loaded():
    """True when transformers' model code is imported (fastinit never imports it itself)."""
    return _MODELING in sys.modules and INIT_MODULE in sys.modules


def _pretrained():
    mod = sys.modules.get(_MODELING)
    return None if mod is None else getattr(mod, "PreTrainedModel", None)


def is_pretrained(module):
    """True for a transformers ``PreTrainedModel``."""
    cls = _pretrained()
    return cls is not None and isinstance(module, cls)


def custom_code(cls):
    """``is_custom_code()`` of a model class, not of FSDP2's dynamic ``FSDP<Name>`` subclass.

    HF's own value for the FSDP class is True (its module is torch's), which makes
    ``_initialize_weights`` skip every module without direct parameters (GPT-2's
    scaled ``c_proj``).
    """
    base = _pretrained()
    for c in cls.__mro__:
        if issubclass(c, base) and not c.__module__.startswith("torch.distributed"):
            return c._auto_class is not None or not c.__module__.startswith("transformers.")
    return cls.is_custom_code()  # pragma: no cover - every model class is a PreTrainedModel


def outer_under_construction(model):
    """The outermost ``PreTrainedModel`` other than ``model`` whose ``__init__`` is running
    in this thread, or None. (A nested model's ``post_init`` runs inside its parent's
    ``__init__``; the parent initialises the whole tree, under its own names.)"""
    base = _pretrained()
    if base is None:
        return None
    frame, outer = sys._getframe(1), None
    while frame is not None:
        if frame.f_code.co_name == "__init__":
            obj = frame.f_locals.get("self")
            if obj is not model and isinstance(obj, base):
                outer = obj
        frame = frame.f_back
    return outer


def patches(get_state, primitives):
    """``(object, attribute or key, new value)`` for every patch of transformers.

    ``get_state()`` is the calling thread's fast_init state or None;
    ``primitives`` maps the 14 ``torch.nn.init`` names to fastinit's versions.
    """
    init = sys.modules[INIT_MODULE]
    base = _pretrained()
    out = [(init.TORCH_INIT_FUNCTIONS, name, primitives[name])
           for name in init.TORCH_INIT_FUNCTIONS if name in primitives]
    orig_copy, orig_orthogonal = init.copy_, init.orthogonal_
    orig_initialize = base.initialize_weights
    orig_visit = base._initialize_weights

    def orthogonal_(tensor, gain=1, generator=None):
        # HF computes low-precision tensors in a float32 temporary; fastinit fills the
        # model's own tensor (so that it is named).
        if get_state() is None:
            return orig_orthogonal(tensor, gain=gain, generator=generator)
        if getattr(tensor, "_is_hf_initialized", False):
            return tensor
        return primitives["orthogonal_"](tensor, gain=gain, generator=generator)

    def copy_(tensor, other):
        state = get_state()
        if state is None or getattr(tensor, "_is_hf_initialized", False):
            return orig_copy(tensor, other)
        return state.copy(tensor, other, orig_copy)

    def initialize_weights(self):
        state = get_state()
        if state is None or state.in_init:
            return orig_initialize(self)
        if outer_under_construction(self) is not None:
            state.defer(self, lambda: orig_initialize(self))  # the outermost model does it
            return None
        return state.managed(self, lambda: orig_initialize(self))

    def _initialize_weights(self, module, is_custom_code=False):
        state = get_state()
        if state is None:
            return orig_visit(self, module, is_custom_code)
        custom = custom_code(type(self))
        return state.visit(module, lambda: orig_visit(self, module, custom),
                           getattr(module, "_is_hf_initialized", False))

    out += [(init, "orthogonal_", orthogonal_), (init, "copy_", copy_),
            (base, "initialize_weights", initialize_weights),
            (base, "_initialize_weights", _initialize_weights)]
    return out


def clear_flags(model):
    """Remove the ``_is_hf_initialized`` flags (modules, parameters, buffers) that make a
    second ``initialize_weights`` skip everything."""
    for m in model.modules():
        m.__dict__.pop("_is_hf_initialized", None)
    for t in list(model.parameters()) + list(model.buffers()):
        t.__dict__.pop("_is_hf_initialized", None)


def tie(model):
    """Tie the model's weights as its ``init_weights`` does (``to_empty`` unties them)."""
    model.tie_weights(recompute_mapping=False)


def model_class(model):
    """The model's class, not FSDP2's dynamic subclass."""
    for c in type(model).__mro__:
        if not c.__module__.startswith("torch.distributed"):
            return c
    return type(model)  # pragma: no cover


def rebuilder(model):
    """A function building ``model`` again from its config (for its buffers)."""
    cls = model_class(model)

    def rebuild():
        import torch
        with torch.device("cpu"):
            return cls(model.config)
    return rebuild


def saved_keys(model):
    """``name -> tensor`` of what ``save_pretrained`` writes (without non-persistent
    buffers, ignored keys and tied targets), in the model's own layout."""
    from transformers.modeling_utils import remove_tied_weights_from_state_dict
    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    for key in getattr(model, "_keys_to_ignore_on_save", None) or ():
        state.pop(key, None)
    return state


def save_config(model, directory, dtype):
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


def model_from_config(path, *, dtype=None, trust_remote_code=False):
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
