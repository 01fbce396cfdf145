"""``wrap``: a fastinit initializer as a JAX ``init(key, shape, dtype, out_sharding)``.

Where the values are made:

- In the graph, by the XLA backend (:mod:`fastinit.backends.xla`), for every
  initializer whose call draws one distribution of the stream or writes a
  constant (:mod:`._capture`: the random and constant initializers, the variance
  scaling family, real dtypes), and for the orthogonal ones (:mod:`._orthogonal`).
  The key becomes the seed in the graph (:func:`._keys.seed_words`), so a traced
  key works as a concrete one, under ``jit`` and ``vmap``; each distinct call is
  compiled once (a ``jax.jit`` per plan, shape, dtype and sharding, cached).
  With ``out_sharding``, or under ``jit(..., out_shardings=...)``, each device
  computes its own shard only.
- On the host (NumPy/Numba, ``jax.pure_callback`` under tracing), for anything
  else: complex dtypes, structured initializers, custom ones, or
  ``backend="host"``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, cast, overload

import numpy as np

from .._checks import check_shape
from ..initializers.base import Initializer
from ..initializers.structured import DeltaOrthogonal, Orthogonal
from . import _capture, _orthogonal
from ._keys import key_to_seed, seed_words

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    import jax.typing
    from jax import Array as JaxArray   # named so: functions here hold the module as "jax"
    from jax.sharding import Sharding

    from .._typing import JaxKey, Shape, ShapeLike, WrappedJaxInitializer
    from ..backends.xla._guards import Guards
    from ..initializers.base import Request

    InitializerT = TypeVar("InitializerT", bound=Initializer)
    #: What the XLA backend computes for a call: a draw, a fill, or an orthogonal matrix
    #: ``("orthogonal", class, gain, column_axis)``.
    Call = Union[_capture.Draw, _capture.Fill,
                 tuple[str, type[Union[Orthogonal, DeltaOrthogonal]], float, int]]

__all__ = ["wrap", "canonical_dtype", "check_sharding"]

BACKENDS = ("xla", "host")


def _jax() -> ModuleType:
    import jax
    return jax


def canonical_dtype(dtype: jax.typing.DTypeLike | None) -> np.dtype[Any]:
    """``dtype`` as JAX makes it (float32 for float64 without ``jax_enable_x64``)."""
    jax = _jax()
    return np.dtype(jax.dtypes.canonicalize_dtype(float if dtype is None else dtype))


def check_sharding(out_sharding: object) -> Sharding | None:
    """``out_sharding`` if it is None or a ``jax.sharding.Sharding``."""
    jax = _jax()
    if out_sharding is None or isinstance(out_sharding, jax.sharding.Sharding):
        return out_sharding
    raise TypeError("fastinit.jax takes a jax.sharding.Sharding as out_sharding (a "
                    f"NamedSharding for a PartitionSpec). Received: out_sharding={out_sharding!r}")


@overload
def wrap(initializer: InitializerT, dtype: jax.typing.DTypeLike | None = None,
         backend: Literal["xla", "host"] = "xla") -> WrappedJaxInitializer[InitializerT]: ...


@overload
def wrap(initializer: object, dtype: jax.typing.DTypeLike | None = None,
         backend: Literal["xla", "host"] = "xla",
         ) -> WrappedJaxInitializer[Callable[..., Any]]: ...


def wrap(initializer: object, dtype: jax.typing.DTypeLike | None = None,
         backend: Literal["xla", "host"] = "xla",
         ) -> WrappedJaxInitializer[Callable[..., Any]]:
    """A JAX-protocol ``init(key, shape, dtype=None, out_sharding=None)`` from a fastinit initializer.

    Parameters
    ----------
    initializer : Initializer or callable
        A fastinit initializer whose seed is replaced by the key's at each call
        (seeded classes are rebuilt from their config), or any
        :func:`fastinit.initializers.get` identifier.
    dtype : optional
        The default dtype of the calls.
    backend : {"xla", "host"}, default "xla"
        ``"xla"``: computed by XLA where the array lives (initializers it cannot
        express go to the host anyway); ``"host"``: by NumPy/Numba, transferred
        (a host callback under ``jit``). Both give the same values, orthogonal
        matrices aside (equal in distribution, see :mod:`fastinit.jax`). The XLA
        path factorises orthogonal matrices by QR: an ``Orthogonal`` or
        ``DeltaOrthogonal`` with another ``method`` (``"auto"``, ``"stewart"``,
        ``"cholqr2"``) is computed on the host, its own method's matrix.

    Examples
    --------
    >>> import jax
    >>> import fastinit.initializers as fi
    >>> init = wrap(fi.HeNormal())
    >>> init(jax.random.key(1), (2, 2)).dtype
    dtype('float32')
    """
    from ..initializers.registry import get

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}. "
                         f"Received: backend={backend!r}")
    made = get(initializer)
    default_dtype = dtype

    def init(key: JaxKey, shape: ShapeLike,
             dtype: jax.typing.DTypeLike | None = default_dtype,
             out_sharding: Sharding | None = None) -> JaxArray:
        checked_shape = check_shape(shape)
        checked_dtype = canonical_dtype(dtype)
        sharding = check_sharding(out_sharding)
        call = _xla_call(made, checked_shape, checked_dtype) if backend == "xla" else None
        if call is None:
            return _host(made, key, checked_shape, checked_dtype, sharding)
        lo, hi = seed_words(key)
        return _compiled(call, checked_shape, checked_dtype, sharding, _guards())(lo, hi)

    init.initializer = made  # type: ignore[attr-defined]  # the protocol's attribute
    return cast("WrappedJaxInitializer[Callable[..., Any]]", init)


def _guards() -> Guards:
    from ..backends.xla import guards
    return guards.current()


# -- in the graph --------------------------------------------------------------------


def _xla_call(initializer: Callable[..., Any], shape: Shape,
              dtype: np.dtype[Any]) -> Call | None:
    """What the XLA backend computes for ``initializer(shape, dtype)`` (a hashable plan),
    or None: a :class:`._capture.Draw` or ``Fill``, or an orthogonal initializer."""
    if isinstance(initializer, (Orthogonal, DeltaOrthogonal)):
        if initializer.method != "qr":   # Stewart's and CholeskyQR2's matrices: the host's
            return None
        probe = initializer.with_seed(0)
        probe.validate(_request(probe, shape, dtype))
        return ("orthogonal", type(initializer), initializer.gain, initializer.column_axis)
    if not isinstance(initializer, Initializer):
        return None
    return _capture.plan(initializer.with_seed(0), shape, dtype)


def _request(initializer: Initializer, shape: Shape, dtype: np.dtype[Any]) -> Request:
    from ..initializers.base import Request
    return Request(shape, dtype, kind=initializer.dtype_kind)


@functools.lru_cache(maxsize=512)
def _compiled(call: Call, shape: Shape, dtype: np.dtype[Any],
              out_sharding: Sharding | None,
              guards: Guards) -> Callable[[Any, Any], JaxArray]:
    """The jitted ``(seed_lo, seed_hi) -> values`` of one plan (compiled once per call kind)."""
    jax = _jax()

    def values(lo: JaxArray, hi: JaxArray) -> JaxArray:
        from ..backends import xla
        with xla.guards.using(**vars(guards)):
            return _values(call, lo, hi, shape, dtype)

    return jax.jit(values, out_shardings=out_sharding)


def _values(call: Call, lo: JaxArray, hi: JaxArray, shape: Shape,
            dtype: np.dtype[Any]) -> JaxArray:
    import jax.numpy as jnp
    from ..backends import xla

    if isinstance(call, _capture.Fill):
        return jnp.full(shape, call.value, dtype)
    if isinstance(call, _capture.Draw):
        key = xla.derive_key(lo, hi, call.stream)
        return xla.sample(call.dist, key, shape, dtype, call.offset)
    _, kind, gain, column_axis = call
    make: Callable[..., JaxArray] = (
        _orthogonal.delta_orthogonal if kind is DeltaOrthogonal else _orthogonal.orthogonal)
    key = xla.derive_key(lo, hi, 0)
    return make(kind(gain, seed=0, column_axis=column_axis, method="qr"), key, shape, dtype, 0)


# -- on the host -----------------------------------------------------------------------


def _host(initializer: Callable[..., Any], key: JaxKey, shape: Shape, dtype: np.dtype[Any],
          out_sharding: Sharding | None) -> JaxArray:
    """Values made by NumPy/Numba: transferred, or through a host callback for a traced key."""
    jax = _jax()

    def host(seed: int, index: tuple[slice, ...] | None = None) -> np.ndarray[Any, Any]:
        init = initializer.with_seed(seed) if isinstance(initializer, Initializer) else (
            initializer)
        if isinstance(init, Initializer):
            return init(shape, dtype, index=index)
        values = np.asarray(init(shape, dtype))
        return values if index is None else values[index]

    if isinstance(key, jax.core.Tracer) or (
            isinstance(key, jax.Array) and not key.is_fully_addressable):
        if out_sharding is not None:
            raise NotImplementedError("out_sharding is not supported under jax.jit for "
                                      "initializers computed on the host. Received: "
                                      f"out_sharding={out_sharding!r}")
        return _callback(jax, host, key, shape, dtype)
    seed = key_to_seed(key)
    if out_sharding is not None:
        return jax.make_array_from_callback(shape, out_sharding, lambda index: host(seed, index))
    return jax.numpy.asarray(host(seed))


def _callback(jax: ModuleType, host: Callable[[int], np.ndarray[Any, Any]], key: JaxArray,
              shape: Shape, dtype: np.dtype[Any]) -> JaxArray:
    """Values for a traced key: a host callback (works under ``jit`` and ``vmap``)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)

    def callback(words: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(host(key_to_seed(np.asarray(words))))

    result = jax.ShapeDtypeStruct(shape, dtype)
    return jax.pure_callback(callback, result, key, vmap_method="sequential")
