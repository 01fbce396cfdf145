"""The stream's element math for compiled code, and the rounding to 16-bit floats.

:mod:`fastinit.stream` is written once for NumPy arrays; importing this module
registers its functions as Numba jitables and gives its array primitives (bit
casts) scalar implementations, so that kernels compile the very same
definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import types
from numba.extending import lower_builtin, type_callable

from ... import stream
from ._jit import jitable

if TYPE_CHECKING:
    from collections.abc import Callable

    #: The key schedule as the kernels take it: 2 * PHILOX_ROUNDS words as 64-bit integers.
    Keys = tuple[np.uint64, ...]


def _bitcast(fn: Callable[..., Any], src: Any, dst: Any) -> None:
    """Implement ``fn`` (a bit cast of :mod:`fastinit.stream`) for scalars: convert the
    argument to ``src`` as ``src(x)`` would, then reinterpret its bits as ``dst``.

    Lowered in place, like an operator: no function of its own to compile.
    """
    @type_callable(fn)
    def typer(context: Any) -> Callable[[Any], Any]:
        def typer(x: Any) -> Any:
            if isinstance(x, (types.Integer, types.Float)):
                return dst
            return None
        return typer

    @lower_builtin(fn, types.Number)
    def lower(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        value = context.cast(builder, args[0], sig.args[0], src)
        return builder.bitcast(value, context.get_value_type(dst))


_bitcast(stream.f32_bits, types.float32, types.uint32)
_bitcast(stream.bits_f32, types.uint32, types.float32)
_bitcast(stream.f64_bits, types.float64, types.uint64)
_bitcast(stream.bits_f64, types.uint64, types.float64)

for _fn in (stream.philox_block, stream.uniform_f32, stream.log_of_uniform_f32,
            stream._sin_cos_poly_f32, stream._octant_cos_sin_f32, stream.cos_sin_f32,
            stream.box_muller_f32, stream.uniform_f64, stream.log_of_uniform_f64,
            stream._sin_cos_poly_f64, stream._octant_cos_sin_f64, stream.cos_sin_f64,
            stream.box_muller_f64, stream.uniform_lanes_f32, stream.normal_lanes_f32,
            stream.uniform_lanes_f64, stream.normal_lanes_f64,
            stream.truncated_normal_candidate):
    jitable(_fn)


# -- Philox4x32-10 for the kernels ------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@jitable
def philox_words(block: int | np.integer[Any], round_: int | np.integer[Any],
                 keys: Keys) -> tuple[np.uint32, np.uint32, np.uint32, np.uint32]:
    """``stream.philox_block`` of counter ``(lo32(block), hi32(block), round_, 0)``.

    The same rounds as :func:`fastinit.stream.philox_block`, with every word
    held in a 64-bit integer below 2**32 (as ``backends.numpy_backend._words``
    does on arrays): the products need no widening and the words no narrowing,
    so a loop over blocks vectorises into one ``vpmuludq`` per product and
    lane group (AVX2 and AVX-512) instead of the mix of 32- and 64-bit lanes
    that the uint32 form compiles to. ``keys`` holds the key schedule
    (:func:`fastinit.stream.key_schedule`) as 64-bit integers. Tested equal to
    ``stream.philox_block``.
    """
    b = np.uint64(block)
    c0, c1, c2, c3 = b & _MASK32, b >> _SHIFT32, np.uint64(round_), np.uint64(0)
    for r in range(stream.PHILOX_ROUNDS):
        p0 = stream.PHILOX_M0 * c0
        p1 = stream.PHILOX_M1 * c2
        # masking the keys tells LLVM that every word stays below 2**32
        k0, k1 = np.uint64(keys[2 * r]) & _MASK32, np.uint64(keys[2 * r + 1]) & _MASK32
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32)
    return np.uint32(c0), np.uint32(c1), np.uint32(c2), np.uint32(c3)


# -- rounding float32 to 16-bit formats (round to nearest even) ----------------


@jitable
def float16_bits(x: np.float32) -> np.uint16:
    """IEEE half bits of float32 ``x`` (F. Giesen's float_to_half_fast3_rtne)."""
    b = stream.f32_bits(x)
    sign = b & np.uint32(0x80000000)
    b = np.uint32(b ^ sign)
    if b >= np.uint32(0x47800000):  # >= 65536 (rounds to inf), inf, nan
        o = np.uint32(0x7E00) if b > np.uint32(0x7F800000) else np.uint32(0x7C00)
    elif b < np.uint32(0x38800000):  # below the smallest normal half: let the FPU round
        o = np.uint32(stream.f32_bits(stream.bits_f32(b) + np.float32(0.5))
                      - np.uint32(0x3F000000))
    else:
        odd = (b >> np.uint32(13)) & np.uint32(1)
        o = np.uint32((b + np.uint32(0xC8000FFF) + odd) >> np.uint32(13))
    return np.uint16(o | (sign >> np.uint32(16)))


@jitable
def bfloat16_bits(x: np.float32) -> np.uint16:
    b = stream.f32_bits(x)
    return np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1)))
                     >> np.uint32(16))
