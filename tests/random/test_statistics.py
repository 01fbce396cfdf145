"""Statistics with fixed seeds (never retried): KS and chi-square against SciPy, moments,
independence of seeds and streams.

Every seed here is fixed, so each test is deterministic; thresholds are
p > 1e-3 or a few standard errors. The negative controls show the same
harness rejects a slightly wrong distribution, so the tests can fail.
"""

import functools
import math

import numpy as np
import pytest

from fastinit import _dtypes, random as fr

from helpers import TRUNC_BOUNDS, draw, resolve

stats = pytest.importorskip("scipy.stats")

N_KS = 100_000
P_MIN = 1e-3
MEAN, STD = 0.5, 2.0


def truncnorm(alpha, beta, mean=MEAN, std=STD):
    return stats.truncnorm(alpha, beta, loc=mean, scale=std)


def ks_pvalue(sample, dist):
    return stats.kstest(np.asarray(sample, dtype=np.float64), dist.cdf).pvalue


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ks_uniform(dtype, backend):
    x = fr.uniform(N_KS, -2.0, 3.0, seed=101, stream=1, dtype=dtype, backend=backend)
    assert ks_pvalue(x, stats.uniform(loc=-2.0, scale=5.0)) > P_MIN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ks_normal(dtype, backend):
    x = fr.normal(N_KS, MEAN, STD, seed=102, stream=2, dtype=dtype, backend=backend)
    assert ks_pvalue(x, stats.norm(MEAN, STD)) > P_MIN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case, alpha, beta", TRUNC_BOUNDS, ids=[t[0] for t in TRUNC_BOUNDS])
def test_ks_truncated_normal(case, alpha, beta, dtype, backend):
    x = draw("truncated_normal", N_KS, mean=MEAN, std=STD, alpha=alpha, beta=beta, seed=103,
             stream=3, dtype=dtype, backend=backend)
    assert ks_pvalue(x, truncnorm(alpha, beta)) > P_MIN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ks_offset_region(dtype):
    """A region far into the stream (block counter above 2**32) is just as good."""
    x = fr.normal((400, 400), seed=104, index=(slice(0, 400, 2), slice(None)),
                  offset=2**40 + 3, dtype=dtype)
    assert ks_pvalue(x.reshape(-1), stats.norm()) > P_MIN


NEGATIVE_CONTROLS = [
    ("normal_std", lambda: fr.normal(N_KS, seed=105), stats.norm(0, 1.05)),
    ("tail_shifted", lambda: fr.truncated_normal(N_KS, a=8.0, b=9.0, seed=106),
     stats.truncnorm(8.02, 9.0)),
    ("narrow_tilted", lambda: fr.truncated_normal(N_KS, a=-1.0, b=1.0, seed=107),
     stats.truncnorm(-0.95, 1.0)),
]


@pytest.mark.parametrize("make, wrong", [c[1:] for c in NEGATIVE_CONTROLS],
                         ids=[c[0] for c in NEGATIVE_CONTROLS])
def test_ks_rejects_wrong_distribution(make, wrong):
    assert ks_pvalue(make(), wrong) < P_MIN


# -- narrow dtypes: counts per representable value (rounded once, no clipped tails) --------


@functools.lru_cache(maxsize=None)
def _all_finite_values(dtype_name):
    with np.errstate(invalid="ignore"):
        v = (np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(resolve(dtype_name))
             .astype(np.float64))
    return np.unique(v[np.isfinite(v)])  # sorted, -0.0 == 0.0 merged


def chi_square_rounded(sample, dist, dtype, lo=-math.inf, hi=math.inf, min_expected=20.0):
    """p-value of the counts per output value against ``dist`` rounded to nearest and
    clamped to ``[lo, hi]``."""
    values = _all_finite_values(dtype)
    values = values[(values >= lo) & (values <= hi)]
    mids = (values[1:] + values[:-1]) / 2  # exact in float64
    cdf = np.concatenate([[0.0], dist.cdf(mids), [1.0]])
    expected_cells = np.diff(cdf) * sample.size
    # merge neighbouring cells until each expects at least min_expected
    edges, acc = [0], 0.0
    for i, e in enumerate(expected_cells):
        acc += e
        if acc >= min_expected:
            edges.append(i + 1)
            acc = 0.0
    edges[-1] = len(values)
    expected = np.add.reduceat(expected_cells, edges[:-1])
    x = sample.astype(np.float64)
    idx = np.searchsorted(values, x)
    assert (values[np.minimum(idx, len(values) - 1)] == x).all()
    observed = np.add.reduceat(np.bincount(idx, minlength=len(values)), edges[:-1])
    return stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue


NARROW_CASES = [
    ("normal", dict(mean=MEAN, std=STD), stats.norm(MEAN, STD)),
    ("uniform", dict(low=-1.0, high=1.0), stats.uniform(-1.0, 2.0)),
    ("truncated_normal", dict(mean=MEAN, std=STD, alpha=-2.0, beta=2.0), truncnorm(-2.0, 2.0)),
    ("truncated_normal", dict(mean=MEAN, std=STD, alpha=8.0, beta=9.0), truncnorm(8.0, 9.0)),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name, params, dist", NARROW_CASES,
                         ids=["normal", "uniform", "trunc_sym", "trunc_tail"])
def test_chi_square_narrow_dtypes(name, params, dist, dtype):
    x = draw(name, 200_000, seed=108, dtype=dtype, **params)
    # uniform: values that would round up to `high` go to the largest value below it
    hi = _dtypes.below(resolve(dtype), 1.0) if name == "uniform" else math.inf
    assert chi_square_rounded(x, dist, dtype, hi=hi) > P_MIN


def test_chi_square_rejects_truncation():
    """Control: float32 values truncated (not rounded) to bfloat16 are rejected."""
    x = fr.normal(200_000, MEAN, STD, seed=109)
    truncated = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    rounded = truncated.astype(resolve("bfloat16"))
    assert chi_square_rounded(rounded, stats.norm(MEAN, STD), "bfloat16") < P_MIN


# -- moments at n = 1e6 -----------------------------------------------------------------------


def _check_moments(x, mean, var, k=5.0):
    """Mean and variance within k standard errors (the fourth moment from the sample)."""
    x = x.astype(np.float64)
    n = x.size
    assert abs(x.mean() - mean) < k * math.sqrt(var / n), (x.mean(), mean)
    m4 = np.mean((x - mean) ** 4)
    assert abs(x.var() - var) < k * math.sqrt((m4 - var**2) / n), (x.var(), var)


def test_moments_normal_f32():
    _check_moments(fr.normal(1_000_000, 1.5, 2.5, seed=110), 1.5, 2.5**2)


def test_moments_uniform_f64():
    _check_moments(fr.uniform(1_000_000, -1.0, 3.0, seed=111, dtype="float64"), 1.0, 16 / 12)


def test_moments_truncated_normal_bf16():
    dist = truncnorm(-2.0, 2.0)
    x = fr.truncated_normal(1_000_000, MEAN, STD, MEAN - 2 * STD, MEAN + 2 * STD, seed=112,
                            dtype="bfloat16")
    _check_moments(x, float(dist.mean()), float(dist.var()))


# -- independence -----------------------------------------------------------------------------

N_CORR = 200_000
CORR_MAX = 5 / math.sqrt(N_CORR)

PAIRS = [  # (seed, stream) vs (seed, stream)
    ((0, 0), (1, 0)),
    ((0, 0), (0, 1)),
    ((1, 0), (0, 1)),
    ((2**64 - 1, 0), (0, 0)),
    ((2**32, 0), (0, 0)),  # seeds differing only in the key's second word
    ((7, 2**32 - 1), (7, 2**32)),
    ((5, 2**64 - 1), (5, 2**64 - 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["uniform", "normal"])
@pytest.mark.parametrize("first, second", PAIRS)
def test_seeds_and_streams_uncorrelated(first, second, name, dtype):
    x = draw(name, N_CORR, seed=first[0], stream=first[1], dtype=dtype)
    y = draw(name, N_CORR, seed=second[0], stream=second[1], dtype=dtype)
    assert abs(np.corrcoef(x, y)[0, 1]) < CORR_MAX
    assert abs(np.corrcoef(np.abs(x - x.mean()), np.abs(y - y.mean()))[0, 1]) < CORR_MAX


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["uniform", "normal", "truncated_normal"])
def test_neighbours_and_lanes_uncorrelated(name, dtype):
    x = draw(name, 4 * N_CORR, seed=113, dtype=dtype, alpha=-1.0, beta=1.0).astype(np.float64)
    for lag in (1, 2, 3, 4, 5, 8):
        assert abs(np.corrcoef(x[:-lag], x[lag:])[0, 1]) < CORR_MAX, lag
    lanes = x.reshape(-1, 4)
    c = np.corrcoef(lanes.T)
    assert np.abs(c[np.triu_indices(4, 1)]).max() < CORR_MAX
    # Box-Muller partners are uncorrelated but not independent: check |x| too
    if name == "uniform":
        a = np.abs(lanes - lanes.mean(axis=0))
        assert np.abs(np.corrcoef(a.T)[np.triu_indices(4, 1)]).max() < CORR_MAX


def test_same_seed_same_values_different_seed_different_values():
    a = fr.normal(1000, seed=42)
    assert np.array_equal(a, fr.normal(1000, seed=42))
    assert not np.any(a == fr.normal(1000, seed=43))
    assert np.mean(a == fr.normal(1000, seed=42, stream=1)) < 0.01
