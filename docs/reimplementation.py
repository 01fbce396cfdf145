"""A standalone re-implementation of the fastinit random stream (version 1), float32 part.

Written from ``docs/stream.md`` alone, without importing fastinit. It shows
that the page is enough to reproduce the library bit for bit, and
``tests/stream/test_stream_doc.py`` checks it against ``fastinit.random``.

Integers are Python ints. Floats are NumPy ``float32`` scalars, so every
operation rounds to binary32 (round to nearest even). There is no fused
multiply-add in Python. It is slow: one Philox call per element.

    >>> hex(derive_key(0, 0)[0])
    '0x105c452e'
    >>> float(normal_f32(0, 0, 0))
    -1.6703726053237915
"""

import numpy as np

MASK32 = 0xFFFFFFFF

# -- section 3: Philox4x32-10 ---------------------------------------------------
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10


def philox(counter, key):
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(ROUNDS):
        rk0 = (k0 + r * W0) & MASK32
        rk1 = (k1 + r * W1) & MASK32
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ rk0, p1 & MASK32,
                          (p0 >> 32) ^ c3 ^ rk1, p0 & MASK32)
    return c0, c1, c2, c3


# -- section 4: key derivation ----------------------------------------------------
KEY_TAG = 0x6B657930


def derive_key(seed, stream):
    words = philox((stream & MASK32, stream >> 32, 0, KEY_TAG), (seed & MASK32, seed >> 32))
    return words[0], words[1]


# -- section 5: counter layout (f32 family) -----------------------------------------
LANES = 4


def round_words(key, block, round_=0):
    return philox((block & MASK32, block >> 32, round_, 0), key)


# -- section 2: helpers -------------------------------------------------------------
f32 = np.float32


def from_bits(n):
    return np.uint32(n).view(np.float32)


def to_bits(x):
    return int(np.float32(x).view(np.uint32))


def int_to_f32(n):
    # float(n) is exact for n < 2**53, so np.float32 rounds once, to nearest even.
    return f32(float(n))


# -- section 6.1: uniform -------------------------------------------------------------
def uniform_from_word(w):
    return int_to_f32(w >> 8) * from_bits(0x33800000)  # 2**-24


# -- section 6.2: log of a uniform ------------------------------------------------------
SQRT2 = from_bits(0x3FB504F3)
LN2_HI, LN2_LO = from_bits(0x3F317180), from_bits(0x3717F7D1)
LG1, LG2, LG3, LG4 = (from_bits(b) for b in (0x3F2AAAAA, 0x3ECCCE13, 0x3E91E9EE, 0x3E789E26))
HALF, ONE, TWO = f32(0.5), f32(1.0), f32(2.0)


def log_uniform_from_word(w):
    v = int_to_f32(w | 1)
    bits = to_bits(v)
    e = (bits >> 23) - 159
    f = from_bits((bits & 0x007FFFFF) | 0x3F800000)
    if f > SQRT2:
        f = f * HALF
        e = e + 1
    t = f - ONE
    s = t / (TWO + t)
    z = s * s
    w2 = z * z
    r = (w2 * (LG2 + (w2 * LG4))) + (z * (LG1 + (w2 * LG3)))
    hfsq = (HALF * t) * t
    q = int_to_f32(e)
    return ((((s * (hfsq + r)) + (q * LN2_LO)) - hfsq) + t) + (q * LN2_HI)


# -- section 6.3: angle ---------------------------------------------------------------------
PIO4 = from_bits(0x3F490FDB)
S3, S2, S1 = (from_bits(b) for b in (0xB94CA1F9, 0x3C08839E, 0xBE2AAAA3))
C3, C2, C1 = (from_bits(b) for b in (0x37CCF5CE, 0xBAB6061A, 0x3D2AAAA5))


def cos_sin_from_word(w):
    octant = w >> 29
    frac = (w >> 5) & 0x00FFFFFF
    if octant & 1:
        frac = (1 << 24) - frac
    x = (int_to_f32(frac) * from_bits(0x33800000)) * PIO4
    z = x * x
    sin_x = ((((((S3 * z) + S2) * z) + S1) * z) * x) + x
    cos_x = (((((((C3 * z) + C2) * z) + C1) * z) * z) - (HALF * z)) + ONE
    swap = ((octant + 1) >> 1) & 1
    c, s = (sin_x, cos_x) if swap else (cos_x, sin_x)
    if ((octant + 2) & 7) >= 4:
        c = -c
    if octant >= 4:
        s = -s
    return c, s


# -- section 6.4: Box-Muller ----------------------------------------------------------------
def box_muller(w_radius, w_angle):
    v = f32(-2.0) * log_uniform_from_word(w_radius)
    v = v if v > f32(0.0) else f32(0.0)
    r = np.sqrt(v)
    c, s = cos_sin_from_word(w_angle)
    return r * c, r * s


# -- sections 7 and 8: elements ------------------------------------------------------------
def _block_lane(p):
    return divmod(p, LANES)


def _clamp(x, lo, hi):
    if x < lo:
        x = lo
    if x > hi:
        x = hi
    return x


def uniform_f32(seed, stream, p, low=0.0, high=1.0):
    """float32 ``uniform`` element at stream position ``p`` (flat index + offset), ``low < high``."""
    block, lane = _block_lane(p)
    z = uniform_from_word(round_words(derive_key(seed, stream), block)[lane])
    loc, scale = f32(low), f32(high - low)          # high - low in binary64, then rounded
    lo = f32(low)
    if float(lo) < low:                              # smallest float32 >= low
        lo = np.nextafter(lo, f32(np.inf))
    hi = f32(high)
    if float(hi) >= high:                            # largest float32 < high
        hi = np.nextafter(hi, f32(-np.inf))
    return _clamp(loc + (scale * (f32(1.0) * z)), lo, hi)


def normal_f32(seed, stream, p, mean=0.0, std=1.0):
    """float32 ``normal`` element at stream position ``p`` (flat index + offset)."""
    block, lane = _block_lane(p)
    w = round_words(derive_key(seed, stream), block)
    pair = box_muller(w[0], w[1]) if lane < 2 else box_muller(w[2], w[3])
    z = pair[lane % 2]
    return f32(mean) + (f32(std) * (f32(1.0) * z))  # no clamp: lo, hi are infinite


if __name__ == "__main__":
    key = derive_key(0, 0)
    print("key", [f"0x{k:08X}" for k in key])
    print("uniform", [f"0x{to_bits(uniform_f32(0, 0, i)):08X}" for i in range(4)])
    print("normal ", [f"0x{to_bits(normal_f32(0, 0, i)):08X}" for i in range(4)])
