"""The library against references: a naive one written here, and stream.reference_element.

The naive reference re-implements the stream definition from its docstring
with plain Python integers (STUMPY style), sharing no code with the library.
"""

import math

import numpy as np
import pytest

from fastinit import _dtypes, random as fr, stream

from helpers import KAT, TRUNC_BOUNDS, resolve

MASK32 = 0xFFFFFFFF


# -- naive reference -------------------------------------------------------------


def naive_philox(counter, key):
    """Philox4x32-10 on Python ints (Salmon et al. 2011, Random123)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32)
        k0 = (k0 + 0x9E3779B9) & MASK32
        k1 = (k1 + 0xBB67AE85) & MASK32
    return c0, c1, c2, c3


def naive_key(seed, stream_):
    """Key derivation: one Philox call keyed by the seed, counter word 3 = "key0"."""
    tag = int.from_bytes(b"key0", "big")
    words = naive_philox((stream_ & MASK32, stream_ >> 32, 0, tag), (seed & MASK32, seed >> 32))
    return words[0], words[1]


def naive_words(key, block, round_=0):
    return naive_philox((block & MASK32, block >> 32, round_, 0), key)


def naive_uniform01_f32(key, index):
    """Element ``index`` of the f32-family uniform on [0, 1): 4 lanes per block."""
    w = naive_words(key, index // 4)[index % 4]
    return (w >> 8) / 2**24  # exact in float32


def naive_uniform01_f64(key, index):
    """Element ``index`` of the f64-family uniform: 2 lanes, (high word, low word)."""
    words = naive_words(key, index // 2)
    hi, lo = words[2 * (index % 2)], words[2 * (index % 2) + 1]
    return ((hi >> 5) * 2**26 + (lo >> 6)) / 2**53  # 53 bits: exact in float64


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_naive_philox_passes_kat(counter, key, expected):
    assert naive_philox(counter, key) == expected


def test_stream_constants_match_naive():
    assert stream.KEY_TAG == int.from_bytes(b"key0", "big")
    assert (stream.LANES_F32, stream.LANES_F64) == (4, 2)


SEED_STREAMS = [(0, 0), (1, 0), (0, 1), (2**64 - 1, 2**64 - 1), (2**32, 2**32 - 1),
                (0x0123456789ABCDEF, 0xFEDCBA9876543210)]


@pytest.mark.parametrize("seed, stream_", SEED_STREAMS)
def test_derive_key(seed, stream_):
    assert stream.derive_key(seed, stream_) == naive_key(seed, stream_)


# (offset, flat indices checked): small, around the hi-word flip of the block
# counter, and near the 2**62 limit.
POSITIONS = [(0, [0, 1, 2, 3, 4, 5, 6, 7, 9, 31]),
             (2**34 - 6, [0, 3, 5, 6, 7, 11]),
             (2**62 - 60, [0, 1, 17, 49])]


@pytest.mark.parametrize("seed, stream_", SEED_STREAMS[:4])
@pytest.mark.parametrize("offset, indices", POSITIONS)
def test_uniform_matches_naive(seed, stream_, offset, indices, backend):
    n = max(indices) + 1
    key = naive_key(seed, stream_)
    f32 = fr.uniform(n, seed=seed, stream=stream_, offset=offset, backend=backend)
    f64 = fr.uniform(n, seed=seed, stream=stream_, offset=offset, backend=backend,
                     dtype="float64")
    for i in indices:
        assert f32[i] == naive_uniform01_f32(key, offset + i)
        assert f64[i] == naive_uniform01_f64(key, offset + i)


def test_uniform_scaled_and_rounded_matches_naive(backend):
    """x = low + (high - low) * u in float32, clamped below high, rounded once."""
    seed, low, high = 99, -1.5, 2.5
    key = naive_key(seed, 0)
    shape = (3, 7)
    index = (slice(None), slice(1, None, 2))
    for dtype in ("float32", "float16", "bfloat16"):
        got = fr.uniform(shape, low, high, seed=seed, dtype=dtype, index=index, backend=backend)
        for r in range(3):
            for k, c in enumerate(range(1, 7, 2)):
                u = np.float32(naive_uniform01_f32(key, 7 * r + c))
                x = np.float32(low) + np.float32(high - low) * u
                x = min(x, np.float32(_dtypes.below(resolve(dtype), high)))
                expected = np.array([x], np.float32).astype(resolve(dtype))[0]
                assert got[r, k].tobytes() == expected.tobytes(), (dtype, r, c)


# -- stream.reference_element against the backends ---------------------------------------------


def _check_reference(backend, dtype, name, ref_args, api_args, offset=0, indices=range(24)):
    dt = resolve(dtype)
    wide = dt == np.float64
    seed, stream_ = 2**63 + 5, 77
    key = stream.derive_key(seed, stream_)
    n = max(indices) + 1
    got = getattr(fr, name)(n, *api_args, seed=seed, stream=stream_, offset=offset,
                            dtype=dtype, backend=backend)
    kind = {"uniform": stream.UNIFORM, "normal": stream.NORMAL,
            "truncated_normal": stream.TRUNCATED_NORMAL}[name]
    for i in indices:
        value = stream.reference_element(kind, key, offset + i, wide=wide, **ref_args)
        assert np.asarray(value).dtype == (np.float64 if wide else np.float32)
        expected = np.array([value]).astype(dt)
        assert got[i:i + 1].tobytes() == expected.tobytes(), (i, got[i], value)


FAMILIES = ["float32", "float64", "float16", "bfloat16"]


@pytest.mark.parametrize("dtype", FAMILIES)
def test_reference_uniform(dtype, backend):
    dt = resolve(dtype)
    low, high = -0.75, 3.0
    _check_reference(backend, dtype, "uniform",
                     dict(loc=low, scale=high - low, lo=_dtypes.ceil(dt, low),
                          hi=_dtypes.below(dt, high)), (low, high), offset=2**34 - 9)


@pytest.mark.parametrize("dtype", FAMILIES)
def test_reference_normal(dtype, backend):
    _check_reference(backend, dtype, "normal", dict(loc=-1.25, scale=0.5), (-1.25, 0.5),
                     offset=3)


@pytest.mark.parametrize("dtype", FAMILIES)
@pytest.mark.parametrize("case, alpha, beta", TRUNC_BOUNDS, ids=[t[0] for t in TRUNC_BOUNDS])
def test_reference_truncated_normal(case, alpha, beta, dtype, backend):
    dt = resolve(dtype)
    mean, std = 0.5, 2.0
    a, b = mean + alpha * std, mean + beta * std
    plan = stream.truncated_normal_plan((a - mean) / std, (b - mean) / std)
    _check_reference(backend, dtype, "truncated_normal",
                     dict(loc=mean, scale=std, lo=_dtypes.ceil(dt, a), hi=_dtypes.floor(dt, b),
                          plan=plan),
                     (mean, std, a, b), offset=1001, indices=range(32))


def test_reference_covers_resampling():
    """The truncated-normal reference cases above include rejected first attempts."""
    key = stream.derive_key(2**63 + 5, 77)
    first = [stream.reference_element(stream.NORMAL, key, 1001 + i) for i in range(32)]
    assert sum(not -1.0 <= z <= 1.0 for z in first) >= 3


EXPECTED_PROPOSALS = {
    "sym_2sigma": stream.PROPOSAL_NORMAL, "sym_1sigma": stream.PROPOSAL_NORMAL,
    "one_sided": stream.PROPOSAL_NORMAL, "tail_8_9": stream.PROPOSAL_EXPONENTIAL,
    "tail_neg_inf_6": stream.PROPOSAL_EXPONENTIAL, "narrow_1e-4": stream.PROPOSAL_UNIFORM,
    "narrow_at_0": stream.PROPOSAL_UNIFORM, "above_mean": stream.PROPOSAL_UNIFORM,
    "below_mean": stream.PROPOSAL_EXPONENTIAL, "wide_off_mean": stream.PROPOSAL_EXPONENTIAL,
}


@pytest.mark.parametrize("case, alpha, beta", TRUNC_BOUNDS, ids=[t[0] for t in TRUNC_BOUNDS])
def test_plan_picks_each_proposal(case, alpha, beta):
    proposal, a, b, rate, m2, sign = stream.truncated_normal_plan(alpha, beta)
    assert proposal == EXPECTED_PROPOSALS[case]
    assert sign == (-1.0 if beta < 0 else 1.0)
    assert 0 <= a or proposal == stream.PROPOSAL_NORMAL or a <= 0 <= b
    if proposal == stream.PROPOSAL_EXPONENTIAL:
        assert rate == pytest.approx((a + math.sqrt(a * a + 4)) / 2)
