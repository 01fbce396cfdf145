"""Values never leave their range: truncated normal inside [a, b], uniform below high.

Checked in float64 on the output values, for every dtype, including bounds that
are not representable in the output dtype (where rounding could push out).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastinit import _dtypes, random as fr

from helpers import DTYPES, resolve

# Valid input must not warn (e.g. bounds beyond float16's range are fine).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

N = 20_000

# (id, mean, std, a, b)
TRUNC_CASES = [
    ("sym_2sigma", 0.0, 1.0, -2.0, 2.0),
    ("unrepresentable", 0.3, 1e-3, 0.3 - 2.0001e-3, 0.3 + 2.0001e-3),
    ("tiny_interval_f16", 0.0, 1.0, 0.1, 0.10009),
    ("bf16_single_value", 1.0, 1.0, 1.001, 1.01),
    ("tail_8_9", 0.0, 1.0, 8.0, 9.0),
    ("tail_neg_inf_6", 0.0, 1.0, -math.inf, -6.0),
    ("one_sided", 0.0, 1.0, 0.0, math.inf),
    ("one_sided_neg", -3.0, 0.5, -math.inf, -3.0),
    ("narrow_1e-4", 0.0, 1.0, 1.0, 1.0001),
    ("f16_top", 65000.0, 1000.0, 60000.0, 65510.0),
    ("f16_saturating", 0.0, 1e5, -1e6, 1e6),
    ("huge", 3e38, 1e38, 2.9e38, 3.3e38),
    ("tiny_std", 0.0, 1e-40, -1e-40, 1e-40),
    ("far_tail_beyond_f16", 0.0, 1.0, 30.0, 31.0),
    ("interval_above_mean_small", 0.5, 0.01, 0.5301, 0.5302),
]


def _has_value(dtype, a, b):
    """Whether some finite value of ``dtype`` lies in [a, b]."""
    lo, hi = _dtypes.ceil(dtype, a), _dtypes.floor(dtype, b)
    return lo <= hi and lo != math.inf and hi != -math.inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mean, std, a, b", [c[1:] for c in TRUNC_CASES],
                         ids=[c[0] for c in TRUNC_CASES])
def test_truncated_normal_inside_bounds(mean, std, a, b, dtype, backend):
    dt = resolve(dtype)
    if not _has_value(dt, a, b):
        with pytest.raises(ValueError, match="no finite"):
            fr.truncated_normal(N, mean, std, a, b, seed=1, dtype=dtype, backend=backend)
        return
    x = fr.truncated_normal(N, mean, std, a, b, seed=1, dtype=dtype, backend=backend)
    y = x.astype(np.float64)
    assert np.isfinite(y).all()
    assert y.min() >= a, (y.min(), a)
    assert y.max() <= b, (y.max(), b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rounding_would_leave_bounds_without_clamp(dtype, backend):
    """Bounds between two narrow values: the float32 values straddle them, the output
    does not (so the check above is not vacuous)."""
    a, b = 0.3 - 2.0001e-3, 0.3 + 2.0001e-3
    wide = fr.truncated_normal(N, 0.3, 1e-3, a, b, seed=1, backend=backend)
    assert (wide.astype(resolve(dtype)).astype(np.float64) > b).any() or \
        (wide.astype(resolve(dtype)).astype(np.float64) < a).any()
    x = fr.truncated_normal(N, 0.3, 1e-3, a, b, seed=1, dtype=dtype, backend=backend)
    assert a <= x.astype(np.float64).min() and x.astype(np.float64).max() <= b


# (id, low, high)
UNIFORM_CASES = [
    ("unit", 0.0, 1.0),
    ("symmetric", -1.0, 1.0),
    ("unrepresentable", 0.1, 0.7),
    ("bf16_one_value", 1.0, 1.0078125),
    ("tiny", 0.0, 1e-30),
    ("negative", -2.0, -1.9999),
    ("f16_top", 65000.0, 65504.0),
    ("f16_beyond", 0.0, 65520.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("low, high", [c[1:] for c in UNIFORM_CASES],
                         ids=[c[0] for c in UNIFORM_CASES])
def test_uniform_below_high(low, high, dtype, backend):
    dt = resolve(dtype)
    if _dtypes.ceil(dt, low) > _dtypes.below(dt, high):
        with pytest.raises(ValueError, match="no .* value lies in"):
            fr.uniform(N, low, high, seed=2, dtype=dtype, backend=backend)
        return
    x = fr.uniform(N, low, high, seed=2, dtype=dtype, backend=backend).astype(np.float64)
    assert np.isfinite(x).all()
    assert x.min() >= low
    assert x.max() < high


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_uniform_top_value_is_reached(dtype, backend):
    """Values that would round up to high land on the largest value below it."""
    top = _dtypes.below(resolve(dtype), 1.0)
    x = fr.uniform(50_000, seed=3, dtype=dtype, backend=backend).astype(np.float64)
    assert x.max() == top


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(DTYPES), st.floats(-1e4, 1e4), st.floats(1e-6, 1e4),
       st.floats(-20, 20), st.floats(1e-7, 30), st.integers(0, 2**64 - 1))
def test_truncated_normal_inside_random_bounds(dtype, mean, std, alpha, width, seed):
    a, b = mean + alpha * std, mean + (alpha + width) * std
    if not a < b or not _has_value(resolve(dtype), a, b):
        return
    x = fr.truncated_normal(2000, mean, std, a, b, seed=seed, dtype=dtype).astype(np.float64)
    assert np.isfinite(x).all()
    assert a <= x.min() and x.max() <= b
