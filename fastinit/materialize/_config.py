"""A transformers ``config.json`` for ``fastinit materialize``: read, its size estimated
before the model is built, and its model built on the meta device.

Building a model costs memory and time per layer even on the meta device (about 30 KB
and 1 ms per decoder layer), so a config with an absurd layer count would exhaust the
memory before any check of the files ran. The size is estimated first from small
builds of the same config: every layer count set to 1, then each in turn to 2
(per-layer lists, such as ``layer_types``, cut to match); bytes and modules grow
linearly with each layer count. Whatever goes wrong in reading the config or building
the model is one :class:`ConfigError` naming the file.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import torch
    from transformers import PretrainedConfig   # not followed: Any

    from .._typing import StrPath

    #: Builds the model of a config (on the meta device).
    Build = Callable[[PretrainedConfig], torch.nn.Module]

__all__ = ["ConfigError", "model_from_config", "Estimate", "estimate"]

#: Memory a module of a model on the meta device takes (measured: 3 KB per module of a
#: Llama decoder layer), rounded up.
MODULE_BYTES = 4096
#: A layer count no model comes near, refused when the size cannot be estimated.
MAX_LAYERS = 100_000


class ConfigError(ValueError):
    """A config.json whose model cannot be built; the message is one line."""


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Estimate:
    """Bytes of the saved tensors and number of modules of the model a config describes."""

    def __init__(self, nbytes: int, modules: int, layers: Mapping[str, int]) -> None:
        self.nbytes, self.modules, self.layers = int(nbytes), int(modules), dict(layers)

    @property
    def build_memory(self) -> int:
        return self.modules * MODULE_BYTES


def _layer_keys(config: PretrainedConfig) -> dict[str, int]:
    """``{key: count}`` of the config's layer counts (``num_hidden_layers``, ``n_layer``,
    ``encoder_layers``, ...)."""
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and (
                key.endswith("layers") or key.endswith("_layer") or key == "n_layer"):
            out[key] = value
    return out


def _with_layers(config: PretrainedConfig, counts: Mapping[str, int],
                 original: Mapping[str, int]) -> PretrainedConfig:
    probe = copy.deepcopy(config)
    for key, n in counts.items():
        setattr(probe, key, n)
    for key, value in probe.to_dict().items():  # per-layer lists follow their count
        if isinstance(value, list) and value and len(value) in original.values():
            for layer_key, count in original.items():
                if len(value) == count and count > 0:
                    setattr(probe, key, value[:counts[layer_key]])
                    break
    return probe


def _size(model: torch.nn.Module) -> tuple[int, int]:
    tensors = list(model.parameters()) + list(model.buffers())
    return (sum(t.numel() * t.element_size() for t in tensors),
            sum(1 for _ in model.modules()))


def estimate(config: PretrainedConfig, build: Build) -> Estimate | None:
    """An :class:`Estimate` for ``config`` from small builds (``build(config)``), or None
    if they fail."""
    layers = _layer_keys(config)
    try:
        base = _size(build(_with_layers(config, {k: 1 for k in layers}, layers)))
        nbytes, modules = base
        for key, count in layers.items():
            counts = {k: 1 for k in layers}
            counts[key] = 2
            two = _size(build(_with_layers(config, counts, layers)))
            nbytes += (count - 1) * (two[0] - base[0])
            modules += (count - 1) * (two[1] - base[1])
    except Exception:  # noqa: BLE001 - the real build reports what is wrong
        return None
    return Estimate(nbytes, modules, layers)


def _check(path: str, config: PretrainedConfig, build: Build, check_space: bool,
           out_dir: StrPath, check_disk: bool) -> None:
    from .._system import available_memory
    from ._plan import free_space
    est = estimate(config, build)
    if est is None:
        big = {k: v for k, v in _layer_keys(config).items() if v > MAX_LAYERS}
        if big:
            raise ConfigError(f"{path!r}: layer counts {big} are beyond any model's and the "
                              f"size could not be estimated. Received: {big}")
        return
    if not check_space:
        return
    where, free = free_space(out_dir)
    if check_disk and free is not None and est.nbytes > free:
        raise ConfigError(
            f"The model of {path!r} ({_layers_text(est)}) would write about "
            f"{est.nbytes / 2**30:,.1f} GiB but {where!r} has {free / 2**30:,.1f} GiB free "
            "(pass --no-space-check to try anyway). Nothing was built or written.")
    memory = available_memory()
    if memory is not None and est.build_memory > memory:
        raise ConfigError(
            f"The model of {path!r} ({_layers_text(est)}) has about {est.modules:,} modules, "
            f"whose construction on the meta device needs about "
            f"{est.build_memory / 2**30:,.1f} GiB but {memory / 2**30:,.1f} GiB are available "
            "(pass --no-space-check to try anyway). Nothing was built or written.")


def _layers_text(est: Estimate) -> str:
    return ", ".join(f"{k}={v:,}" for k, v in est.layers.items()) or "no layer count"


def model_from_config(path: StrPath, out_dir: StrPath, *, dtype: str | None = None,
                      trust_remote_code: bool = False, check_space: bool = True,
                      check_disk: bool = True) -> torch.nn.Module:
    """The model of the transformers config ``path`` on the meta device, after checking
    its estimated size against the memory and (``check_disk``: not for a dry run) the
    disk (``check_space``)."""
    from ..torch import _hf
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise  # the command says what to install
    path = os.fspath(path)
    from transformers.utils import logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its warnings about a bad config precede our one line
    try:
        try:
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
            if dtype is not None:
                config.dtype = dtype
        except Exception as exc:  # noqa: BLE001 - any failure is the config's: one line
            raise ConfigError(f"cannot read the transformers config {path!r}: "
                              f"{type(exc).__name__}: {_one_line(exc)}") from None

        def build(cfg: PretrainedConfig) -> torch.nn.Module:
            return _hf.model_from_config(cfg, trust_remote_code=trust_remote_code)

        _check(path, config, build, check_space, out_dir, check_disk)
        try:
            return build(config)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot build the model of {path!r}: {type(exc).__name__}: "
                              f"{_one_line(exc)}") from None
    finally:
        logging.set_verbosity(verbosity)
