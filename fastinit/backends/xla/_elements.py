"""One element's value from its stream position: the stream's sections 7 and 8 under XLA.

Every function here is elementwise over arrays of positions ``(hi, lo)``
(:func:`._philox.positions`) and key words ``(k0, k1)`` that broadcast
together: XLA fuses them into one loop over the output, with no temporary,
and partitions them as it partitions any elementwise operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ... import stream
from . import _maps
from ._guards import IEEE
from ._philox import block_and_lane, philox

if TYPE_CHECKING:
    import jax

    from .. import Distribution
    from ._philox import Key, Position, Words

__all__ = ["working_dtype", "lanes", "words", "uniform_or_normal", "candidate",
           "output_stage"]


def working_dtype(dist: Distribution) -> np.dtype[Any]:
    return np.dtype(np.float64 if dist.wide else np.float32)


def lanes(dist: Distribution) -> int:
    return stream.LANES_F64 if dist.wide else stream.LANES_F32


def words(key: Key, position: Position, dist: Distribution,
          round_: int | jax.Array) -> tuple[Words, jax.Array, IEEE]:
    """``(words, lane, ops)`` of round ``round_`` of each element's block: the four Philox
    words, the element's lane, and its guarded arithmetic (:class:`._guards.IEEE`)."""
    hi, lo = position
    block_lo, block_hi, lane = block_and_lane(hi, lo, lanes(dist))
    block_words, zero = philox((block_lo, block_hi, round_, 0), key)
    return block_words, lane, IEEE(zero, working_dtype(dist))


def uniform_or_normal(dist: Distribution, key: Key,
                      position: Position) -> tuple[jax.Array, IEEE]:
    """The standardized value ``z`` (sections 7.1, 7.2) and the element's arithmetic."""
    block_words, lane, ops = words(key, position, dist, 0)
    if dist.kind == stream.UNIFORM:
        return _maps.uniform_lane(block_words, lane, dist.wide), ops
    return _maps.normal_lane(block_words, lane, dist.wide, ops), ops


def candidate(dist: Distribution, key: Key, position: Position,
              attempt: int | jax.Array) -> tuple[jax.Array, jax.Array, IEEE]:
    """``(z, ok, ops)`` of truncated-normal attempt ``attempt`` (section 7.3); ``attempt``
    is an int or a uint32 array."""
    import jax.numpy as jnp

    ftype = working_dtype(dist).type
    _, _, _, _, alpha, beta, rate, m2, _ = dist.params()
    first = 2 * attempt if isinstance(attempt, int) else attempt * np.uint32(2)
    a_words, lane, ops = words(key, position, dist, first)
    if dist.proposal == stream.PROPOSAL_NORMAL:
        z = _maps.normal_lane(a_words, lane, dist.wide, ops)
        return z, (z >= alpha) & (z <= beta), ops
    b_words, _, _ = words(key, position, dist, first + 1)
    log_u2 = _maps.log_lane(b_words, lane, dist.wide, ops)
    bound = ftype(-2.0) * log_u2
    if dist.proposal == stream.PROPOSAL_UNIFORM:
        u1 = _maps.uniform_lane(a_words, lane, dist.wide)
        z = alpha + ops.mul(beta - alpha, u1)      # beta - alpha: the stream's rounding
        return z, bound >= ops.mul(z, z) - m2, ops
    log_u1 = _maps.log_lane(a_words, lane, dist.wide, ops)
    z = alpha + ops.div(ops.zero_minus(log_u1), jnp.asarray(rate))
    d = z - rate
    return z, (bound >= d * d) & (z <= beta), ops


def output_stage(dist: Distribution, z: jax.Array, ops: IEEE,
                 dtype: np.dtype[Any]) -> jax.Array:
    """``loc + scale * (sign * z)`` clamped to ``[lo, hi]``, rounded once to ``dtype``
    (section 8)."""
    import jax.numpy as jnp

    loc, scale, lo, hi, _, _, _, _, sign = dist.params()
    if sign != 1:
        z = sign * z
    x = ops.plus(loc, scale * z)
    if not np.isneginf(lo):
        x = jnp.where(x < lo, lo, x)
    if not np.isposinf(hi):
        x = jnp.where(x > hi, hi, x)
    return x.astype(dtype)
