"""PyTorch front end: ``torch.nn.init``'s functions, filled by fastinit, in place.

Same names and signatures as :mod:`torch.nn.init`, with PyTorch's fan
convention ``(out, in, *kernel)`` (:func:`fastinit._fans.torch_fans`), and
``seed=`` / ``stream=`` in place of ``generator=``. ``seed=None`` draws a new
seed from the operating system at each call; see
:func:`fastinit.initializers.base.resolve_seed` for the seed rule.

The tensor is filled **in place, without a copy**: a CPU tensor is written
through a NumPy view of its own storage (``Tensor.numpy()``; bfloat16 through
an int16 view reinterpreted as ``ml_dtypes.bfloat16``), whatever its strides,
and its ``data_ptr()`` is checked to be unchanged. Supported dtypes: float16,
bfloat16, float32, float64. A CUDA tensor is filled in place on its GPU by
fastinit's CUDA kernels (CuPy needed), on PyTorch's current stream of that
device, with the same bits as on the CPU (see :mod:`fastinit._device`). The
tensor's autograd version counter is bumped, as by the in-place fills of
``torch.nn.init``.

Element ``i`` (C order over the tensor's shape) gets the value of element
``i`` of the fastinit stream, so a tensor filled here equals
``fastinit.random`` / ``fastinit.initializers`` output for the same shape,
parameters and seed, bit for bit, on every backend.

Torch is imported on first use, not with this module.

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

import math

import numpy as np

from . import _fans, random as fr
from .initializers.base import Initializer, call_initializer, check_real, resolve_seed
from .initializers.random_initializers import RandomNormal, RandomUniform
from .initializers.structured import Dirac, Identity, Orthogonal, Sparse

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
    "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "orthogonal_", "sparse_", "fill_", "init_module_",
]

_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _torch():
    import torch
    return torch


def _view(tensor):
    """What the fills write to, without a copy: a NumPy view of a CPU tensor's storage
    (with the tensor's strides), or the (detached) CUDA tensor itself, which
    fastinit fills on its GPU (see :mod:`fastinit._device`)."""
    torch = _torch()
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"Expected a torch.Tensor. Received: {type(tensor).__name__}")
    if tensor.device.type not in ("cpu", "cuda"):
        raise ValueError(f"fastinit.torch fills CPU and CUDA tensors. "
                         f"Received: a tensor on device {tensor.device}")
    name = str(tensor.dtype).replace("torch.", "")
    if name not in _DTYPES:
        raise TypeError(f"fastinit.torch fills {', '.join(_DTYPES)} tensors. "
                        f"Received: tensor with dtype {tensor.dtype}")
    if tensor.is_conj() or tensor.is_neg():
        raise ValueError("Cannot fill a tensor with a lazy conjugate or negation bit. "
                         "Received: a tensor with is_conj() or is_neg()")
    data = tensor.detach()
    if tensor.is_cuda:
        return data
    if name == "bfloat16":
        import ml_dtypes
        array = data.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
        array = data.numpy()
    if tensor.numel() and array.__array_interface__["data"][0] != tensor.data_ptr():
        raise RuntimeError("The NumPy view does not share the tensor's memory. "
                           f"Received: tensor with data_ptr {tensor.data_ptr()}")
    return array


def _fill(tensor, fill):
    """Run ``fill(view)`` on the tensor's view (see :func:`_view`) and check nothing moved."""
    torch = _torch()
    if isinstance(tensor, torch.Tensor) and tensor.is_meta:
        return tensor
    view = _view(tensor)
    ptr = tensor.data_ptr()
    if tensor.numel():
        fill(view)
        bump_version(tensor)
    if tensor.data_ptr() != ptr:  # pragma: no cover - a fill never reallocates
        raise RuntimeError("The tensor was reallocated while filling it")
    return tensor


def bump_version(tensor):
    """Tell autograd the tensor was modified in place, as torch's own in-place ops do
    (writes through a NumPy or CuPy view do not)."""
    _torch().autograd.graph.increment_version(tensor)


def _set(view, value):
    """Fill a view (NumPy array or CUDA tensor) with a constant."""
    if isinstance(view, np.ndarray):
        view.fill(value)
    else:
        view.fill_(value)


def _permute(view, axes):
    """A permuted view of a NumPy array or a tensor (no copy)."""
    return view.transpose(axes) if isinstance(view, np.ndarray) else view.permute(axes)


def _seed(seed, generator):
    if generator is not None:
        raise TypeError("fastinit.torch takes seed= and stream= instead of a torch.Generator. "
                        f"Received: generator={generator!r}")
    return resolve_seed(seed)


def _float(value, name):
    return check_real(value, name, finite=False)


# -- gains and parameters (pure functions of the shape) ------------------------------

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
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


def _xavier_std(shape, gain):
    fan_in, fan_out = _fans.torch_fans(shape)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def _kaiming_std(shape, a, mode, nonlinearity):
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']. "
                         f"Received: mode={mode!r}")
    fan_in, fan_out = _fans.torch_fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def parameters(name, shape, **kwargs):
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
    if name in ("xavier_uniform_", "xavier_normal_"):
        std = _xavier_std(shape, kwargs.get("gain", 1.0))
    elif name in ("kaiming_uniform_", "kaiming_normal_"):
        std = _kaiming_std(shape, kwargs.get("a", 0), kwargs.get("mode", "fan_in"),
                           kwargs.get("nonlinearity", "leaky_relu"))
    else:
        raise ValueError(f"No fan-derived parameters for {name!r}. Received: name={name!r}")
    return {"bound": math.sqrt(3.0) * std} if name.endswith("uniform_") else {"std": std}


# -- torch.nn.init ---------------------------------------------------------------------


def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=None, stream=0, backend="auto"):
    """Fill ``tensor`` with values from ``U(a, b)`` (``torch.nn.init.uniform_``).

    Examples
    --------
    >>> import torch
    >>> w = uniform_(torch.empty(3, 5), -0.1, 0.1, seed=0)
    >>> bool(w.min() >= -0.1 and w.max() < 0.1)
    True
    """
    init = RandomUniform(_float(a, "a"), _float(b, "b"), seed=_seed(seed, generator))
    return _fill(tensor, lambda v: init(v.shape, out=v, stream=stream, backend=backend))


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=None, stream=0,
            backend="auto"):
    """Fill ``tensor`` with values from ``N(mean, std^2)`` (``torch.nn.init.normal_``).

    Examples
    --------
    >>> import torch
    >>> w = normal_(torch.empty(1000, 100), std=0.02, seed=0)
    >>> round(float(w.std()), 3)
    0.02
    """
    init = RandomNormal(_float(mean, "mean"), _float(std, "std"), seed=_seed(seed, generator))
    return _fill(tensor, lambda v: init(v.shape, out=v, stream=stream, backend=backend))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=None,
                  stream=0, backend="auto"):
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
    seed = _seed(seed, generator)
    return _fill(tensor, lambda v: fr.truncated_normal(
        v.shape, mean, std, a, b, seed=seed, stream=stream, out=v, backend=backend))


def constant_(tensor, val):
    """Fill ``tensor`` with ``val`` (``torch.nn.init.constant_``)."""
    val = _float(val, "val")
    return _fill(tensor, lambda v: _set(v, val))


def ones_(tensor):
    """Fill ``tensor`` with ones (``torch.nn.init.ones_``)."""
    return _fill(tensor, lambda v: _set(v, 1))


def zeros_(tensor):
    """Fill ``tensor`` with zeros (``torch.nn.init.zeros_``).

    Examples
    --------
    >>> import torch
    >>> zeros_(torch.ones(2, 2))
    tensor([[0., 0.],
            [0., 0.]])
    """
    return _fill(tensor, lambda v: _set(v, 0))


def eye_(tensor):
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
    return _fill(tensor, lambda v: Identity()(v.shape, out=v))


def dirac_(tensor, groups=1):
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
    init = Dirac(groups)
    return _fill(tensor, lambda v: init(v.shape, out=v))


def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=None, stream=0, backend="auto"):
    """Glorot/Xavier uniform (``torch.nn.init.xavier_uniform_``), fans of ``(out, in, *k)``.

    Uniform on ``[-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``.
    """
    bound = parameters("xavier_uniform_", tensor.shape, gain=gain)["bound"]
    return uniform_(tensor, -bound, bound, generator, seed=seed, stream=stream,
                    backend=backend)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=None, stream=0, backend="auto"):
    """Glorot/Xavier normal (``torch.nn.init.xavier_normal_``): ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    std = parameters("xavier_normal_", tensor.shape, gain=gain)["std"]
    return normal_(tensor, 0.0, std, generator, seed=seed, stream=stream, backend=backend)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                     *, seed=None, stream=0, backend="auto"):
    """He/Kaiming uniform (``torch.nn.init.kaiming_uniform_``).

    Uniform on ``[-b, b)``, ``b = gain * sqrt(3 / fan)``, ``gain =
    calculate_gain(nonlinearity, a)``. ``a=sqrt(5)`` is PyTorch's default
    initialization of ``nn.Linear`` and ``nn.ConvNd`` weights.
    """
    if 0 in tensor.shape:
        return tensor
    bound = parameters("kaiming_uniform_", tensor.shape, a=a, mode=mode,
                       nonlinearity=nonlinearity)["bound"]
    return uniform_(tensor, -bound, bound, generator, seed=seed, stream=stream,
                    backend=backend)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None,
                    *, seed=None, stream=0, backend="auto"):
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
        return tensor
    std = parameters("kaiming_normal_", tensor.shape, a=a, mode=mode,
                     nonlinearity=nonlinearity)["std"]
    return normal_(tensor, 0.0, std, generator, seed=seed, stream=stream, backend=backend)


def orthogonal_(tensor, gain=1, generator=None, *, seed=None, stream=0, backend="auto"):
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
    init = Orthogonal(_float(gain, "gain"), seed=_seed(seed, generator), column_axis=0)
    return _fill(tensor, lambda v: init(v.shape, out=v, stream=stream, backend=backend))


def sparse_(tensor, sparsity, std=0.01, generator=None, *, seed=None, stream=0,
            backend="auto"):
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
    init = Sparse(sparsity, std, seed=_seed(seed, generator))
    return _fill(tensor, lambda v: init(v.shape, out=v, stream=stream, backend=backend))


def fill_(tensor, initializer, *, layout="keras", stream=0, backend="auto"):
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
    from .initializers.registry import get

    initializer = get(initializer)
    if layout not in ("keras", "torch"):
        raise ValueError(f"layout must be 'keras' or 'torch'. Received: layout={layout!r}")

    def fill(view):
        if layout == "keras" and view.ndim >= 2:
            view = _permute(view, tuple(range(2, view.ndim)) + (1, 0))
        kw = {"stream": stream, "backend": backend} if isinstance(initializer, Initializer) \
            else {}
        call_initializer(initializer, tuple(view.shape), out=view, **kw)

    return _fill(tensor, fill)


def init_module_(module, seed, rules=None, **kwargs):
    """Fill every parameter and buffer of ``module`` in place, each from the stream of its name.

    PyTorch's own ``reset_parameters`` rules by default, user ``rules`` by name
    pattern or module type, sharded DTensors filled with the global tensor's
    values; see :func:`fastinit.torch_module.init_module_` for the parameters.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> _ = init_module_(model, seed=1234)
    >>> bool(model[0].weight.detach().abs().max() <= 1 / 16 ** 0.5)
    True
    """
    from . import torch_module
    return torch_module.init_module_(module, seed, rules, **kwargs)
