"""The fastinit random stream: the one place that defines it.

Philox4x32-10 keyed by ``(seed, stream)``; element ``i`` of a tensor (flat C
order) takes lane ``i % LANES`` of block ``i // LANES``; integer-exact
bits-to-float mappings, our own log/sin/cos polynomials with only ``+ - * /``
and ``sqrt`` in a fixed order, Box-Muller, and per-element truncated-normal
rejection with a proposal chosen from the bounds alone. ``docs/stream.md`` is
the normative specification (every constant and operation order), and
``docs/reimplementation.py`` a standalone re-implementation from it.

Every backend follows this module and nothing else: the NumPy backend runs
the element functions below on arrays, the Numba kernels compile them, and
the CUDA header mirrors them. Changing any definition here changes values
and requires bumping :data:`STREAM_VERSION`. For a given version, the same
``(seed, stream, shape, parameters, dtype)`` give the same bits on every
backend, thread count, chunking, region and memory layout, across releases.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    # The element functions run on NumPy arrays and on NumPy scalars alike (and, compiled
    # by Numba, on machine scalars): a word or a value is a scalar or an array of its type.
    U32: TypeAlias = Union[np.uint32, npt.NDArray[np.uint32]]
    U64: TypeAlias = Union[np.uint64, npt.NDArray[np.uint64]]
    F32: TypeAlias = Union[np.float32, npt.NDArray[np.float32]]
    F64: TypeAlias = Union[np.float64, npt.NDArray[np.float64]]
    Words: TypeAlias = tuple[U32, U32, U32, U32]
    #: What truncated_normal_plan returns: (proposal, alpha, beta, rate, m2, sign).
    Plan: TypeAlias = tuple[int, float, float, float, float, float]

STREAM_VERSION = 1

# -- Philox4x32-10 ------------------------------------------------------------
PHILOX_ROUNDS = 10
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = 0x9E3779B9  # key bump ("Weyl") constants, golden ratio and sqrt(3) - 1
PHILOX_W1 = 0xBB67AE85
KEY_TAG = 0x6B657930  # word 3 of the key-derivation counter ("key0"); data uses 0

_U64_32 = np.uint64(32)
_U64_MASK32 = np.uint64(0xFFFFFFFF)

# -- layout -------------------------------------------------------------------
LANES_F32 = 4
LANES_F64 = 2
MAX_ATTEMPTS = 256

# Distribution and proposal codes passed to kernels.
UNIFORM, NORMAL, TRUNCATED_NORMAL = 0, 1, 2
PROPOSAL_NORMAL, PROPOSAL_UNIFORM, PROPOSAL_EXPONENTIAL = 0, 1, 2

# -- constants of the float mappings ------------------------------------------
_F32 = np.float32
_F64 = np.float64
_U32_1, _U32_5, _U32_8, _U32_23, _U32_29 = (np.uint32(v) for v in (1, 5, 8, 23, 29))
_U32_2, _U32_4, _U32_7 = np.uint32(2), np.uint32(4), np.uint32(7)
_U32_MANT23 = np.uint32(0x007FFFFF)
_U32_ONE_F32 = np.uint32(0x3F800000)
_U32_FRAC24 = np.uint32(0x00FFFFFF)
_U32_FRAC29 = np.uint32(0x1FFFFFFF)
_U32_LOW31 = np.uint32(0x7FFFFFFF)
_U32_11, _U32_6 = np.uint32(11), np.uint32(6)
_U64_1, _U64_21, _U64_26, _U64_52 = (np.uint64(v) for v in (1, 21, 26, 52))
_U64_MANT52 = np.uint64(0x000FFFFFFFFFFFFF)
_U64_FRAC50 = np.uint64((1 << 50) - 1)
_U64_61 = np.uint64(61)
_U32_ALL, _U64_ALL = np.uint32(0xFFFFFFFF), np.uint64(0xFFFFFFFFFFFFFFFF)
_U64_ONE_F64 = np.uint64(0x3FF0000000000000)
_I32_BIAS_PLUS_32 = np.int32(127 + 32)  # exponent bias, plus 32 for the 2**-32 scale
_I64_BIAS_PLUS_63 = np.int64(1023 + 63)
_I32_1, _I64_1 = np.int32(1), np.int64(1)

_F32_2M24 = _F32(2.0**-24)
_F64_2M50 = _F64(2.0**-50)
_F64_2M53 = _F64(2.0**-53)
_F32_HALF, _F64_HALF = _F32(0.5), _F64(0.5)
_F32_ONE, _F64_ONE = _F32(1.0), _F64(1.0)
_F32_TWO, _F64_TWO = _F32(2.0), _F64(2.0)
_F32_ZERO, _F64_ZERO = _F32(0.0), _F64(0.0)
_F32_SQRT2, _F64_SQRT2 = _F32(math.sqrt(2.0)), _F64(math.sqrt(2.0))
_U32_SQRT2_BITS = _F32_SQRT2.view(np.uint32)  # positive floats order like their bits
_U64_SQRT2_BITS = _F64_SQRT2.view(np.uint64)
_F32_PIO4, _F64_PIO4 = _F32(math.pi / 4), _F64(math.pi / 4)

# ln 2 split so that q * LN2_HI is exact (fdlibm / musl).
_F32_LN2_HI = _F32(float.fromhex("0x1.62e3p-1"))
_F32_LN2_LO = _F32(float.fromhex("0x1.2fefa2p-17"))
_F64_LN2_HI = _F64(6.93147180369123816490e-01)
_F64_LN2_LO = _F64(1.90821492927058770002e-10)
# log(1+s)-log(1-s) ~ 2s + s*Lg(s*s): fdlibm's minimax coefficients.
_F32_LG = tuple(_F32(float.fromhex(h)) for h in ("0xaaaaaa.0p-24", "0xccce13.0p-25",
                                                  "0x91e9ee.0p-25", "0xf89e26.0p-26"))
_F64_LG = tuple(_F64(v) for v in (6.666666666666735130e-01, 3.999999999940941908e-01,
                                  2.857142874366239149e-01, 2.222219843214978396e-01,
                                  1.818357216161805012e-01, 1.531383769920937332e-01,
                                  1.479819860511658591e-01))
# sin and cos on [0, pi/4]: Cephes sinf/cosf and sin/cos coefficients.
_F32_SIN = tuple(_F32(v) for v in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_F32_COS = tuple(_F32(v) for v in (2.443315711809948e-5, -1.388731625493765e-3,
                                   4.166664568298827e-2))
_F64_SIN = tuple(_F64(v) for v in (1.58962301576546568060e-10, -2.50507477628578072866e-8,
                                   2.75573136213857245213e-6, -1.98412698295895385996e-4,
                                   8.33333333332211858878e-3, -1.66666666666666307295e-1))
_F64_COS = tuple(_F64(v) for v in (-1.13585365213876817300e-11, 2.08757008419747316778e-9,
                                   -2.75573141792967388112e-7, 2.48015872888517045348e-5,
                                   -1.38888888888730564116e-3, 4.16666666666665929218e-2))

# -- primitives that every backend maps to its own -----------------------------
# The element functions below are written once and run unchanged on NumPy
# arrays (the NumPy backend), on NumPy scalars (the reference) and, compiled by
# Numba, on machine scalars (backends.numba._math registers them and gives
# these primitives scalar implementations). Selections are done with bit
# masks and arithmetic, not branches: exact, and fast on both.


def f32_bits(x: F32) -> U32:
    return x.view(np.uint32)


def bits_f32(b: U32) -> F32:
    return b.view(np.float32)


def f64_bits(x: F64) -> U64:
    return x.view(np.uint64)


def bits_f64(b: U64) -> F64:
    return b.view(np.float64)


# -- Philox4x32-10 ------------------------------------------------------------


def key_schedule(k0: int, k1: int) -> npt.NDArray[np.uint32]:
    """The ten round keys of Philox4x32-10 as a flat uint32 array (k0, k1, ...)."""
    keys = np.empty(2 * PHILOX_ROUNDS, dtype=np.uint32)
    for r in range(PHILOX_ROUNDS):
        keys[2 * r] = (int(k0) + r * PHILOX_W0) & 0xFFFFFFFF
        keys[2 * r + 1] = (int(k1) + r * PHILOX_W1) & 0xFFFFFFFF
    return keys


def philox_block(c0: U32, c1: U32, c2: U32, c3: U32, keys: npt.NDArray[np.uint32]) -> Words:
    """Philox4x32-10 of counter words ``c0..c3`` (uint32) under a key schedule."""
    for r in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * np.uint64(c0)
        p1 = PHILOX_M1 * np.uint64(c2)
        c0, c1, c2, c3 = (
            np.uint32((p1 >> _U64_32) ^ np.uint64(c1) ^ np.uint64(keys[2 * r])),
            np.uint32(p1 & _U64_MASK32),
            np.uint32((p0 >> _U64_32) ^ np.uint64(c3) ^ np.uint64(keys[2 * r + 1])),
            np.uint32(p0 & _U64_MASK32),
        )
    return c0, c1, c2, c3


def derive_key(seed: int, stream: int) -> tuple[int, int]:
    """The data key ``(k0, k1)`` for ``seed`` and ``stream`` (Python ints)."""
    words = philox_block(
        np.uint32(stream & 0xFFFFFFFF), np.uint32(stream >> 32), np.uint32(0),
        np.uint32(KEY_TAG), key_schedule(seed & 0xFFFFFFFF, seed >> 32))
    return int(words[0]), int(words[1])


# -- bits to floats: f32 family -------------------------------------------------


def uniform_f32(w: U32) -> F32:
    """``[0, 1)`` from the top 24 bits of a word."""
    return np.float32(w >> _U32_8) * _F32_2M24


def log_of_uniform_f32(w: U32) -> F32:
    """``ln(u)`` for ``u = float32(w | 1) * 2**-32`` in ``(0, 1]``; never positive."""
    bits = f32_bits(np.float32(w | _U32_1))
    mantissa = (bits & _U32_MANT23) | _U32_ONE_F32  # f in [1, 2) ...
    big = np.uint32(mantissa > _U32_SQRT2_BITS)     # ... halved above sqrt(2), exactly
    f = bits_f32(np.uint32(mantissa - (big << _U32_23)))
    e = np.int32(bits >> _U32_23) - _I32_BIAS_PLUS_32 + np.int32(big)
    t = f - _F32_ONE
    s = t / (_F32_TWO + t)
    z = s * s
    w2 = z * z
    lg1, lg2, lg3, lg4 = _F32_LG
    r = w2 * (lg2 + w2 * lg4) + z * (lg1 + w2 * lg3)
    hfsq = _F32_HALF * t * t
    q = np.float32(e)
    return s * (hfsq + r) + q * _F32_LN2_LO - hfsq + t + q * _F32_LN2_HI


def _sin_cos_poly_f32(x: F32) -> tuple[F32, F32]:
    z = x * x
    s3, s2, s1 = _F32_SIN
    c3, c2, c1 = _F32_COS
    sin = ((s3 * z + s2) * z + s1) * z * x + x
    cos = ((c3 * z + c2) * z + c1) * z * z - _F32_HALF * z + _F32_ONE
    return sin, cos


def _octant_cos_sin_f32(octant: U32, sin: F32, cos: F32) -> tuple[F32, F32]:
    """Map (sin, cos) of the reduced angle to (cos, sin) of the full angle.

    Octants 1, 2, 5, 6 swap the two; cos is negative in octants 2..5, sin in
    4..7. Done on the bits (select by mask, flip the sign bit): exact, and no
    branches.
    """
    swap = np.uint32((((octant + _U32_1) >> _U32_1) & _U32_1) * _U32_ALL)  # all ones: swap
    sb, cb = f32_bits(sin), f32_bits(cos)
    c = np.uint32((sb & swap) | (cb & ~swap)) ^ np.uint32(((octant + _U32_2) & _U32_4) << _U32_29)
    s = np.uint32((cb & swap) | (sb & ~swap)) ^ np.uint32((octant & _U32_4) << _U32_29)
    return bits_f32(c), bits_f32(s)


def cos_sin_f32(w: U32) -> tuple[F32, F32]:
    """``(cos t, sin t)`` for ``t = 2*pi * w / 2**32`` (low 5 bits dropped)."""
    octant = w >> _U32_29
    odd = octant & _U32_1
    # fraction of the octant, complemented (2**24 - frac) in odd octants
    frac = (((w >> _U32_5) & _U32_FRAC24) ^ np.uint32(odd * _U32_FRAC24)) + odd
    sin, cos = _sin_cos_poly_f32(np.float32(frac) * _F32_2M24 * _F32_PIO4)
    return _octant_cos_sin_f32(octant, sin, cos)


def box_muller_f32(w_radius: U32, w_angle: U32) -> tuple[F32, F32]:
    # ln u <= 0, so 0 - 2 ln u >= 0, and +0.0 (not -0.0) when u == 1
    r = np.sqrt(_F32_ZERO - _F32_TWO * log_of_uniform_f32(w_radius))
    c, s = cos_sin_f32(w_angle)
    return r * c, r * s


# -- bits to floats: f64 family -------------------------------------------------


def uniform_f64(hi: U32, lo: U32) -> F64:
    m = (np.uint64(hi >> _U32_5) << _U64_26) | np.uint64(lo >> _U32_6)
    return np.float64(np.int64(m)) * _F64_2M53


def log_of_uniform_f64(hi: U32, lo: U32) -> F64:
    """``ln(u)`` for ``u = float64(((hi & 0x7fffffff) << 32 | lo) | 1) * 2**-63``; never positive."""
    m = (np.uint64(hi & _U32_LOW31) << _U64_32) | np.uint64(lo) | _U64_1
    bits = f64_bits(np.float64(np.int64(m)))
    mantissa = (bits & _U64_MANT52) | _U64_ONE_F64
    big = np.uint64(mantissa > _U64_SQRT2_BITS)
    f = bits_f64(np.uint64(mantissa - (big << _U64_52)))
    e = np.int64(bits >> _U64_52) - _I64_BIAS_PLUS_63 + np.int64(big)
    t = f - _F64_ONE
    s = t / (_F64_TWO + t)
    z = s * s
    w2 = z * z
    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = _F64_LG
    r = w2 * (lg2 + w2 * (lg4 + w2 * lg6)) + z * (lg1 + w2 * (lg3 + w2 * (lg5 + w2 * lg7)))
    hfsq = _F64_HALF * t * t
    q = np.float64(e)
    return s * (hfsq + r) + q * _F64_LN2_LO - hfsq + t + q * _F64_LN2_HI


def _sin_cos_poly_f64(x: F64) -> tuple[F64, F64]:
    z = x * x
    s6, s5, s4, s3, s2, s1 = _F64_SIN
    c6, c5, c4, c3, c2, c1 = _F64_COS
    sin = x + (x * z) * (((((s6 * z + s5) * z + s4) * z + s3) * z + s2) * z + s1)
    cos = (_F64_ONE - _F64_HALF * z) + (z * z) * (((((c6 * z + c5) * z + c4) * z + c3) * z
                                                   + c2) * z + c1)
    return sin, cos


def _octant_cos_sin_f64(octant: U32, sin: F64, cos: F64) -> tuple[F64, F64]:
    """:func:`_octant_cos_sin_f32` on float64 bits."""
    swap = np.uint64(((octant + _U32_1) >> _U32_1) & _U32_1) * _U64_ALL
    sb, cb = f64_bits(sin), f64_bits(cos)
    c = np.uint64((sb & swap) | (cb & ~swap)) ^ (np.uint64((octant + _U32_2) & _U32_4) << _U64_61)
    s = np.uint64((cb & swap) | (sb & ~swap)) ^ (np.uint64(octant & _U32_4) << _U64_61)
    return bits_f64(c), bits_f64(s)


def cos_sin_f64(hi: U32, lo: U32) -> tuple[F64, F64]:
    """``(cos t, sin t)`` for ``t = 2*pi * (hi:lo) / 2**64`` (low 11 bits dropped)."""
    octant = hi >> _U32_29
    odd = np.uint64(octant & _U32_1)
    frac = (np.uint64(hi & _U32_FRAC29) << _U64_21) | np.uint64(lo >> _U32_11)
    frac = (frac ^ (odd * _U64_FRAC50)) + odd  # 2**50 - frac in odd octants
    sin, cos = _sin_cos_poly_f64(np.float64(np.int64(frac)) * _F64_2M50 * _F64_PIO4)
    return _octant_cos_sin_f64(octant, sin, cos)


def box_muller_f64(r_hi: U32, r_lo: U32, a_hi: U32, a_lo: U32) -> tuple[F64, F64]:
    r = np.sqrt(_F64_ZERO - _F64_TWO * log_of_uniform_f64(r_hi, r_lo))
    c, s = cos_sin_f64(a_hi, a_lo)
    return r * c, r * s


# -- lanes of one block ---------------------------------------------------------


def uniform_lanes_f32(w0: U32, w1: U32, w2: U32, w3: U32) -> tuple[F32, F32, F32, F32]:
    return uniform_f32(w0), uniform_f32(w1), uniform_f32(w2), uniform_f32(w3)


def normal_lanes_f32(w0: U32, w1: U32, w2: U32, w3: U32) -> tuple[F32, F32, F32, F32]:
    z0, z1 = box_muller_f32(w0, w1)
    z2, z3 = box_muller_f32(w2, w3)
    return z0, z1, z2, z3


def uniform_lanes_f64(w0: U32, w1: U32, w2: U32, w3: U32) -> tuple[F64, F64]:
    return uniform_f64(w0, w1), uniform_f64(w2, w3)


def normal_lanes_f64(w0: U32, w1: U32, w2: U32, w3: U32) -> tuple[F64, F64]:
    return box_muller_f64(w0, w1, w2, w3)


# -- truncated normal: one attempt --------------------------------------------


def truncated_normal_candidate(proposal: int, z_normal: Any, u1: Any, log_u1: Any, log_u2: Any,
                               alpha: Any, beta: Any, rate: Any, m2: Any, zero: Any,
                               two: Any) -> tuple[Any, Any]:
    """Candidate and acceptance of one attempt, in standardized units.

    Every input is computed by the caller from the element's lane of rounds
    ``2k`` (``z_normal``, ``u1``, ``log_u1``) and ``2k + 1`` (``log_u2``); the
    proposal code selects which ones matter. ``zero`` and ``two`` carry the
    working precision.
    """
    if proposal == PROPOSAL_NORMAL:
        z = z_normal
        ok = (z >= alpha) & (z <= beta)
    elif proposal == PROPOSAL_UNIFORM:
        z = alpha + (beta - alpha) * u1
        ok = -two * log_u2 >= z * z - m2
    else:
        z = alpha + (zero - log_u1) / rate
        d = z - rate
        ok = (-two * log_u2 >= d * d) & (z <= beta)
    return z, ok


# -- the host-side plan ----------------------------------------------------------


def truncated_normal_plan(alpha: float, beta: float) -> Plan:
    """Proposal for standardized bounds ``alpha < beta`` (floats, maybe infinite).

    Returns ``(proposal, alpha, beta, rate, m2, sign)`` where ``alpha, beta``
    are mirrored into ``alpha >= 0`` when ``sign == -1``. Uses comparisons,
    + - * / and sqrt only, so the choice is the same on every platform.
    """
    if alpha <= 0.0 <= beta:
        if beta - alpha >= 2.0:
            return PROPOSAL_NORMAL, alpha, beta, 1.0, 0.0, 1.0
        return PROPOSAL_UNIFORM, alpha, beta, 1.0, 0.0, 1.0
    sign = 1.0
    if beta < 0.0:
        alpha, beta, sign = -beta, -alpha, -1.0
    if (beta - alpha) * (beta + alpha) <= 2.0:
        return PROPOSAL_UNIFORM, alpha, beta, 1.0, alpha * alpha, sign
    rate = (alpha + math.sqrt(alpha * alpha + 4.0)) / 2.0
    return PROPOSAL_EXPONENTIAL, alpha, beta, rate, 0.0, sign


# -- reference: one element, slowly -------------------------------------------


def reference_element(kind: int, key: tuple[int, int], index: int, wide: bool = False,
                      loc: float = 0.0, scale: float = 1.0, lo: float = -math.inf,
                      hi: float = math.inf, plan: Plan | None = None) -> np.floating[Any]:
    """The standardized-then-scaled value of element ``index``, one at a time.

    This is the definition written as plainly as the formulas above allow;
    backends are tested against it. ``plan`` is the result of
    :func:`truncated_normal_plan` for ``kind == TRUNCATED_NORMAL``. Returns
    the value in the working precision (float32, or float64 when ``wide``),
    before rounding to a narrower output dtype.
    """
    ftype = np.float64 if wide else np.float32
    lanes = LANES_F64 if wide else LANES_F32
    keys = key_schedule(*key)
    block, lane = divmod(int(index), lanes)

    def words(round_: int) -> Words:
        return philox_block(np.uint32(block & 0xFFFFFFFF), np.uint32(block >> 32),
                            np.uint32(round_), np.uint32(0), keys)

    def lane_of(round_: int, fn: Callable[..., tuple[Any, ...]]) -> Any:
        return fn(*words(round_))[lane]

    uniform_lanes = uniform_lanes_f64 if wide else uniform_lanes_f32
    normal_lanes = normal_lanes_f64 if wide else normal_lanes_f32

    def log_lanes(w0: U32, w1: U32, w2: U32, w3: U32) -> tuple[Any, ...]:
        if wide:
            return log_of_uniform_f64(w0, w1), log_of_uniform_f64(w2, w3)
        return tuple(log_of_uniform_f32(w) for w in (w0, w1, w2, w3))

    if kind == UNIFORM:
        z = lane_of(0, uniform_lanes)
    elif kind == NORMAL:
        z = lane_of(0, normal_lanes)
    else:
        if plan is None:
            raise ValueError("A truncated normal element needs its truncated_normal_plan. "
                             "Received: plan=None")
        proposal, alpha, beta, rate, m2, sign = plan
        args = [ftype(v) for v in (alpha, beta, rate, m2)] + [ftype(0), ftype(2)]
        for k in range(MAX_ATTEMPTS):
            z, ok = truncated_normal_candidate(
                proposal, lane_of(2 * k, normal_lanes), lane_of(2 * k, uniform_lanes),
                lane_of(2 * k, log_lanes), lane_of(2 * k + 1, log_lanes), *args)
            if ok:
                break
        z = ftype(sign) * z
    x = ftype(loc) + ftype(scale) * z
    return min(max(x, ftype(lo)), ftype(hi))
