"""Words to floats in jax.numpy: the maps of :mod:`fastinit.stream`, guarded.

Each function mirrors the one of the same name in ``fastinit/stream.py``
(``docs/stream.md`` section 6), operation for operation and in the same
order, on uint32 arrays. ``ops`` is the element's :class:`._guards.IEEE`: its
``mul`` marks every product that feeds an addition, ``div`` every division,
``zero_minus`` every ``0.0 - x``. Integer steps are the stream's own.

The lane functions give each element its value from the four words of its
block: lane ``j`` of the f32 family reads word ``j`` (Box-Muller: the pair
``{0, 1}`` or ``{2, 3}``), lane ``j`` of the f64 family the pair
``(w[2j], w[2j + 1])`` (Box-Muller: all four).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ... import stream as s

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    import jax
    import numpy.typing as npt

    from ._guards import IEEE
    from ._philox import Words

__all__ = ["uniform_lane", "log_lane", "normal_lane"]

_U32, _U64 = np.uint32, np.uint64


def _jax() -> tuple[ModuleType, ModuleType]:
    import jax.numpy as jnp
    from jax import lax
    return jnp, lax


def _bits(x: jax.Array, dtype: npt.DTypeLike) -> jax.Array:
    return _jax()[1].bitcast_convert_type(x, dtype)


# -- f32 family -----------------------------------------------------------------------


def uniform_f32(w: jax.Array) -> jax.Array:
    jnp, _ = _jax()
    return (w >> _U32(8)).astype(jnp.float32) * s._F32_2M24


def log_of_uniform_f32(w: jax.Array, ops: IEEE) -> jax.Array:
    jnp, _ = _jax()
    bits = _bits((w | _U32(1)).astype(jnp.float32), jnp.uint32)
    mantissa = (bits & s._U32_MANT23) | s._U32_ONE_F32
    big = (mantissa > s._U32_SQRT2_BITS).astype(jnp.uint32)
    f = _bits(mantissa - (big << _U32(23)), jnp.float32)
    e = (bits >> _U32(23)).astype(jnp.int32) - s._I32_BIAS_PLUS_32 + big.astype(jnp.int32)
    t = f - s._F32_ONE
    x = ops.div(t, s._F32_TWO + t)
    z = x * x
    w2 = z * z
    lg1, lg2, lg3, lg4 = s._F32_LG
    r = ops.mul(w2, lg2 + ops.mul(w2, lg4)) + ops.mul(z, lg1 + ops.mul(w2, lg3))
    hfsq = ops.mul(s._F32_HALF * t, t)
    q = e.astype(jnp.float32)
    return (ops.mul(x, hfsq + r) + ops.mul(q, s._F32_LN2_LO) - hfsq + t
            + ops.mul(q, s._F32_LN2_HI))


def _flip_sign(x: jax.Array, flip: jax.Array, uint: type[np.unsignedinteger[Any]],
               top: np.unsignedinteger[Any]) -> jax.Array:
    """``x`` with its sign bit flipped where ``flip`` (0 or 4) is 4."""
    ftype = x.dtype
    return _bits(_bits(x, uint) ^ (flip.astype(uint) << top), ftype)


def _octant(octant: jax.Array, want_sin: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Which polynomial lane ``want_sin`` needs in ``octant``, and whether to negate it:
    ``stream._octant_cos_sin_f32``'s table, for one of its two outputs."""
    jnp, _ = _jax()
    swap = ((octant + _U32(1)) >> _U32(1)) & _U32(1)          # octants 1, 2, 5, 6
    use_sin = swap != want_sin.astype(jnp.uint32)              # cos t is sin x when swapped
    flip = jnp.where(want_sin, octant & _U32(4), (octant + _U32(2)) & _U32(4))
    return use_sin, flip


def angle_f32(w: jax.Array, want_sin: jax.Array, ops: IEEE) -> jax.Array:
    """``cos t`` or (where ``want_sin``) ``sin t`` of ``stream.cos_sin_f32(w)``: the same
    operations, one polynomial per element (its coefficients selected)."""
    jnp, _ = _jax()
    octant = w >> _U32(29)
    odd = octant & _U32(1)
    frac = (((w >> _U32(5)) & s._U32_FRAC24) ^ (odd * s._U32_FRAC24)) + odd
    x = ops.mul(frac.astype(jnp.float32) * s._F32_2M24, s._F32_PIO4)
    use_sin, flip = _octant(octant, want_sin)
    z = x * x
    a3, a2, a1 = (jnp.where(use_sin, sc, cc) for sc, cc in zip(s._F32_SIN, s._F32_COS))
    t = (ops.mul(ops.mul(a3, z) + a2, z) + a1) * z
    sin = ops.mul(t, x) + x
    cos = (ops.mul(t, z) - ops.mul(s._F32_HALF, z)) + s._F32_ONE
    return _flip_sign(jnp.where(use_sin, sin, cos), flip, _U32, _U32(29))


# -- f64 family -----------------------------------------------------------------------


def uniform_f64(hi: jax.Array, lo: jax.Array) -> jax.Array:
    jnp, _ = _jax()
    m = ((hi >> _U32(5)).astype(jnp.uint64) << _U64(26)) | (lo >> _U32(6)).astype(jnp.uint64)
    return m.astype(jnp.int64).astype(jnp.float64) * s._F64_2M53


def log_of_uniform_f64(hi: jax.Array, lo: jax.Array, ops: IEEE) -> jax.Array:
    jnp, _ = _jax()
    m = (((hi & s._U32_LOW31).astype(jnp.uint64) << _U64(32)) | lo.astype(jnp.uint64)
         | _U64(1))
    bits = _bits(m.astype(jnp.int64).astype(jnp.float64), jnp.uint64)
    mantissa = (bits & s._U64_MANT52) | s._U64_ONE_F64
    big = (mantissa > s._U64_SQRT2_BITS).astype(jnp.uint64)
    f = _bits(mantissa - (big << _U64(52)), jnp.float64)
    e = (bits >> _U64(52)).astype(jnp.int64) - s._I64_BIAS_PLUS_63 + big.astype(jnp.int64)
    t = f - s._F64_ONE
    x = ops.div(t, s._F64_TWO + t)
    z = x * x
    w2 = z * z
    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = s._F64_LG
    r = (ops.mul(w2, lg2 + ops.mul(w2, lg4 + ops.mul(w2, lg6)))
         + ops.mul(z, lg1 + ops.mul(w2, lg3 + ops.mul(w2, lg5 + ops.mul(w2, lg7)))))
    hfsq = ops.mul(s._F64_HALF * t, t)
    q = e.astype(jnp.float64)
    return (ops.mul(x, hfsq + r) + ops.mul(q, s._F64_LN2_LO) - hfsq + t
            + ops.mul(q, s._F64_LN2_HI))


def angle_f64(hi: jax.Array, lo: jax.Array, want_sin: jax.Array, ops: IEEE) -> jax.Array:
    """:func:`angle_f32` for ``stream.cos_sin_f64(hi, lo)``."""
    jnp, _ = _jax()
    octant = hi >> _U32(29)
    odd = (octant & _U32(1)).astype(jnp.uint64)
    frac = ((hi & s._U32_FRAC29).astype(jnp.uint64) << _U64(21)) | (lo >> _U32(11)).astype(
        jnp.uint64)
    frac = (frac ^ (odd * s._U64_FRAC50)) + odd
    x = ops.mul(frac.astype(jnp.int64).astype(jnp.float64) * s._F64_2M50, s._F64_PIO4)
    use_sin, flip = _octant(octant, want_sin)
    z = x * x
    coefficients = [jnp.where(use_sin, sc, cc) for sc, cc in zip(s._F64_SIN, s._F64_COS)]
    h = coefficients[0]
    for c in coefficients[1:]:
        h = ops.mul(h, z) + c
    sin = x + ops.mul(x * z, h)
    cos = (s._F64_ONE - ops.mul(s._F64_HALF, z)) + ops.mul(z * z, h)
    return _flip_sign(jnp.where(use_sin, sin, cos), flip, _U64, _U64(61))


# -- one element's value from the words of its block ----------------------------------------


def _select(lane: jax.Array, options: Sequence[jax.Array]) -> jax.Array:
    """``options[lane]`` per element."""
    jnp, _ = _jax()
    out = options[-1]
    for j in range(len(options) - 2, -1, -1):
        out = jnp.where(lane == j, options[j], out)
    return out


def _pair(words: Words, lane: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The f64 family's ``(hi, lo)`` word pair of ``lane`` (0 or 1)."""
    w0, w1, w2, w3 = words
    return _select(lane, (w0, w2)), _select(lane, (w1, w3))


def uniform_lane(words: Words, lane: jax.Array, wide: bool) -> jax.Array:
    """Uniform on ``[0, 1)`` of each element's lane (section 6.1)."""
    if wide:
        return uniform_f64(*_pair(words, lane))
    return uniform_f32(_select(lane, words))


def log_lane(words: Words, lane: jax.Array, wide: bool, ops: IEEE) -> jax.Array:
    """Log of a uniform of each element's lane (section 6.2)."""
    if wide:
        return log_of_uniform_f64(*_pair(words, lane), ops)
    return log_of_uniform_f32(_select(lane, words), ops)


def normal_lane(words: Words, lane: jax.Array, wide: bool, ops: IEEE) -> jax.Array:
    """The Box-Muller value of each element's lane (section 6.4)."""
    jnp, _ = _jax()
    w0, w1, w2, w3 = words
    want_sin = (lane & _U32(1)) == 1
    if wide:
        log_u = log_of_uniform_f64(w0, w1, ops)
        trig = angle_f64(w2, w3, want_sin, ops)
        two = s._F64_TWO
    else:
        first = lane < _U32(2)
        log_u = log_of_uniform_f32(jnp.where(first, w0, w2), ops)
        trig = angle_f32(jnp.where(first, w1, w3), want_sin, ops)
        two = s._F32_TWO
    radius = jnp.sqrt(ops.zero_minus(two * log_u))  # 0 - 2 ln u: +0.0 when ln u is 0
    return radius * trig
