"""PyTorch front end: ``torch.nn.init``'s functions, filled by fastinit, in place.

Same names and signatures as :mod:`torch.nn.init`, with PyTorch's fans
``(out, in, *kernel)``, and ``seed=`` / ``stream=`` besides ``generator=``:
without ``seed=`` a call draws its seed from ``generator``, else from torch's
default generator, so ``torch.manual_seed`` makes it reproducible (the seed rule
is :func:`fastinit.initializers.base.resolve_seed`). Tensors are filled in
place without a copy, on the CPU or on their GPU, with the same bits as
``fastinit.random`` gives for the same shape, parameters and seed; see
``docs/getting-started.md``. :func:`init_module_` initialises whole models;
:func:`fast_init` runs a model's own init code (``torch.nn.init``,
transformers' ``_init_weights``) on fastinit (``docs/models.md``).

Modules: ``_tensor`` (writing into a tensor), ``_regions`` (shards and views),
``_names`` (tensor names), ``_rules`` (PyTorch's formulas and default rules),
``_plan`` (the typed plan of an init), ``_intercept`` (where a model's writes are
seen, per thread), ``_streams`` (seeds and streams of a write), ``_pending``
(draws deferred during construction), ``_session``, ``_recording`` and
``_replay`` (what a write does), ``_fast_init`` (:func:`fast_init`), ``_hf`` (transformers
specifics), ``_module`` (:func:`init_module_`). Torch is imported on first use,
not with this package; transformers never.

Examples
--------
>>> import torch
>>> import fastinit.torch as ft
>>> layer = torch.nn.Linear(128, 64)
>>> ptr = layer.weight.data_ptr()
>>> _ = ft.kaiming_uniform_(layer.weight, a=5 ** 0.5, seed=0)
>>> layer.weight.data_ptr() == ptr
True
>>> bound = 1 / 128 ** 0.5                       # PyTorch's default Linear init
>>> bool(layer.weight.detach().abs().max() <= bound)
True
>>> w = ft.normal_(torch.empty(2, 2), std=1.0, seed=0)
>>> w
tensor([[-1.6704, -0.6700],
        [-2.2075,  0.0267]])
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, SupportsIndex

from . import _tensor
from ._fast_init import fast_init
from ._module import init_module_
from ._rules import calculate_gain, parameters, torch_rule
from ._streams import seed_from
from .._checks import check_real
from ..initializers.base import resolve_seed

if TYPE_CHECKING:
    import torch

    from .._typing import (
        Backend, FanMode, InitializerLike, Layout, Nonlinearity, Seed, TensorT,
    )

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
    "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "orthogonal_", "sparse_", "fill_", "init_module_", "fast_init",
    "parameters",
]


def _seed(seed: Seed, generator: torch.Generator | None) -> int:
    """The seed of a call: ``seed``; else one draw from ``generator``, else from torch's
    default generator (so ``torch.manual_seed`` makes the call reproducible, as it
    does torch's own functions)."""
    import torch
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator. Received: generator={generator!r}")
    if generator is not None and seed is not None:
        raise TypeError("Give seed= or generator=, not both. "
                        f"Received: seed={seed!r}, generator={generator!r}")
    if seed is None:
        return seed_from(generator)
    return resolve_seed(seed)


def _float(value: float, name: str) -> float:
    return check_real(value, name, finite=False)


def _apply(tensor: TensorT, fn: str, seed: Seed = None, stream: SupportsIndex = 0,
           backend: Backend = "auto", **kwargs: Any) -> TensorT:
    """``torch.nn.init.<fn>(tensor, **kwargs)`` with fastinit's values, in place."""
    initializer = torch_rule(fn, tuple(tensor.shape), seed, **kwargs)
    return _tensor.fill(tensor, initializer, stream=stream, backend=backend)


# -- torch.nn.init ---------------------------------------------------------------------


def uniform_(tensor: TensorT, a: float = 0.0, b: float = 1.0,
             generator: torch.Generator | None = None, *, seed: Seed = None,
             stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` with values from ``U(a, b)`` (``torch.nn.init.uniform_``).

    Examples
    --------
    >>> import torch
    >>> w = uniform_(torch.empty(3, 5), -0.1, 0.1, seed=0)
    >>> bool(w.min() >= -0.1 and w.max() < 0.1)
    True
    """
    return _apply(tensor, "uniform_", _seed(seed, generator), stream, backend,
                  a=_float(a, "a"), b=_float(b, "b"))


def normal_(tensor: TensorT, mean: float = 0.0, std: float = 1.0,
            generator: torch.Generator | None = None, *, seed: Seed = None,
            stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` with values from ``N(mean, std^2)`` (``torch.nn.init.normal_``).

    Examples
    --------
    >>> import torch
    >>> w = normal_(torch.empty(1000, 100), std=0.02, seed=0)
    >>> round(float(w.std()), 3)
    0.02
    """
    return _apply(tensor, "normal_", _seed(seed, generator), stream, backend,
                  mean=_float(mean, "mean"), std=_float(std, "std"))


def trunc_normal_(tensor: TensorT, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: torch.Generator | None = None, *,
                  seed: Seed = None, stream: SupportsIndex = 0,
                  backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` with ``N(mean, std^2)`` values re-drawn outside ``[a, b]`` (absolute bounds).

    ``torch.nn.init.trunc_normal_``; exact for any bounds (no inverse-CDF
    clipping), see :func:`fastinit.random.truncated_normal`.

    Examples
    --------
    >>> import torch
    >>> w = trunc_normal_(torch.empty(10_000), std=0.02, a=-0.04, b=0.04, seed=0)
    >>> bool(w.abs().max() <= 0.04)
    True
    """
    return _apply(tensor, "trunc_normal_", _seed(seed, generator), stream, backend,
                  mean=_float(mean, "mean"), std=_float(std, "std"), a=_float(a, "a"),
                  b=_float(b, "b"))


def constant_(tensor: TensorT, val: float) -> TensorT:
    """Fill ``tensor`` with ``val`` (``torch.nn.init.constant_``)."""
    return _apply(tensor, "constant_", val=_float(val, "val"))


def ones_(tensor: TensorT) -> TensorT:
    """Fill ``tensor`` with ones (``torch.nn.init.ones_``)."""
    return _apply(tensor, "ones_")


def zeros_(tensor: TensorT) -> TensorT:
    """Fill ``tensor`` with zeros (``torch.nn.init.zeros_``).

    Examples
    --------
    >>> import torch
    >>> zeros_(torch.ones(2, 2))
    tensor([[0., 0.],
            [0., 0.]])
    """
    return _apply(tensor, "zeros_")


def eye_(tensor: TensorT) -> TensorT:
    """Fill a 2-D ``tensor`` with the identity matrix (``torch.nn.init.eye_``).

    Examples
    --------
    >>> import torch
    >>> eye_(torch.empty(2, 3))
    tensor([[1., 0., 0.],
            [0., 1., 0.]])
    """
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported. "
                         f"Received: tensor with shape {tuple(tensor.shape)}")
    return _apply(tensor, "eye_")


def dirac_(tensor: TensorT, groups: int = 1) -> TensorT:
    """Fill a 3-, 4- or 5-D ``tensor`` with the Dirac delta (``torch.nn.init.dirac_``).

    Examples
    --------
    >>> import torch
    >>> w = dirac_(torch.empty(4, 2, 3), groups=2)
    >>> w[:, :, 1]
    tensor([[1., 0.],
            [0., 1.],
            [1., 0.],
            [0., 1.]])
    """
    return _apply(tensor, "dirac_", groups=groups)


def xavier_uniform_(tensor: TensorT, gain: float = 1.0,
                    generator: torch.Generator | None = None, *, seed: Seed = None,
                    stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Glorot/Xavier uniform (``torch.nn.init.xavier_uniform_``), fans of ``(out, in, *k)``.

    Uniform on ``[-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``.
    """
    bound = parameters("xavier_uniform_", tensor.shape, gain=gain)["bound"]
    return uniform_(tensor, -bound, bound, generator, seed=seed, stream=stream,
                    backend=backend)


def xavier_normal_(tensor: TensorT, gain: float = 1.0,
                   generator: torch.Generator | None = None, *, seed: Seed = None,
                   stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Glorot/Xavier normal (``torch.nn.init.xavier_normal_``): ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    std = parameters("xavier_normal_", tensor.shape, gain=gain)["std"]
    return normal_(tensor, 0.0, std, generator, seed=seed, stream=stream, backend=backend)


def kaiming_uniform_(tensor: TensorT, a: float = 0, mode: FanMode = "fan_in",
                     nonlinearity: Nonlinearity = "leaky_relu",
                     generator: torch.Generator | None = None, *, seed: Seed = None,
                     stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """He/Kaiming uniform (``torch.nn.init.kaiming_uniform_``).

    Uniform on ``[-b, b)``, ``b = gain * sqrt(3 / fan)``, ``gain =
    calculate_gain(nonlinearity, a)``. ``a=sqrt(5)`` is PyTorch's default
    initialization of ``nn.Linear`` and ``nn.ConvNd`` weights.
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = parameters("kaiming_uniform_", tensor.shape, a=a, mode=mode,
                       nonlinearity=nonlinearity)["bound"]
    return uniform_(tensor, -bound, bound, generator, seed=seed, stream=stream,
                    backend=backend)


def kaiming_normal_(tensor: TensorT, a: float = 0, mode: FanMode = "fan_in",
                    nonlinearity: Nonlinearity = "leaky_relu",
                    generator: torch.Generator | None = None, *, seed: Seed = None,
                    stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """He/Kaiming normal (``torch.nn.init.kaiming_normal_``): ``std = gain / sqrt(fan)``, untruncated.

    Examples
    --------
    >>> import torch
    >>> conv = torch.nn.Conv2d(16, 32, 3)
    >>> w = kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", seed=0)
    >>> round(float(w.detach().std()) / (2 / (32 * 9)) ** 0.5, 1)
    1.0
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = parameters("kaiming_normal_", tensor.shape, a=a, mode=mode,
                     nonlinearity=nonlinearity)["std"]
    return normal_(tensor, 0.0, std, generator, seed=seed, stream=stream, backend=backend)


def orthogonal_(tensor: TensorT, gain: float = 1, generator: torch.Generator | None = None,
                *, seed: Seed = None, stream: SupportsIndex = 0,
                backend: Backend = "auto") -> TensorT:
    """A (semi-)orthogonal matrix times ``gain`` (``torch.nn.init.orthogonal_``).

    Rows along axis 0, the other axes flattened: ``Orthogonal(gain, column_axis=0)``.

    Examples
    --------
    >>> import torch
    >>> w = orthogonal_(torch.empty(3, 5), seed=0)
    >>> torch.allclose(w @ w.T, torch.eye(3), atol=1e-6)
    True
    """
    if tensor.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported. "
                         f"Received: tensor with shape {tuple(tensor.shape)}")
    return _apply(tensor, "orthogonal_", _seed(seed, generator), stream, backend,
                  gain=_float(gain, "gain"))


def sparse_(tensor: TensorT, sparsity: float, std: float = 0.01,
            generator: torch.Generator | None = None, *, seed: Seed = None,
            stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """A sparse 2-D matrix (``torch.nn.init.sparse_``): ``ceil(sparsity * rows)`` zeros per column.

    Examples
    --------
    >>> import torch
    >>> w = sparse_(torch.empty(10, 4), sparsity=0.3, seed=0)
    >>> (w == 0).sum(dim=0)
    tensor([3, 3, 3, 3])
    """
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported. "
                         f"Received: tensor with shape {tuple(tensor.shape)}")
    return _apply(tensor, "sparse_", _seed(seed, generator), stream, backend,
                  sparsity=sparsity, std=std)


def fill_(tensor: TensorT, initializer: InitializerLike, *, layout: Layout = "keras",
          stream: SupportsIndex = 0, backend: Backend = "auto") -> TensorT:
    """Fill ``tensor`` in place with any initializer (built-in, custom or a plain callable).

    With ``layout="keras"`` the tensor, in PyTorch's ``(out, in, *k)``
    layout, is seen in Keras' ``(*k, in, out)`` layout (a permuted view, no
    copy): a Keras-style initializer then computes Keras' fans and the
    values equal those of a Keras kernel made by the same initializer,
    transposed. ``layout="torch"`` passes the shape as it is (right for
    layout-free initializers and 1-D tensors, which both layouts leave as
    they are).

    Parameters
    ----------
    tensor : torch.Tensor
    initializer : Initializer, callable, or identifier
        Anything :func:`fastinit.initializers.get` accepts.
    layout : {"keras", "torch"}
    stream : int
        Passed to fastinit initializers.

    Examples
    --------
    >>> import torch
    >>> import fastinit.initializers as fi
    >>> linear = torch.nn.Linear(3, 2)
    >>> _ = fill_(linear.weight, fi.GlorotUniform(seed=0))
    >>> torch.equal(linear.weight.T, torch.from_numpy(fi.GlorotUniform(seed=0)((3, 2))))
    True
    """
    from ..initializers.registry import get

    initializer = get(initializer)
    if layout not in ("keras", "torch"):
        raise ValueError(f"layout must be 'keras' or 'torch'. Received: layout={layout!r}")
    return _tensor.fill(tensor, initializer, layout=layout, stream=stream, backend=backend)
