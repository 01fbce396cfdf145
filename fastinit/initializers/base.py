"""The ``Initializer`` base class, the seed rule, and what a call asks for.

An initializer holds parameters (validated eagerly, when it is built) and
turns a call ``init(shape, dtype=None, **kw)`` into values. This module does
the part common to all of them: it checks the keywords of a call and hands
the concrete class a :class:`Request` (global shape, dtype, output buffer,
region, stream, backend). Concrete classes compute their parameters (fans,
std, bounds) and ask :mod:`fastinit.random` for the values; they know nothing
about kernels or backends.
"""

import inspect
import math
import numbers
import os

import numpy as np

from .. import _device, _dtypes, _region, backends
from .._checks import check_uint64

__all__ = ["Initializer", "SeededInitializer", "Request", "resolve_seed", "call_initializer"]



# -- the seed rule ---------------------------------------------------------------


def resolve_seed(seed):
    """The seed an initializer uses: fastinit's seed rule, written once.

    This is the only place the rule is defined; every seeded initializer,
    front end and docstring refers here.

    - An ``int`` seed (in ``[0, 2**64)``) is used as it is: the initializer
      gives the same values on every call, in every process.
    - ``None`` draws a seed **once**, when the initializer is built, from the
      operating system (``os.urandom``). The initializer then also gives the
      same values on every call; a new initializer (or ``clone()``, or
      ``from_config`` of its config, which keeps ``seed=None``) draws a new seed.
    - The ``stream=`` keyword of a call selects one of ``2**64`` independent
      sequences under the seed: use a different stream per tensor to get
      different values from one seeded initializer.
    - The functional front ends (``fastinit.torch``, ``fastinit.jax``) have no
      construction step: there ``seed=None`` draws a new seed at each call,
      like a framework's global generator.

    Parameters
    ----------
    seed : int or None

    Returns
    -------
    int
        In ``[0, 2**64)``.

    Examples
    --------
    >>> resolve_seed(42)
    42
    >>> 0 <= resolve_seed(None) < 2**64
    True
    """
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    return check_uint64(seed, "seed", ValueError)


# -- validation helpers for configurations ----------------------------------------


def check_real(value, name, *, minimum=None, strict=False, finite=True):
    """``value`` as a float; ValueError with ``Received: name=value`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number. Received: {name}={value!r}")
    value = float(value)
    if math.isnan(value) or finite and math.isinf(value):
        raise ValueError(f"{name} must be a finite number. Received: {name}={value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}. "
                         f"Received: {name}={value}")
    return value


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}. "
                         f"Received: {name}={value!r}")
    return value


# -- a call ------------------------------------------------------------------------

_BACKENDS = ("auto",) + tuple(backends.NAMES)
_COMPLEX = ("complex64", "complex128")


def _dtype_name(dtype):
    return getattr(dtype, "name", None) or str(dtype)


def resolve_dtype(dtype, kind):
    """The ``np.dtype`` of a call: ``kind`` is "float" (the engine's four dtypes),
    "inexact" (those and complex64/complex128) or "any" (any numeric or bool
    dtype, bfloat16 included)."""
    if kind == "float":
        return _dtypes.resolve(dtype)
    if isinstance(dtype, str) and dtype == "bfloat16":
        return _dtypes.bfloat16()
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if kind == "inexact":
        if resolved is not None and resolved.name in _COMPLEX:
            return resolved
        return _dtypes.resolve(dtype)
    if resolved is None or resolved.kind not in "biufc" and resolved.name != "bfloat16":
        raise TypeError(f"Unsupported dtype: expected a numeric or bool dtype. "
                        f"Received: dtype={dtype!r}")
    return resolved


class Request:
    """What one call of an initializer asks for, checked.

    Attributes
    ----------
    shape : tuple of int
        The global shape (fans are computed from it).
    dtype : numpy.dtype
    out : numpy.ndarray or None
        The buffer to fill (any memory layout), of the region's shape.
    index : tuple or None
        The region of the global tensor to produce (``None``: all of it).
    region_shape : tuple of int
        The shape of what is returned.
    stream, offset : int
    backend : str
    """

    def __init__(self, shape, dtype=None, *, kind="float", out=None, backend="auto",
                 device=None, stream=0, index=None, offset=0):
        if not isinstance(backend, str) or backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}. "
                             f"Received: backend={backend!r}")
        self.gpu = _gpu_target(out, device, backend)
        if out is not None and self.gpu is None:
            _check_out_type(out)
        out_shape = None if out is None else self.gpu.shape if self.gpu else out.shape
        out_dtype = None if out is None else self.gpu.dtype if self.gpu else out.dtype
        if shape is None:
            if out is None or index is not None:
                raise TypeError("shape is required unless out is given without index. "
                                "Received: shape=None")
            shape = out_shape
        self.shape = _region.normalize_shape(shape)
        region = _region.region(self.shape, index, offset)
        self.region_shape = region.shape
        self.index = None if index is None else _full_index(index, len(self.shape))
        self.offset = offset
        self.stream = check_uint64(stream, "stream")
        if dtype is None:
            dtype = out_dtype if out is not None else np.float32
        self.dtype = resolve_dtype(dtype, kind)
        if out is not None:
            if out_dtype != self.dtype:
                raise TypeError(f"out has dtype {out_dtype}, expected {self.dtype}. "
                                f"Received: out with dtype {out_dtype}, dtype={dtype!r}")
            if out_shape != self.region_shape:
                raise ValueError(f"out has shape {out_shape}, expected {self.region_shape}. "
                                 f"Received: out with shape {out_shape}")
        self.backend = backend
        self.out = out

    @property
    def is_complex(self):
        return self.dtype.kind == "c"

    def engine(self, seed, **overrides):
        """Keywords for a :mod:`fastinit.random` function producing this request."""
        kw = dict(dtype=self.dtype, seed=seed, stream=self.stream, index=self.index,
                  offset=self.offset, out=self.out, backend=self.backend)
        if self.gpu is not None and self.out is None:
            kw["device"] = f"cuda:{self.gpu.device}"
        kw.update(overrides)
        return kw

    def work_array(self, dtype):
        """A C-ordered ``dtype`` array of the whole tensor to compute in, where the output
        lives (NumPy or CuPy). When it can be the output (the whole tensor, in the
        output's dtype), it is: ``out`` itself if C-contiguous, else the new output."""
        dtype = np.dtype(dtype)
        whole = self.index is None and self.dtype == dtype
        if self.gpu is None:
            if whole and (self.out is None or self.out.flags.c_contiguous):
                if self.out is None:
                    self.out = np.empty(self.shape, dtype)
                return self.out
            return np.empty(self.shape, dtype)
        if whole and (self.gpu.array is None or self.gpu.array.flags.c_contiguous):
            return self.gpu.allocate(self.shape, dtype.name)
        with self.gpu.context():
            return self.gpu.cupy.empty(self.shape, dtype)

    def is_output(self, array):
        """True when ``array`` is (the CuPy view of) the output itself."""
        return array is (self.gpu.array if self.gpu is not None else self.out)

    def result(self):
        """The output as the caller sees it (``out`` itself, or the new array)."""
        return self.gpu.out if self.gpu is not None else self.out

    def emit(self, values):
        """Write ``values`` (broadcastable to the region's shape) to the output and return it."""
        if self.gpu is not None:
            return self.gpu.write(values, self.region_shape, self.dtype)
        out = self.out if self.out is not None else np.empty(self.region_shape, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            np.copyto(out, values, casting="unsafe")
        return out

    def emit_whole(self, values):
        """Like :meth:`emit`, for ``values`` of the whole global shape: the region is cut out."""
        if self.index is not None:
            if not _device.is_gpu_array(values):
                values = np.asarray(values)
            values = values[self.index]
        return self.emit(values)


def _full_index(index, ndim):
    if not isinstance(index, tuple):
        index = (index,)
    return index + (slice(None),) * (ndim - len(index))


def _gpu_target(out, device, backend):
    """The GPU output of a call (see :mod:`fastinit._device`), or None for the CPU."""
    if device is None and not _device.is_gpu_array(out):
        return None
    return _device.route(out, device, backend)


def _check_out_type(out):
    if not isinstance(out, np.ndarray):
        raise TypeError("out must be a numpy.ndarray or a GPU array (fill CPU framework "
                        "tensors with fastinit.torch or fastinit.jax). "
                        f"Received: out of type {type(out).__name__}")
    if not out.flags.writeable:
        raise ValueError("out is read-only. Received: out with writeable=False")


# -- the base classes ---------------------------------------------------------------


class Initializer:
    """Base class of all fastinit initializers (the Keras 3 ``Initializer`` protocol).

    Built-in initializers implement :meth:`generate`; calling one accepts,
    besides Keras' ``(shape, dtype=None)``, the keywords below. A custom
    initializer may instead override ``__call__(self, shape, dtype=None)``
    as in Keras, or be a plain callable ``(shape, dtype=None)``: both work
    wherever a built-in one does (:func:`call_initializer` supplies the
    extra keywords for them).

    Parameters of a call
    --------------------
    shape : int or tuple of int
        The shape of the whole (global) tensor; fans are computed from it.
        May be omitted when ``out`` is given without ``index``.
    dtype : str or numpy.dtype, optional
        Defaults to ``out.dtype``, else float32. Random initializers take
        float16, bfloat16, float32 and float64 (the variance-scaling family and
        ``RandomNormal`` also complex64 and complex128); constant ones any
        numeric dtype.
    out : numpy.ndarray or GPU array, optional
        Filled in place (any memory layout) and returned. A CuPy array or a
        CUDA buffer (a torch CUDA tensor, ...) is filled on its GPU, as in
        :mod:`fastinit.random` (see :mod:`fastinit._device`).
    backend : {"auto", "numba", "numpy", "cupy"}
        ``"cupy"`` (or ``"auto"``) for GPU outputs.
    device : {None, "cpu", "cuda", "cuda:N"}
        ``"cuda"`` returns a CuPy array on that GPU (needs CuPy).
    stream : int, default 0
        Independent sequences under one seed (see :func:`resolve_seed`).
    index : tuple of slice or int, optional
        Produce only this region of the global tensor; it equals that region
        of the whole tensor (for sharded initialization).
    offset : int, default 0
        Flat stream position of the global tensor's first element.

    Examples
    --------
    A custom initializer: implement :meth:`generate` (which gets a checked
    :class:`Request`) and :meth:`get_config`.

    >>> import numpy as np
    >>> class Arange(Initializer):
    ...     def __init__(self, start=0.0):
    ...         self.start = start
    ...     def generate(self, request):
    ...         values = self.start + np.arange(np.prod(request.shape)).reshape(request.shape)
    ...         return request.emit_whole(values)
    ...     def get_config(self):
    ...         return {"start": self.start}
    >>> init = Arange(10.0)
    >>> init((2, 3))
    array([[10., 11., 12.],
           [13., 14., 15.]], dtype=float32)
    >>> init((2, 3), index=(1,))
    array([13., 14., 15.], dtype=float32)
    >>> Arange.from_config(init.get_config()).start
    10.0
    """

    #: The dtypes a call accepts: "float", "inexact" or "any" (see ``resolve_dtype``).
    dtype_kind = "float"

    def __call__(self, shape=None, dtype=None, *, out=None, backend="auto", device=None,
                 stream=0, index=None, offset=0):
        """Values of ``shape`` and ``dtype`` (see the class docstring for the keywords)."""
        request = Request(shape, dtype, kind=self.dtype_kind, out=out, backend=backend,
                          device=device, stream=stream, index=index, offset=offset)
        return self.generate(request)

    def generate(self, request):
        """Produce the values a :class:`Request` asks for (implemented by subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement generate(request) "
                                  "or __call__(shape, dtype=None)")

    def get_config(self):
        """The initializer's configuration: a JSON-serializable dict of constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config):
        """An initializer from the output of :meth:`get_config`."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict. Received: config={config!r}")
        return cls(**config)

    def clone(self):
        """A new initializer with the same configuration (an unseeded one draws a new seed)."""
        return self.__class__.from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return (type(self) is type(other) and self.get_config() == other.get_config()
                and getattr(self, "seed", None) == getattr(other, "seed", None))

    def __hash__(self):
        return hash(type(self).__name__)


class SeededInitializer(Initializer):
    """An initializer that draws random values: holds ``seed`` by :func:`resolve_seed`.

    ``seed`` is the value in effect (an int); ``get_config()`` keeps the value
    given (``None`` for an unseeded initializer, so that a clone draws anew).
    """

    def __init__(self, seed=None):
        self._init_seed = None if seed is None else resolve_seed(seed)
        self.seed = resolve_seed(seed)

    def get_config(self):
        return {"seed": self._init_seed}


def call_initializer(initializer, shape=None, dtype=None, *, out=None, **kw):
    """Call any initializer with fastinit's keywords (``out``, ``index``, ``stream``...).

    A fastinit :class:`Initializer` takes them itself. Any other callable
    ``(shape, dtype=None)`` (a Keras-style custom ``__call__``, a function,
    a Keras or JAX-less initializer) is called with ``shape`` and ``dtype``
    only; its result is converted to NumPy, cut to ``index`` and copied into
    ``out``. Keywords such as ``stream`` do not apply to such a callable and
    must be left at their defaults.

    Examples
    --------
    >>> import numpy as np
    >>> buf = np.empty((2, 2), dtype=np.float64)
    >>> call_initializer(lambda shape, dtype=None: np.full(shape, 7.0), out=buf)
    array([[7., 7.],
           [7., 7.]])
    """
    if isinstance(initializer, Initializer) and _takes_keywords(initializer):
        return initializer(shape, dtype, out=out, **kw)
    if not callable(initializer):
        raise TypeError(f"An initializer must be callable. Received: {initializer!r}")
    stream, offset = kw.pop("stream", 0), kw.pop("offset", 0)
    if stream != 0 or offset != 0:
        raise ValueError(f"{initializer!r} does not take stream= or offset=. "
                         f"Received: stream={stream!r}, offset={offset!r}")
    request = Request(shape, dtype, kind="any", out=out, **kw)
    values = initializer(request.shape, request.dtype.name)
    values = np.asarray(values)
    if values.shape != request.shape:
        raise ValueError(f"{initializer!r} returned shape {values.shape}, expected "
                         f"{request.shape}. Received: shape={values.shape}")
    return request.emit_whole(values)


def _takes_keywords(initializer):
    call = type(initializer).__call__
    if call is Initializer.__call__:
        return True
    params = inspect.signature(call).parameters
    return "out" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
