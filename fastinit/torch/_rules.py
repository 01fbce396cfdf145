"""PyTorch's initialization rules as fastinit initializers (no tensors here).

- :func:`calculate_gain` and :func:`parameters`: ``torch.nn.init``'s formulas;
- :func:`torch_rule`: the initializer that ``torch.nn.init.<fn>(**kwargs)``
  amounts to for a global shape (PyTorch layout ``(out, in, *k)``);
- :func:`default_rule`: PyTorch's ``reset_parameters`` rule of a module's tensor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, cast

from .. import _fans, random as fr
from ..initializers import (
    Constant, Dirac, Identity, Ones, Orthogonal, RandomNormal, RandomUniform, Sparse, Zeros,
)
from ..initializers.base import Initializer, SeededInitializer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

    from .._typing import Array, Config, InitializerSeed, Nonlinearity, Seed
    from ..initializers.base import Request

    #: The ``torch.nn.init`` functions whose parameters come from the fans.
    FanRule = Literal["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                      "kaiming_normal_"]

__all__ = ["TORCH_FNS", "RANDOM", "CONSTANT", "ARGUMENTS", "calculate_gain", "parameters",
           "rule_arguments", "torch_rule", "check_dims", "default_rule"]

#: A required argument (no default) in :data:`ARGUMENTS`.
REQUIRED = "<required>"
_KAIMING = {"a": 0, "mode": "fan_in", "nonlinearity": "leaky_relu"}
#: The arguments of each ``torch.nn.init`` function after the tensor (``generator``
#: aside), with torch's defaults: the one table rules and intercepted calls are read with.
ARGUMENTS: dict[str, dict[str, Any]] = {
    "uniform_": {"a": 0.0, "b": 1.0},
    "normal_": {"mean": 0.0, "std": 1.0},
    "trunc_normal_": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},
    "constant_": {"val": REQUIRED},
    "zeros_": {},
    "ones_": {},
    "eye_": {},
    "dirac_": {"groups": 1},
    "xavier_uniform_": {"gain": 1.0},
    "xavier_normal_": {"gain": 1.0},
    "kaiming_uniform_": _KAIMING,
    "kaiming_normal_": _KAIMING,
    "orthogonal_": {"gain": 1.0},
    "sparse_": {"sparsity": REQUIRED, "std": 0.01},
}
TORCH_FNS = tuple(ARGUMENTS)
#: The functions that draw random values, and those that write constants.
RANDOM = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
          "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
CONSTANT = ("constant_", "ones_", "zeros_", "eye_", "dirac_")


def rule_arguments(fn: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` of ``torch.nn.init.<fn>`` completed with torch's defaults.

    A misspelled or unknown argument is a TypeError (as Python's own for a bad
    keyword), a missing required one (``constant_``'s ``val``, ``sparse_``'s
    ``sparsity``) a TypeError too, an unknown function a ValueError; each names it.

    Examples
    --------
    >>> rule_arguments("normal_", {"std": 0.02})
    {'mean': 0.0, 'std': 0.02}
    >>> rule_arguments("normal_", {"stdd": 0.02})
    Traceback (most recent call last):
    ...
    TypeError: normal_ has no argument 'stdd' (it takes mean, std). Received: {'stdd': 0.02}
    """
    if fn not in ARGUMENTS:
        raise ValueError(f"Unknown torch.nn.init function {fn!r}. Expected one of "
                         f"{', '.join(TORCH_FNS)}. Received: {fn!r}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(f"The arguments of {fn} are a dict with string keys. "
                        f"Received: {kwargs!r}")
    accepted = ARGUMENTS[fn]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        takes = ", ".join(accepted) or "no arguments"
        raise TypeError(f"{fn} has no argument {unknown[0]!r} (it takes {takes}). "
                        f"Received: {kwargs!r}")
    args = {**accepted, **kwargs}
    missing = [k for k, v in args.items() if v is REQUIRED]
    if missing:
        raise TypeError(f"{fn} needs the argument {missing[0]!r}. Received: {kwargs!r}")
    return args



# -- gains and parameters (pure functions of the shape) ------------------------------

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d")


def calculate_gain(nonlinearity: Nonlinearity, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    Parameters
    ----------
    nonlinearity : str
        "linear", "conv{1,2,3}d", "conv_transpose{1,2,3}d", "sigmoid", "tanh",
        "relu", "leaky_relu" or "selu".
    param : float, optional
        The negative slope of "leaky_relu" (default 0.01).

    Examples
    --------
    >>> calculate_gain("relu") == 2 ** 0.5
    True
    >>> calculate_gain("leaky_relu", 0.2) == (2 / (1 + 0.2 ** 2)) ** 0.5
    True
    >>> calculate_gain("tanh")
    1.6666666666666667
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number. Received: param={param!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}. "
                     f"Received: nonlinearity={nonlinearity!r}")


def _xavier_std(shape: Sequence[int], gain: float) -> float:
    fan_in, fan_out = _fans.torch_fans(shape)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def _kaiming_std(shape: Sequence[int], a: float, mode: str, nonlinearity: Nonlinearity) -> float:
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']. "
                         f"Received: mode={mode!r}")
    fan_in, fan_out = _fans.torch_fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def parameters(name: FanRule, shape: Sequence[int], **kwargs: Any) -> dict[str, float]:
    """The distribution parameters a fill computes for a tensor of ``shape`` (PyTorch layout).

    ``name`` is one of ``"xavier_uniform_"``, ``"xavier_normal_"``,
    ``"kaiming_uniform_"``, ``"kaiming_normal_"``; ``kwargs`` are that function's parameters (``gain``,
    or ``a``/``mode``/``nonlinearity``). Returns ``{"bound": b}`` (uniform on
    ``[-b, b)``) or ``{"std": s}`` (normal), computed with PyTorch's formulas.

    Examples
    --------
    >>> parameters("kaiming_uniform_", (64, 128), a=5 ** 0.5)      # nn.Linear's default: 1/sqrt(in)
    {'bound': 0.08838834764831842}
    """
    shape = tuple(shape)
    if name not in ("xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"):
        raise ValueError(f"No fan-derived parameters for {name!r}. Received: name={name!r}")
    kw = rule_arguments(name, kwargs)
    if name.startswith("xavier"):
        std = _xavier_std(shape, kw["gain"])
    else:
        std = _kaiming_std(shape, kw["a"], kw["mode"], kw["nonlinearity"])
    return {"bound": math.sqrt(3.0) * std} if name.endswith("uniform_") else {"std": std}


class _AbsTruncNormal(SeededInitializer):
    """Truncated normal with absolute bounds (``torch.nn.init.trunc_normal_``), region-aware."""

    elementwise = True

    def __init__(self, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                 seed: InitializerSeed = None) -> None:
        self.mean, self.std, self.a, self.b = float(mean), float(std), float(a), float(b)
        super().__init__(seed)

    def generate(self, request: Request) -> Array:
        return request.draw(fr.truncated_normal_distribution(self.mean, self.std, self.a,
                                                             self.b, request.dtype),
                            self._call_seed)

    def get_config(self) -> Config:
        return {"mean": self.mean, "std": self.std, "a": self.a, "b": self.b,
                **super().get_config()}


def torch_rule(fn: str, global_shape: Sequence[int], seed: Seed, **kwargs: Any) -> Initializer:
    """The fastinit initializer that ``torch.nn.init.<fn>(**kwargs)`` amounts to for ``global_shape``.

    Parameters come from the global (unsharded) shape with PyTorch's formulas
    (:func:`fastinit.torch.parameters`); the result is used in PyTorch layout.

    Examples
    --------
    >>> init = torch_rule("kaiming_uniform_", (64, 256), 0, a=math.sqrt(5))
    >>> type(init).__name__, round(init.maxval, 12)       # 1 / sqrt(fan_in)
    ('RandomUniform', 0.0625)
    """
    shape = tuple(global_shape)
    kw = rule_arguments(fn, kwargs)
    if fn == "uniform_":
        return RandomUniform(kw["a"], kw["b"], seed=seed)
    if fn == "normal_":
        return RandomNormal(kw["mean"], kw["std"], seed=seed)
    if fn == "trunc_normal_":
        return _AbsTruncNormal(kw["mean"], kw["std"], kw["a"], kw["b"], seed=seed)
    if fn == "constant_":
        return Constant(kw["val"])
    if fn == "zeros_":
        return Zeros()
    if fn == "ones_":
        return Ones()
    if fn == "eye_":
        return Identity()
    if fn == "dirac_":
        return Dirac(kw["groups"])
    if fn == "orthogonal_":
        return Orthogonal(kw["gain"], seed=seed, column_axis=0)
    if fn == "sparse_":
        return Sparse(kw["sparsity"], kw["std"], seed=seed)
    if fn.startswith("kaiming") and 0 in shape:
        return Zeros()
    p = parameters(cast("FanRule", fn), shape, **kw)  # the rest: checked by parameters
    if "bound" in p:
        return RandomUniform(-p["bound"], p["bound"], seed=seed)
    return RandomNormal(0.0, p["std"], seed=seed)


def check_dims(fn: str, ndim: int) -> None:
    """torch's own errors for the numbers of dimensions its functions refuse."""
    if fn == "orthogonal_" and ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if fn == "sparse_" and ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")


def default_rule(module: torch.nn.Module, local_name: str,
                 global_shapes: Mapping[str, Sequence[int]]
                 ) -> tuple[str, dict[str, Any]] | None:
    """PyTorch's ``reset_parameters`` rule for ``module.<local_name>``, as ``(fn, kwargs)``, or None.

    ``global_shapes`` maps the module's local tensor names to their global shapes.
    """
    import torch
    nn = torch.nn

    def fan_in_bound(weight_name: str = "weight") -> tuple[str, dict[str, Any]]:
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
    return None
