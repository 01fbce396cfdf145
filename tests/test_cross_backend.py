"""NumPy and Numba give bit-identical output for every distribution and dtype."""

import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _util import DTYPES, HAVE_NUMBA, TRUNC_BOUNDS, assert_bits_equal, draw, regions, shapes

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_FLAT = 1 << 62

seeds = st.one_of(st.integers(0, 2**64 - 1),
                  st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 2, 2**64 - 1]))
# Block index hi word flips at flat index 2**34 (f32 family) and 2**33 (f64 family).
offsets = st.one_of(st.just(0), st.integers(0, 2**40),
                    st.integers(2**33 - 3000, 2**33 + 10), st.integers(2**34 - 3000, 2**34 + 10),
                    st.integers(MAX_FLAT - 10_000, MAX_FLAT - 4_001))
dtypes = st.sampled_from(DTYPES)


@st.composite
def targets(draw_):
    shape = draw_(shapes())
    offset = draw_(offsets)
    if offset + math.prod(shape) >= MAX_FLAT:
        offset = 0
    return dict(shape=shape, index=draw_(regions(shape)), offset=offset, seed=draw_(seeds),
                stream=draw_(seeds), dtype=draw_(dtypes))


def compare(name, target, **params):
    results = []
    for backend in ("numpy", "numba"):
        try:
            results.append(draw(name, target["shape"], backend=backend, seed=target["seed"],
                                stream=target["stream"], index=target["index"],
                                offset=target["offset"], dtype=target["dtype"], **params))
        except ValueError as exc:  # e.g. no value of the dtype inside [a, b]
            results.append(str(exc))
    if isinstance(results[0], str) or isinstance(results[1], str):
        assert results[0] == results[1]
        return
    assert_bits_equal(results[0], results[1])


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(targets(), finite, st.floats(0.0, 1e3))
def test_uniform(target, low, width):
    compare("uniform", target, low=low, high=low + width)


@SETTINGS
@given(targets(), finite, st.floats(0.0, 1e3))
def test_normal(target, mean, std):
    compare("normal", target, mean=mean, std=std)


bounds = st.one_of(
    st.sampled_from([(a, b) for _, a, b in TRUNC_BOUNDS]),
    st.tuples(st.floats(-12, 12), st.floats(1e-4, 20)).map(lambda t: (t[0], t[0] + t[1])),
    st.floats(-12, 12).map(lambda a: (a, math.inf)),
    st.floats(-12, 12).map(lambda b: (-math.inf, b)),
)


@SETTINGS
@given(targets(), st.floats(-100, 100), st.floats(1e-2, 100), bounds)
def test_truncated_normal(target, mean, std, ab):
    alpha, beta = ab
    compare("truncated_normal", target, mean=mean, std=std, alpha=alpha, beta=beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, alpha, beta", TRUNC_BOUNDS, ids=[t[0] for t in TRUNC_BOUNDS])
def test_truncated_normal_every_proposal(name, alpha, beta, dtype):
    """Each proposal and its resampling path, over several Numba tasks (8192 elements)."""
    kw = dict(mean=0.25, std=1.5, alpha=alpha, beta=beta, seed=2**64 - 1, stream=3,
              dtype=dtype, offset=5)
    assert_bits_equal(draw("truncated_normal", 20_001, backend="numpy", **kw),
                      draw("truncated_normal", 20_001, backend="numba", **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["uniform", "normal"])
def test_large_enough_for_several_tasks(name, dtype):
    kw = dict(seed=123456789, stream=2**64 - 1, dtype=dtype, offset=3, low=-3.0, high=5.0,
              mean=-1.0, std=0.5)
    assert_bits_equal(draw(name, (7, 5003), backend="numpy", **kw),
                      draw(name, (7, 5003), backend="numba", **kw))
