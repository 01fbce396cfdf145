"""JAX front end: ``jax.nn.initializers``' protocol, values from the fastinit stream.

Each builder returns an ``init(key, shape, dtype=None, out_sharding=None)``
that returns a ``jax.Array``. ``key`` is a JAX PRNG key (typed or raw,
concrete or traced) or an int seed; it becomes a fastinit seed through its key
data, in the graph (:func:`key_to_seed`), whatever JAX's PRNG implementation.

The values are computed by XLA where the array lives (:mod:`fastinit.backends.xla`),
eagerly or under ``jit``/``vmap``, bit for bit those of the NumPy, Numba and
CUDA backends (XLA:CPU flushes subnormal outputs, below 1.18e-38: the one
exception). With ``out_sharding`` (a ``jax.sharding.Sharding``), or under
``jax.jit(..., out_shardings=...)``, each device computes only its shard.
Orthogonal and delta-orthogonal matrices are a QR of the stream's Gaussian
matrix in the graph, equal to ``Orthogonal(method="qr")``'s to rounding.
Complex dtypes and other initializers given to :func:`wrap` run on the host.
See ``docs/jax.md``.

Names follow ``jax.nn.initializers`` (``zeros``, ``ones``, ``constant``,
``uniform``, ``normal``, ``truncated_normal``, ``variance_scaling``,
``glorot_*``/``xavier_*``, ``he_*``/``kaiming_*``, ``lecun_*``,
``orthogonal``, ``delta_orthogonal``); as in JAX, ``variance_scaling``'s
``"normal"`` is the untruncated normal, and fans use ``in_axis``/``out_axis``/
``batch_axis``. JAX is imported on first use, not with this module.

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

from __future__ import annotations

from typing import TYPE_CHECKING, SupportsFloat

import numpy as np

from ..initializers.base import Initializer
from ..initializers.constant import Constant, Ones, Zeros
from ..initializers.random_initializers import (
    RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
)
from ..initializers.structured import DeltaOrthogonal, Orthogonal
from ._keys import key_to_seed
from .._checks import check_shape
from ._wrap import canonical_dtype, check_sharding, wrap

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jax
    import jax.sharding
    import jax.typing
    from jax.typing import DTypeLike

    from .._typing import (
        DistributionName, JaxInitializer, Mode, ShapeLike, WrappedJaxInitializer,
    )

    Axes = int | Sequence[int]

__all__ = [
    "Initializer", "key_to_seed", "wrap", "zeros", "ones", "constant", "uniform", "normal",
    "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
    "xavier_uniform", "xavier_normal", "lecun_uniform", "lecun_normal", "he_uniform",
    "he_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "delta_orthogonal",
]


# -- the builders (jax.nn.initializers names) ---------------------------------------------


def zeros(key: object, shape: ShapeLike, dtype: DTypeLike | None = None,
          out_sharding: jax.sharding.Sharding | None = None) -> jax.Array:
    """An array of zeros (``jax.nn.initializers.zeros``); ``key`` is ignored.

    Examples
    --------
    >>> zeros(None, (2, 3))
    Array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    return wrap(Zeros())(0, shape, dtype, out_sharding)


def ones(key: object, shape: ShapeLike, dtype: DTypeLike | None = None,
         out_sharding: jax.sharding.Sharding | None = None) -> jax.Array:
    """An array of ones (``jax.nn.initializers.ones``); ``key`` is ignored."""
    return wrap(Ones())(0, shape, dtype, out_sharding)


def constant(value: jax.typing.ArrayLike, dtype: DTypeLike | None = None) -> JaxInitializer:
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

    def init(key: object, shape: ShapeLike, dtype: DTypeLike | None = dtype,
             out_sharding: jax.sharding.Sharding | None = None) -> jax.Array:
        import jax
        import jax.numpy as jnp

        checked_shape = check_shape(shape)
        checked_dtype = canonical_dtype(dtype)
        sharding = check_sharding(out_sharding)
        try:
            np.broadcast_shapes(np.shape(value), checked_shape)
        except ValueError:
            raise ValueError(f"constant's value of shape {np.shape(value)} does not broadcast "
                             f"to the shape {checked_shape}. Received: shape={shape!r}") from None
        return jax.jit(lambda v: jnp.full(checked_shape, v, checked_dtype),
                       out_shardings=sharding)(value)
    return init


def uniform(scale: SupportsFloat = 1e-2,
            dtype: DTypeLike | None = None) -> WrappedJaxInitializer[RandomUniform]:
    """Uniform values on ``[0, scale)`` (``jax.nn.initializers.uniform``).

    Examples
    --------
    >>> x = uniform(10.0)(0, (1000,))
    >>> bool(x.min() >= 0 and x.max() < 10)
    True
    """
    return wrap(RandomUniform(0.0, float(scale)), dtype)


def normal(stddev: SupportsFloat = 1e-2,
           dtype: DTypeLike | None = None) -> WrappedJaxInitializer[RandomNormal]:
    """Normal values with mean 0 and std ``stddev`` (``jax.nn.initializers.normal``)."""
    return wrap(RandomNormal(0.0, float(stddev)), dtype)


def truncated_normal(stddev: SupportsFloat = 1e-2, dtype: DTypeLike | None = None,
                     lower: float = -2.0, upper: float = 2.0) -> WrappedJaxInitializer[TruncatedNormal]:
    """``stddev`` times a standard normal truncated to ``[lower, upper]`` (``jax.nn.initializers.truncated_normal``).

    No variance correction is applied (as in JAX).

    Examples
    --------
    >>> x = truncated_normal(1.0, lower=-1.0, upper=3.0)(0, (10_000,))
    >>> bool(x.min() >= -1.0 and x.max() <= 3.0)
    True
    """
    return wrap(TruncatedNormal(0.0, float(stddev), lower=lower, upper=upper), dtype)


def variance_scaling(scale: float, mode: Mode, distribution: DistributionName,
                     in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                     dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
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


def glorot_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                   dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(1.0, "fan_avg", "uniform")``."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                  dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(1.0, "fan_avg", "truncated_normal")``."""
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


def lecun_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                  dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(1.0, "fan_in", "uniform")``."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
                 dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(1.0, "fan_in", "truncated_normal")``."""
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


def he_uniform(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
               dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(2.0, "fan_in", "uniform")``."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (),
              dtype: DTypeLike | None = None) -> WrappedJaxInitializer[VarianceScaling]:
    """``variance_scaling(2.0, "fan_in", "truncated_normal")``."""
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis,
                            dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(scale: SupportsFloat = 1.0, column_axis: int = -1,
               dtype: DTypeLike | None = None) -> WrappedJaxInitializer[Orthogonal]:
    """A (semi-)orthogonal matrix times ``scale``, columns along ``column_axis`` (``jax.nn.initializers.orthogonal``).

    Householder QR of the stream's Gaussian matrix with the sign fix, in the graph
    (``fastinit/jax/_orthogonal.py``); equal to ``fastinit.initializers.Orthogonal(
    scale, column_axis=column_axis, method="qr")`` to rounding.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> w = orthogonal()(0, (3, 5))
    >>> bool(jnp.allclose(w @ w.T, jnp.eye(3), atol=1e-6))
    True
    """
    return wrap(Orthogonal(float(scale), column_axis=column_axis, method="qr"), dtype)


def delta_orthogonal(scale: SupportsFloat = 1.0, column_axis: int = -1,
                     dtype: DTypeLike | None = None) -> WrappedJaxInitializer[DeltaOrthogonal]:
    """A delta-orthogonal convolution kernel (``jax.nn.initializers.delta_orthogonal``): its
    centre tap an :func:`orthogonal` ``(in, out)`` matrix, in the graph."""
    return wrap(DeltaOrthogonal(float(scale), column_axis=column_axis, method="qr"), dtype)
