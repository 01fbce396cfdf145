"""Philox4x32-10, key derivation and element positions in jax.numpy, element by element.

:mod:`fastinit.stream` defines them; this is the same arithmetic on uint32
arrays, written so that XLA fuses it into one loop:

- The high word of a 32x32-bit product comes from 16-bit limbs
  (:func:`mulhilo`): ``lax.mulhi`` does not lower under ``out_shardings``
  ("Unable to convert MHLO to StableHLO"), and 64-bit integers need
  ``jax_enable_x64``.
- Each element computes the Philox block it belongs to on its own (no block
  computed once and reshaped into four lanes: that compiles to a loop ~50x
  slower), from its flat position, so any shard computes its elements only.
- :func:`philox` also returns the element's *opaque zero*
  ``min(h, c) - h`` with ``h = hi(M1 * c)``, ``c`` the element's word ``c2``
  entering the last round: zero for every ``c`` (``h <= c`` as ``M1 < 2**32``),
  but known to no compiler. It must be a word of the last rounds: in the first
  ones, a constant key and a small tensor (known positions) leave ``c`` a range
  that LLVM's range analysis separates from ``h``'s, and it folds the zero; and
  a word of the key alone would be hoisted as a scalar (XLA then multiplies by
  the reciprocal of a divisor). The guards of :mod:`._guards` XOR it into bits.

Positions are 64-bit integers held as ``(hi, lo)`` uint32 pairs; a tensor whose
positions all lie below ``2**32`` needs ``lo`` only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Union, cast

import numpy as np

from ... import stream

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    import jax

    #: A uint32 operand: an array (traced or not), a NumPy uint32, or a Python int
    #: (a constant).
    Word = Union[jax.Array, np.uint32, int]
    #: The four words of a Philox block, and a key's two.
    Words = tuple[jax.Array, jax.Array, jax.Array, jax.Array]
    Key = tuple[jax.Array, ...]   # (k0, k1)
    #: Stream positions ``(hi, lo)``: ``hi`` None when every position is below ``2**32``.
    Position = tuple[Union[jax.Array, None], jax.Array]

__all__ = ["mulhilo", "philox", "derive_key", "grid", "positions", "with_batch_axes",
           "block_and_lane"]

_U32 = np.uint32
_MASK16 = _U32(0xFFFF)
ZERO_ROUND = stream.PHILOX_ROUNDS - 1   # the round whose word c2 makes the opaque zero


def _jnp() -> ModuleType:
    import jax.numpy as jnp
    return jnp


def mulhilo(m: int, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(hi, lo)`` words of the 64-bit product of the constant ``m`` and the words ``c``."""
    m = int(m)
    m_lo, m_hi = _U32(m & 0xFFFF), _U32(m >> 16)
    c_lo, c_hi = c & _MASK16, c >> _U32(16)
    t0, t1 = c_lo * m_lo, c_lo * m_hi
    t2, t3 = c_hi * m_lo, c_hi * m_hi
    middle = (t0 >> _U32(16)) + (t1 & _MASK16) + (t2 & _MASK16)
    hi = t3 + (t1 >> _U32(16)) + (t2 >> _U32(16)) + (middle >> _U32(16))
    return hi, c * _U32(m)


def _word(value: Word) -> jax.Array | np.uint32:
    """A uint32 operand: Python ints become constants, arrays are kept."""
    if isinstance(value, (int, np.integer)):
        return _U32(int(value) & 0xFFFFFFFF)
    return value


def philox(counter: Sequence[Word], key: Sequence[Word]) -> tuple[Words, jax.Array]:
    """Philox4x32-10 of ``counter = (c0, c1, c2, c3)`` under ``key = (k0, k1)``.

    Returns ``((w0, w1, w2, w3), zero)``: the four words and the opaque zero
    (uint32 zeros that no compiler can prove to be zero).
    """
    jnp = _jnp()
    c0, c1, c2, c3 = (jnp.asarray(_word(c), jnp.uint32) for c in counter)
    k0, k1 = (jnp.asarray(_word(k), jnp.uint32) for k in key)
    zero: jax.Array | None = None
    for r in range(stream.PHILOX_ROUNDS):
        hi0, lo0 = mulhilo(stream.PHILOX_M0, c0)
        hi1, lo1 = mulhilo(stream.PHILOX_M1, c2)
        if r == ZERO_ROUND:
            zero = jnp.minimum(hi1, c2) - hi1
        round_k0 = k0 + _U32((r * stream.PHILOX_W0) & 0xFFFFFFFF)
        round_k1 = k1 + _U32((r * stream.PHILOX_W1) & 0xFFFFFFFF)
        c0, c1, c2, c3 = hi1 ^ c1 ^ round_k0, lo1, hi0 ^ c3 ^ round_k1, lo0
    assert zero is not None   # made in round ZERO_ROUND
    return (c0, c1, c2, c3), zero


def derive_key(seed_lo: Word, seed_hi: Word, stream_number: int) -> Key:
    """The data key ``(k0, k1)`` of ``stream.derive_key``, for a seed given as its low and
    high words (arrays or ints) and a stream number (an int)."""
    s = int(stream_number)
    (k0, k1, _, _), _ = philox((s & 0xFFFFFFFF, s >> 32, 0, stream.KEY_TAG), (seed_lo, seed_hi))
    return k0, k1


# -- positions ----------------------------------------------------------------------


def _add64(a: tuple[jax.Array, jax.Array],
           b: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    a_hi, a_lo = a
    b_hi, b_lo = b
    lo = a_lo + b_lo
    return a_hi + b_hi + (lo < a_lo).astype(lo.dtype), lo


def grid(shape: tuple[int, ...], starts: Sequence[Word]) -> list[jax.Array]:
    """The global index along each axis of a ``shape`` block whose corner is ``starts``
    (ints, or uint32 scalars: a shard's corner, known on its device)."""
    jnp = _jnp()
    from jax import lax

    return [lax.broadcasted_iota(jnp.uint32, shape, d) + jnp.asarray(_word(start), jnp.uint32)
            for d, start in enumerate(starts)]


def positions(indices: Sequence[jax.Array], global_shape: tuple[int, ...],
              offset: int) -> Position:
    """Stream positions ``(hi, lo)`` of the elements at ``indices`` (one uint32 array per
    axis) of the C-ordered ``global_shape`` placed at ``offset``. ``hi`` is None when
    every position of the tensor lies below ``2**32``: ``lo`` alone holds them."""
    jnp = _jnp()
    strides = [math.prod(global_shape[d + 1:]) for d in range(len(global_shape))]
    narrow = offset + math.prod(global_shape) <= 1 << 32
    shape = jnp.broadcast_shapes(*(jnp.shape(i) for i in indices)) if indices else ()
    lo = jnp.full(shape, _U32(offset & 0xFFFFFFFF), jnp.uint32)
    hi = None if narrow else jnp.full(shape, _U32(offset >> 32), jnp.uint32)
    for index, size, stride in zip(indices, global_shape, strides):
        if size == 1:
            continue
        if narrow:
            lo = lo + index * _U32(stride)
        else:
            assert hi is not None   # not narrow: the high words are an array
            term_hi, term_lo = mulhilo(stride & 0xFFFFFFFF, index)
            term_hi = term_hi + index * _U32(stride >> 32)
            hi, lo = _add64((hi, lo), (term_hi, term_lo))
    return hi, lo


def with_batch_axes(position: Position, batch_ndim: int) -> Position:
    """Positions with the key's batch axes in front (of size 1): equal ranks, for programs
    traced under ``jax_numpy_rank_promotion="raise"``."""
    return cast("Position", tuple(None if p is None else p.reshape((1,) * batch_ndim + p.shape)
                                  for p in position))


def block_and_lane(hi: jax.Array | None, lo: jax.Array,
                   lanes: int) -> tuple[jax.Array, jax.Array | int, jax.Array]:
    """``(block_lo, block_hi, lane)`` of positions ``(hi, lo)``: ``block = p // lanes``."""
    shift = lanes.bit_length() - 1
    lane = lo & _U32(lanes - 1)
    if hi is None:
        return lo >> _U32(shift), 0, lane
    block_lo = (lo >> _U32(shift)) | (hi << _U32(32 - shift))
    return block_lo, hi >> _U32(shift), lane
