"""The ``Initializer`` base class, the seed rule, and what a call asks for.

An initializer holds parameters (validated eagerly, when it is built) and
turns a call ``init(shape, dtype=None, **kw)`` into values: the base class
checks the call once (a :class:`Request`, built on ``fastinit._target``) and
the concrete class computes its parameters (fans, std, bounds) and draws
through the request. Concrete classes know nothing about kernels or devices.
"""

from __future__ import annotations

import inspect
import random
from typing import TYPE_CHECKING, Any, ClassVar, SupportsIndex, cast

import numpy as np

from .._checks import check_uint64, shown
from .._target import Target
from ..stream import STREAM_VERSION
from . import _keras

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from .._typing import (
        Array, Backend, Config, DeviceLike, DTypeKind, Index, InitializerSeed, Output, Seed,
        SeedGeneratorLike, Self, ShapeLike,
    )
    from ..backends import Distribution

__all__ = ["Initializer", "SeededInitializer", "Request", "resolve_seed", "call_initializer"]


# -- the seed rule ---------------------------------------------------------------


def resolve_seed(seed: Seed) -> int:
    """The seed an initializer uses: fastinit's seed rule, written once.

    This is the only place the rule is defined; every seeded initializer,
    front end and docstring refers here.

    - An ``int`` seed (in ``[0, 2**64)``) is used as it is: the initializer
      gives the same values on every call, in every process.
    - ``None`` draws a seed **once**, when the initializer is built, from Python's
      global ``random`` generator (``random.getrandbits(64)``), as Keras draws
      the default seeds of its own initializers: Python seeds that generator from
      the operating system, so by default every process differs, while
      ``random.seed(n)`` or ``keras.utils.set_random_seed(n)`` make unseeded
      initializers reproducible (and a forked child is reseeded by Python, so
      children do not repeat their parent's seeds). The initializer then gives
      the same values on every call; a new initializer (or ``clone()``, or
      ``from_config`` of its config, which keeps ``seed=None``) draws a new seed.
    - The ``stream=`` keyword of a call selects one of ``2**64`` independent
      sequences under the seed: use a different stream per tensor to get
      different values from one seeded initializer.
    - The functional front ends have no construction step: ``fastinit.torch``'s
      functions with ``seed=None`` draw a new seed at each call from torch's
      default generator (``generator=`` from that one), so ``torch.manual_seed``
      makes them reproducible, as it does torch's own; ``fastinit.jax`` takes
      its seed from the key.
    - An initializer (not this function) also takes a Keras
      ``keras.random.SeedGenerator`` as its seed, as Keras' initializers do: then
      each call draws a new seed from the generator (advancing its state), so
      calls give different values, reproducibly from the generator's seed. Such a
      call cannot be a region of a tensor (``index=``, ``offset=``): each region
      would get a seed of its own.

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
        return random.getrandbits(64)
    return check_uint64(seed, "seed", ValueError)



# -- a call ------------------------------------------------------------------------


class Request(Target):
    """What one call of an initializer asks for, checked: a :class:`fastinit._target.Target`
    (global ``shape``, ``dtype``, ``out``, region ``index``/``offset``, ``backend``,
    device) and the call's ``stream``.

    Initializers draw with :meth:`draw` (a distribution of :mod:`fastinit.random`
    under their seed and the call's stream) or write given values with
    :meth:`write` / :meth:`write_whole`.
    """

    stream: int

    def __init__(self, shape: ShapeLike | None, dtype: npt.DTypeLike | None = None, *,
                 kind: DTypeKind = "float", out: Output | None = None, backend: Backend = "auto",
                 device: DeviceLike = None, stream: SupportsIndex = 0,
                 index: Index | None = None, offset: SupportsIndex = 0) -> None:
        super().__init__(shape, dtype, kind=kind, out=out, index=index, offset=offset,
                         backend=backend, device=device)
        self.stream = check_uint64(stream, "stream")

    @property
    def is_complex(self) -> bool:
        return self.dtype.kind == "c"

    def draw(self, dist: Distribution, seed: SupportsIndex,
             stream: SupportsIndex | None = None) -> Array:
        """Fill the output with ``dist`` from ``seed`` and the call's stream; return it."""
        return super().draw(dist, seed, self.stream if stream is None else stream)


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
        :mod:`fastinit.random`.
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
    ...         return request.write_whole(values)
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

    #: The dtypes a call accepts: "float", "inexact" or "any" (``fastinit._dtypes.resolve``).
    dtype_kind: ClassVar[DTypeKind] = "float"
    #: True when a region costs time and memory of the region alone (``index=``): the
    #: value of each element is computed on its own. False for initializers computed
    #: whole (a factorisation, a permutation) and, by default, for custom ones.
    elementwise: ClassVar[bool] = False

    def __call__(self, shape: ShapeLike | None = None, dtype: npt.DTypeLike | None = None, *,
                 out: Output | None = None, backend: Backend = "auto",
                 device: DeviceLike = None, stream: SupportsIndex = 0,
                 index: Index | None = None, offset: SupportsIndex = 0) -> Array:
        """Values of ``shape`` and ``dtype`` (see the class docstring for the keywords)."""
        request = Request(shape, dtype, kind=self.dtype_kind, out=out, backend=backend,
                          device=device, stream=stream, index=index, offset=offset)
        return self._drawing(request).generate(request)

    def _drawing(self, request: Request | None) -> Initializer:
        """The initializer that produces ``request`` (None: only checks one): itself,
        except under a Keras ``SeedGenerator`` (:class:`SeededInitializer`)."""
        return self

    def check(self, shape: ShapeLike, dtype: npt.DTypeLike | None = None) -> None:
        """Raise the TypeError or ValueError that a call with ``shape`` and ``dtype`` would
        raise, computing nothing (a checkpoint checks every tensor before writing any)."""
        init = self._drawing(None)
        if init.elementwise and len(Request(shape, dtype, kind=init.dtype_kind).shape):
            # An empty region: the parameters are checked for the dtype, no value is made.
            init.generate(Request(shape, dtype, kind=init.dtype_kind, index=(slice(0, 0),)))
        else:
            init.validate(Request(shape, dtype, kind=init.dtype_kind))

    def validate(self, request: Request) -> None:
        """Check that this initializer can produce ``request`` (global initializers check
        their shape here; :meth:`check` calls it)."""

    def generate(self, request: Request) -> Array:
        """Produce the values a :class:`Request` asks for (implemented by subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement generate(request) "
                                  "or __call__(shape, dtype=None)")

    def get_config(self) -> Config:
        """The initializer's configuration: a JSON-serializable dict of constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """An initializer from the output of :meth:`get_config`."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict. Received: config={config!r}")
        return cls(**config)

    def clone(self) -> Self:
        """A new initializer with the same configuration (an unseeded one draws a new seed)."""
        return self.__class__.from_config(self.get_config())

    def with_seed(self, seed: Seed) -> Initializer:
        """This initializer drawing from ``seed`` (the seed rule of :func:`resolve_seed`).

        The one way callers (front ends, checkpoints, Dask) give an initializer
        their seed; one that draws nothing returns itself.
        """
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k != "stream_version")   # a config entry, not an argument
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and self.get_config() == other.get_config()
                and getattr(self, "seed", None) == getattr(other, "seed", None))

    def __hash__(self) -> int:
        return hash(type(self).__name__)


class SeededInitializer(Initializer):
    """An initializer that draws random values: holds ``seed`` by :func:`resolve_seed`.

    ``seed`` is the value in effect: an int, or a Keras ``SeedGenerator`` (each
    call then draws a seed from it, see :func:`resolve_seed`). ``get_config()``
    keeps the value given (``None`` for an unseeded initializer, so that a clone
    draws anew; a ``SeedGenerator`` as Keras serializes it) and
    ``"stream_version"``, the version of the stream the values come from
    (``fastinit.STREAM_VERSION``): :meth:`from_config` refuses a config of
    another version, whose values would differ, and Keras' own classes refuse the
    unknown key, so a config of fastinit's ``GlorotUniform`` never rebuilds Keras'
    ``GlorotUniform`` (other values) without a word.
    """

    seed: int | SeedGeneratorLike
    _init_seed: int | SeedGeneratorLike | None

    def __init__(self, seed: InitializerSeed = None) -> None:
        generator = _keras.seed_generator(seed)
        if generator is not None:
            self._init_seed = self.seed = generator
            return
        if seed is not None and not hasattr(type(seed), "__index__"):
            raise ValueError("seed must be an integer in [0, 2**64), None or a "
                             f"keras.random.SeedGenerator. Received: seed={shown(seed)}")
        seed = cast("Seed", seed)   # not a SeedGenerator: the seed rule's
        self._init_seed = None if seed is None else resolve_seed(seed)
        self.seed = resolve_seed(seed)

    def _seed_generator(self) -> SeedGeneratorLike | None:
        return None if isinstance(self.seed, int) else self.seed

    @property
    def _call_seed(self) -> int:
        """The int seed that :meth:`generate` draws from (under a ``SeedGenerator`` a call
        generates with :meth:`with_seed`'s copy, whose seed is an int)."""
        return cast(int, self.seed)

    def _drawing(self, request: Request | None) -> Initializer:
        generator = self._seed_generator()
        if generator is None:
            return self
        if request is None:   # a check: the parameters only; the generator does not advance
            return self.with_seed(0)
        if request.index is not None or request.offset:
            raise ValueError("An initializer seeded with a keras.random.SeedGenerator draws "
                             "a new seed at each call, so regions of one tensor would not "
                             "fit together: give an integer seed. Received: "
                             f"seed={generator!r}, index={request.index!r}, "
                             f"offset={request.offset!r}")
        return self.with_seed(_keras.draw_seed(generator))

    def _seed_config(self) -> Any:
        """The ``seed`` of :meth:`get_config`: as given, a ``SeedGenerator`` serialized."""
        generator = self._seed_generator()
        return self._init_seed if generator is None else _keras.serialize_seed(generator)

    def get_config(self) -> Config:
        return {"seed": self._seed_config(), "stream_version": STREAM_VERSION}

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """An initializer from :meth:`get_config`'s output (or a config without
        ``"stream_version"``, such as Keras' own)."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict. Received: config={config!r}")
        config = dict(config)
        version = config.pop("stream_version", STREAM_VERSION)
        if type(version) is not int or version != STREAM_VERSION:
            raise ValueError(f"This config is of fastinit's random stream version "
                             f"{shown(version)}; this fastinit draws from version "
                             f"{STREAM_VERSION}, whose values differ. "
                             f"Received: stream_version={shown(version)}")
        return cls(**config)

    def with_seed(self, seed: Seed) -> Self:
        return type(self).from_config({**self.get_config(), "seed": resolve_seed(seed)})


def call_initializer(initializer: Callable[..., Any], shape: ShapeLike | None = None,
                     dtype: npt.DTypeLike | None = None, *, out: Output | None = None,
                     **kw: Any) -> Array:
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
    return request.write_whole(values)


def _takes_keywords(initializer: Initializer) -> bool:
    call = type(initializer).__call__
    if call is Initializer.__call__:
        return True
    params = inspect.signature(call).parameters
    return "out" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
