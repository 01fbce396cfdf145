"""JAX front end: ``jax.nn.initializers``' protocol, values from fastinit.

Each builder returns an ``init(key, shape, dtype=None, out_sharding=None)``
that returns a ``jax.Array``, as ``jax.nn.initializers`` does. ``key`` is a
JAX PRNG key (typed ``jax.random.key`` or raw ``jax.random.PRNGKey``) or an
int seed. A key becomes a fastinit seed through its key data (the two
32-bit words of a threefry key, high word first; longer keys are mixed down
with Philox), so one key gives the same values on every backend, device
count and sharding: they do not depend on JAX's PRNG implementation. The
seed rule is :func:`fastinit.initializers.base.resolve_seed`.

The values are produced on the host by NumPy/Numba and transferred. Inside
``jax.jit`` (a traced key) they come through ``jax.pure_callback``, so
initializers work under ``jit`` too. With ``out_sharding`` set to a
``jax.sharding.Sharding`` each addressable shard is generated on its own
(``index=``), and equals that part of the unsharded array.

Names follow ``jax.nn.initializers``: ``zeros``, ``ones``, ``constant``,
``uniform``, ``normal``, ``truncated_normal`` (with ``lower``/``upper``),
``variance_scaling``, ``glorot_*`` / ``xavier_*``, ``he_*`` / ``kaiming_*``,
``lecun_*``, ``orthogonal``, ``delta_orthogonal``. As in JAX,
``variance_scaling``'s ``"normal"`` is the *untruncated* normal (Keras'
``"normal"`` means truncated), and fans use ``in_axis``/``out_axis``/
``batch_axis`` (:func:`fastinit._fans.jax_fans`). Complex dtypes work for
the variance-scaling family and ``normal``.

JAX is imported on first use, not with this module.

Examples
--------
>>> import jax
>>> import fastinit.jax as fj
>>> init = fj.glorot_uniform()
>>> w = init(jax.random.key(0), (3, 4))
>>> type(w).__name__, w.shape, w.dtype
('ArrayImpl', (3, 4), dtype('float32'))
>>> bool((init(42, (3, 4)) == init(42, (3, 4))).all())
True
>>> bool((jax.jit(init, static_argnums=1)(jax.random.key(0), (3, 4)) == w).all())
True
"""

import numpy as np

from . import random as fr
from ._checks import check_shape
from .initializers.base import Initializer, resolve_seed
from .initializers.constant import Constant, Ones, Zeros
from .initializers.random_initializers import (
    RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
)
from .initializers.structured import DeltaOrthogonal, Orthogonal

__all__ = [
    "Initializer", "key_to_seed", "wrap", "zeros", "ones", "constant", "uniform", "normal",
    "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
    "xavier_uniform", "xavier_normal", "lecun_uniform", "lecun_normal", "he_uniform",
    "he_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "delta_orthogonal",
]


def _jax():
    import jax
    return jax


def _default_dtype(dtype):
    jax = _jax()
    if dtype is None:
        return jax.dtypes.canonicalize_dtype(float)
    return jax.dtypes.canonicalize_dtype(dtype)


def key_to_seed(key):
    """The fastinit seed of a JAX key (or an int seed, returned as it is).

    Examples
    --------
    >>> import jax
    >>> key_to_seed(jax.random.PRNGKey(5)) == key_to_seed(jax.random.key(5))
    True
    >>> key_to_seed(7)
    7
    """
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return resolve_seed(int(key))
    jax = _jax()
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError("fastinit.jax takes one key (map over a batch of keys with "
                             f"jax.vmap). Received: a key array of shape {key.shape}")
        key = jax.random.key_data(key)
    words = np.asarray(key)
    if words.ndim != 1:
        raise ValueError("fastinit.jax takes one key (map over a batch of keys with "
                         f"jax.vmap). Received: key data of shape {words.shape}")
    return _words_to_seed(words)


def _words_to_seed(words):
    words = np.asarray(words)
    if words.dtype.kind not in "ui" or words.size < 2:
        raise TypeError("key must be a JAX PRNG key or an int seed. "
                        f"Received: key with dtype {words.dtype} and shape {words.shape}")
    words = words.astype(np.uint32).ravel()
    if words.size != 2:
        # Mix longer key data down to two words, four words at a time.
        acc = np.zeros(2, dtype=np.uint32)
        padded = np.concatenate([words, np.zeros(-words.size % 4, dtype=np.uint32)])
        for block in padded.reshape(-1, 4):
            acc = fr.philox4x32_10(block, acc)[:2]
        words = acc
    return (int(words[0]) << 32) | int(words[1])


def wrap(initializer, dtype=None):
    """A JAX-protocol ``init(key, shape, dtype=None, out_sharding=None)`` from a fastinit initializer.

    Parameters
    ----------
    initializer : Initializer or callable
        A fastinit initializer whose seed is replaced by the key's at each call
        (seeded classes are rebuilt from their config), or any
        :func:`fastinit.initializers.get` identifier.
    dtype : optional
        The default dtype of the calls.

    Examples
    --------
    >>> import jax
    >>> import fastinit.initializers as fi
    >>> init = wrap(fi.HeNormal())
    >>> init(jax.random.key(1), (2, 2)).dtype
    dtype('float32')
    """
    from .initializers.registry import get

    initializer = get(initializer)
    default_dtype = dtype

    def make(seed):
        if isinstance(initializer, Initializer):
            return initializer.with_seed(seed)
        return initializer

    def host(seed, shape, dtype, index=None):
        init = make(seed)
        if isinstance(init, Initializer):
            return init(shape, dtype, index=index)
        values = np.asarray(init(shape, dtype))
        return values if index is None else values[index]

    def init(key, shape, dtype=default_dtype, out_sharding=None):
        jax = _jax()
        shape = check_shape(shape)
        dtype = np.dtype(_default_dtype(dtype))
        if isinstance(key, jax.core.Tracer) or (
                isinstance(key, jax.Array) and not key.is_fully_addressable):
            return _traced(jax, host, key, shape, dtype, out_sharding)
        seed = key_to_seed(key)
        if out_sharding is not None:
            sharding = _sharding(jax, out_sharding)
            return jax.make_array_from_callback(
                shape, sharding, lambda index: host(seed, shape, dtype, index))
        return jax.numpy.asarray(host(seed, shape, dtype))

    init.initializer = initializer
    return init


def _sharding(jax, out_sharding):
    if isinstance(out_sharding, jax.sharding.Sharding):
        return out_sharding
    raise NotImplementedError("fastinit.jax takes a jax.sharding.Sharding as out_sharding "
                              f"(not a bare PartitionSpec). Received: out_sharding={out_sharding!r}")


def _traced(jax, host, key, shape, dtype, out_sharding):
    """Values for a traced key: a host callback (works under ``jit`` and ``vmap``)."""
    if out_sharding is not None:
        raise NotImplementedError("out_sharding is not supported under jax.jit. "
                                  f"Received: out_sharding={out_sharding!r}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)

    def callback(words):
        return np.asarray(host(_words_to_seed(words), shape, dtype))

    result = jax.ShapeDtypeStruct(shape, dtype)
    return jax.pure_callback(callback, result, key, vmap_method="sequential")


# -- the builders (jax.nn.initializers names) ---------------------------------------------


def zeros(key, shape, dtype=None, out_sharding=None):
    """An array of zeros (``jax.nn.initializers.zeros``); ``key`` is ignored.

    Examples
    --------
    >>> zeros(None, (2, 3))
    Array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    return wrap(Zeros())(0, shape, dtype, out_sharding)


def ones(key, shape, dtype=None, out_sharding=None):
    """An array of ones (``jax.nn.initializers.ones``); ``key`` is ignored."""
    return wrap(Ones())(0, shape, dtype, out_sharding)


def constant(value, dtype=None):
    """An initializer of arrays full of ``value`` (``jax.nn.initializers.constant``).

    Examples
    --------
    >>> constant(-7)(None, (2, 3))
    Array([[-7., -7., -7.],
           [-7., -7., -7.]], dtype=float32)
    """
    if np.ndim(value) == 0:
        inner = wrap(Constant(value.item() if hasattr(value, "item") else value), dtype)
        return lambda key, shape, dtype=dtype, out_sharding=None: inner(
            0, shape, dtype, out_sharding)

    def init(key, shape, dtype=dtype, out_sharding=None):
        jnp = _jax().numpy
        return jnp.full(shape, value, dtype=_default_dtype(dtype))
    return init


def uniform(scale=1e-2, dtype=None):
    """Uniform values on ``[0, scale)`` (``jax.nn.initializers.uniform``).

    Examples
    --------
    >>> x = uniform(10.0)(0, (1000,))
    >>> bool(x.min() >= 0 and x.max() < 10)
    True
    """
    return wrap(RandomUniform(0.0, float(scale)), dtype)


def normal(stddev=1e-2, dtype=None):
    """Normal values with mean 0 and std ``stddev`` (``jax.nn.initializers.normal``)."""
    return wrap(RandomNormal(0.0, float(stddev)), dtype)


def truncated_normal(stddev=1e-2, dtype=None, lower=-2.0, upper=2.0):
    """``stddev`` times a standard normal truncated to ``[lower, upper]`` (``jax.nn.initializers.truncated_normal``).

    No variance correction is applied (as in JAX).

    Examples
    --------
    >>> x = truncated_normal(1.0, lower=-1.0, upper=3.0)(0, (10_000,))
    >>> bool(x.min() >= -1.0 and x.max() <= 3.0)
    True
    """
    return wrap(TruncatedNormal(0.0, float(stddev), lower=lower, upper=upper), dtype)


def variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(),
                     dtype=None):
    """JAX's ``variance_scaling``: variance ``scale / n`` with fans from ``in_axis``/``out_axis``/``batch_axis``.

    ``distribution`` is ``"truncated_normal"``, ``"normal"`` (untruncated, JAX's
    meaning) or ``"uniform"``; ``mode`` one of ``"fan_in"``, ``"fan_out"``,
    ``"fan_avg"``, ``"fan_geo_avg"``. See
    :class:`fastinit.initializers.VarianceScaling`.

    Examples
    --------
    >>> init = variance_scaling(2.0, "fan_in", "normal", in_axis=0, out_axis=-1)
    >>> init.initializer.parameters((256, 128))["stddev"] == (2.0 / 256) ** 0.5
    True
    """
    if distribution == "normal":
        distribution = "untruncated_normal"
    return wrap(VarianceScaling(scale, mode, distribution, in_axis=in_axis, out_axis=out_axis,
                                batch_axis=batch_axis), dtype)


def glorot_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(1.0, "fan_avg", "uniform")``."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(1.0, "fan_avg", "truncated_normal")``."""
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


def lecun_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(1.0, "fan_in", "uniform")``."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(1.0, "fan_in", "truncated_normal")``."""
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


def he_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(2.0, "fan_in", "uniform")``."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """``variance_scaling(2.0, "fan_in", "truncated_normal")``."""
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(scale=1.0, column_axis=-1, dtype=None):
    """A (semi-)orthogonal matrix times ``scale``, columns along ``column_axis`` (``jax.nn.initializers.orthogonal``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> w = orthogonal()(0, (3, 5))
    >>> bool(jnp.allclose(w @ w.T, jnp.eye(3), atol=1e-6))
    True
    """
    return wrap(Orthogonal(float(scale), column_axis=column_axis), dtype)


def delta_orthogonal(scale=1.0, column_axis=-1, dtype=None):
    """A delta-orthogonal convolution kernel (``jax.nn.initializers.delta_orthogonal``)."""
    return wrap(DeltaOrthogonal(float(scale), column_axis=column_axis), dtype)
