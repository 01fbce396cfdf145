"""The Numba kernels' float32 -> float16/bfloat16 rounding equals NumPy's astype (RNE)."""

import numpy as np
import pytest

from helpers import resolve

numba = pytest.importorskip("numba")
numba_kernels = pytest.importorskip("fastinit.backends.numba._math")


@numba.njit
def _float16_bits_all(x, out):
    for i in range(x.size):
        out[i] = numba_kernels.float16_bits(x[i])


@numba.njit
def _bfloat16_bits_all(x, out):
    for i in range(x.size):
        out[i] = numba_kernels.bfloat16_bits(x[i])


def _patterns():
    """float32 bit patterns: every high half-word with edge low half-words, ties at every
    rounding position, a random sample, and named edge values."""
    rng = np.random.default_rng(7)
    high = np.arange(2**16, dtype=np.uint32) << np.uint32(16)
    lows = np.array([0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000,
                     0x7FFF, 0x8000, 0x8001, 0xC000, 0xEFFF, 0xF000, 0xFFFF], dtype=np.uint32)
    grid = (high[:, None] | lows[None, :]).reshape(-1)
    # ties and near-ties at every bit position (float16 subnormals round at bits 13..24)
    base = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32)
    ties = []
    for p in range(1, 26):
        half = np.uint32(1 << (p - 1))
        cleared = base & ~np.uint32((1 << p) - 1)
        ties += [cleared | half, cleared | (half - np.uint32(1)), cleared | (half + np.uint32(1))]
    random = rng.integers(0, 2**32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    named = np.array([65504.0, 65519.0, 65519.996, 65520.0, 65520.004, 65536.0, 65535.996,
                      6.0e-8, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.9406967e-08,
                      6.1035156e-05, 6.1035152e-05, 1.0, 1.0004883, 1.0009766, 3.0e38,
                      3.4028235e38, np.inf, 0.0, 1e-45, 1.1754942e-38],
                     dtype=np.float32).view(np.uint32)
    bits = np.concatenate([grid, *ties, random, named])
    bits = np.concatenate([bits, bits ^ np.uint32(0x80000000)])  # both signs
    x = bits.view(np.float32)
    return x[~np.isnan(x)]  # NaN payloads are never produced by the kernels


X = _patterns()


def test_float16_bits_equals_numpy():
    got = np.empty(X.size, np.uint16)
    _float16_bits_all(X, got)
    with np.errstate(over="ignore"):  # values >= 65520 round to inf, as intended
        want = X.astype(np.float16).view(np.uint16)
    wrong = np.nonzero(got != want)[0]
    assert wrong.size == 0, [(hex(int(X.view(np.uint32)[i])), hex(got[i]), hex(want[i]))
                             for i in wrong[:5]]


def test_bfloat16_bits_equals_ml_dtypes():
    got = np.empty(X.size, np.uint16)
    _bfloat16_bits_all(X, got)
    want = X.astype(resolve("bfloat16")).view(np.uint16)
    wrong = np.nonzero(got != want)[0]
    assert wrong.size == 0, [(hex(int(X.view(np.uint32)[i])), hex(got[i]), hex(want[i]))
                             for i in wrong[:5]]


@pytest.mark.parametrize("value, expected", [
    (65504.0, 0x7BFF), (65519.99, 0x7BFF), (65520.0, 0x7C00), (np.inf, 0x7C00),
    (-65520.0, 0xFC00), (2.0**-24, 0x0001), (2.0**-25, 0x0000), (3 * 2.0**-26, 0x0001),
    (3 * 2.0**-25, 0x0002), (1.0 + 2.0**-11, 0x3C00), (1.0 + 3 * 2.0**-11, 0x3C02),
    (-0.0, 0x8000),
])
def test_float16_bits_named(value, expected):
    got = np.empty(1, np.uint16)
    _float16_bits_all(np.array([value], np.float32), got)
    assert int(got[0]) == expected


def test_patterns_cover_the_hard_cases():
    f16 = X.astype(np.float64)
    assert ((np.abs(f16) > 0) & (np.abs(f16) < 2.0**-14)).sum() > 1000  # half subnormals
    assert ((np.abs(f16) >= 65504) & (np.abs(f16) < 65536)).sum() > 100
    assert np.isinf(f16).sum() >= 2
