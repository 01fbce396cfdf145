"""Accuracy of the stream's own log, cos and sin against the exact inputs they stand for.

The references are evaluated in extended precision (``np.longdouble``) on the
exact uniform value or angle that the integer bits define.
"""

import numpy as np
import pytest

from fastinit import stream

from helpers import HAVE_NUMBA

EXTENDED = np.finfo(np.longdouble).nmant >= 63
needs_extended = pytest.mark.skipif(not EXTENDED, reason="np.longdouble is not extended "
                                    "precision here: no accurate float64 reference")
LD = np.longdouble
TWO_PI = LD(2) * np.arccos(LD(-1))


def _words(n, seed):
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    powers = np.uint32(1) << np.arange(32, dtype=np.uint32)
    edges = np.array([0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFF00, 0xFFFFFF7F,
                      0xFFFFFF80, 0xFFFFFFFE, 0xFFFFFFFF, 0xB504F333, 0xB504F334], np.uint32)
    octants = (np.arange(8, dtype=np.int64) << 29)
    around = (octants[:, None] + np.array([-64, -33, -32, -31, -1, 0, 1, 31, 32, 33, 64]))
    around = (around % 2**32).astype(np.uint32).reshape(-1)
    return np.concatenate([random, powers, powers - np.uint32(1), edges, around])


WORDS = _words(1_000_000, 1)
HI, LO = _words(500_000, 2), _words(500_000, 3)[::-1].copy()


def _ulp_error(got, exact, ftype):
    got = got.astype(LD)
    ulp = np.spacing(np.abs(exact.astype(ftype))).astype(LD)
    return np.abs(got - exact) / ulp


def test_log_of_uniform_f32():
    got = stream.log_of_uniform_f32(WORDS)
    assert got.dtype == np.float32
    u = np.float32(WORDS | np.uint32(1)).astype(LD) * LD(2.0) ** -32
    exact = np.log(u)
    assert (got <= 0).all()
    assert (got[u == 1] == 0).all()
    err = _ulp_error(got, exact, np.float32)
    assert err.max() <= 1.0, (err.max(), WORDS[np.argmax(err)])


@needs_extended
def test_log_of_uniform_f64():
    got = stream.log_of_uniform_f64(HI, LO)
    assert got.dtype == np.float64
    m = ((HI.astype(np.uint64) & np.uint64(0x7FFFFFFF)) << np.uint64(32)) \
        | LO.astype(np.uint64) | np.uint64(1)
    u = m.astype(np.float64).astype(LD) * LD(2.0) ** -63  # int -> float64 rounds, as defined
    exact = np.log(u)
    assert (got <= 0).all()
    err = _ulp_error(got, exact, np.float64)
    assert err.max() <= 1.0, (err.max(), HI[np.argmax(err)], LO[np.argmax(err)])


def test_cos_sin_f32():
    c, s = stream.cos_sin_f32(WORDS)
    assert c.dtype == s.dtype == np.float32
    angle = TWO_PI * (WORDS >> np.uint32(5)).astype(LD) / LD(2**27)  # low 5 bits dropped
    err_c = np.abs(c.astype(LD) - np.cos(angle)) * 2**24
    err_s = np.abs(s.astype(LD) - np.sin(angle)) * 2**24
    assert err_c.max() <= 2.0, (err_c.max(), WORDS[np.argmax(err_c)])
    assert err_s.max() <= 2.0, (err_s.max(), WORDS[np.argmax(err_s)])
    assert (np.abs(c) <= 1).all() and (np.abs(s) <= 1).all()
    assert c[WORDS == 0][0] == 1 and s[WORDS == 0][0] == 0


@needs_extended
def test_cos_sin_f64():
    c, s = stream.cos_sin_f64(HI, LO)
    assert c.dtype == s.dtype == np.float64
    fraction = (HI.astype(np.uint64) << np.uint64(21)) | (LO >> np.uint32(11)).astype(np.uint64)
    angle = TWO_PI * fraction.astype(LD) / LD(2**53)  # low 11 bits of LO dropped
    err_c = np.abs(c.astype(LD) - np.cos(angle)) * LD(2) ** 53
    err_s = np.abs(s.astype(LD) - np.sin(angle)) * LD(2) ** 53
    assert err_c.max() <= 2.0, err_c.max()
    assert err_s.max() <= 2.0, err_s.max()
    assert (np.abs(c) <= 1).all() and (np.abs(s) <= 1).all()


def test_uniform_mappings_are_exact_and_in_range():
    u32 = stream.uniform_f32(WORDS)
    assert u32.dtype == np.float32
    np.testing.assert_array_equal(u32.astype(np.float64), (WORDS >> np.uint32(8)) / 2.0**24)
    u64 = stream.uniform_f64(HI, LO)
    assert u64.dtype == np.float64
    m = (HI.astype(np.uint64) >> np.uint64(5)) * np.uint64(2**26) \
        + (LO.astype(np.uint64) >> np.uint64(6))
    np.testing.assert_array_equal(u64, m.astype(np.float64) * 2.0**-53)
    for u in (u32, u64):
        assert u.min() >= 0 and u.max() < 1


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_numba_compiled_math_equals_numpy():
    """The element functions compiled by Numba give NumPy's bits (no FMA, no fastmath)."""
    import numba

    from fastinit.backends.numba import _math  # noqa: F401  (registers the stream functions)

    @numba.njit
    def f32_all(w, out):
        for i in range(w.size):
            out[0, i] = stream.log_of_uniform_f32(w[i])
            out[1, i], out[2, i] = stream.cos_sin_f32(w[i])
            out[3, i] = stream.uniform_f32(w[i])
            out[4, i], out[5, i] = stream.box_muller_f32(w[i], w[w.size - 1 - i])

    @numba.njit
    def f64_all(hi, lo, out):
        for i in range(hi.size):
            out[0, i] = stream.log_of_uniform_f64(hi[i], lo[i])
            out[1, i], out[2, i] = stream.cos_sin_f64(hi[i], lo[i])
            out[3, i] = stream.uniform_f64(hi[i], lo[i])
            out[4, i], out[5, i] = stream.box_muller_f64(hi[i], lo[i], lo[i], hi[i])

    w = WORDS[:200_000]
    got = np.empty((6, w.size), np.float32)
    f32_all(w, got)
    want = [stream.log_of_uniform_f32(w), *stream.cos_sin_f32(w), stream.uniform_f32(w),
            *stream.box_muller_f32(w, w[::-1])]
    np.testing.assert_array_equal(got.view(np.uint32), np.stack(want).view(np.uint32))

    hi, lo = HI[:200_000], LO[:200_000]
    got = np.empty((6, hi.size), np.float64)
    f64_all(hi, lo, got)
    want = [stream.log_of_uniform_f64(hi, lo), *stream.cos_sin_f64(hi, lo),
            stream.uniform_f64(hi, lo), *stream.box_muller_f64(hi, lo, lo, hi)]
    np.testing.assert_array_equal(got.view(np.uint64), np.stack(want).view(np.uint64))
