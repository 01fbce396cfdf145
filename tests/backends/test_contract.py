"""The backend contract: every implementation of the stream equals the NumPy backend.

One suite, run on each backend of the ``contract_backend`` fixture (Numba,
the CUDA per-element code compiled as host C++, and, on a machine with a GPU,
the CUDA kernels), through the public API so that every region and layout
path of ``fastinit.random`` is the same as for the reference. The NumPy
backend itself is held to ``stream.reference_element`` in
``tests/stream/test_reference.py``.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fastinit import random as fr

from helpers import (DIST_IDS, DISTS, DTYPES, TRUNC_BOUNDS, assert_bits_equal, draw, regions,
                     shapes)

MAX_FLAT = 1 << 62
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
seeds = st.one_of(st.integers(0, 2**64 - 1),
                  st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 2, 2**64 - 1]))
# The block index's high word flips at flat index 2**34 (f32 family) and 2**33 (f64 family).
offsets = st.one_of(st.just(0), st.integers(0, 2**40),
                    st.integers(2**33 - 3000, 2**33 + 10), st.integers(2**34 - 3000, 2**34 + 10),
                    st.integers(MAX_FLAT - 10_000, MAX_FLAT - 4_001))
bounds = st.one_of(
    st.sampled_from([(a, b) for _, a, b in TRUNC_BOUNDS]),
    st.tuples(st.floats(-12, 12), st.floats(1e-4, 20)).map(lambda t: (t[0], t[0] + t[1])),
    st.floats(-12, 12).map(lambda a: (a, math.inf)),
    st.floats(-12, 12).map(lambda b: (-math.inf, b)),
)


def both(backend, name, shape, **kw):
    """``name`` drawn by ``backend`` equals the NumPy backend's, bit for bit (errors too)."""
    try:
        expected = draw(name, shape, backend="numpy", **kw)
    except ValueError as exc:  # e.g. no value of the dtype inside [a, b]
        with pytest.raises(ValueError) as info:
            draw(name, shape, backend=backend, **kw)
        assert str(info.value) == str(exc)
        return None
    got = draw(name, shape, backend=backend, **kw)
    assert_bits_equal(got, expected)
    return got


@SETTINGS
@given(data=st.data())
def test_property(contract_backend, data):
    """Random shapes, regions, offsets, seeds, streams, dtypes and parameters."""
    shape = data.draw(shapes())
    offset = data.draw(offsets)
    if offset + math.prod(shape) >= MAX_FLAT:
        offset = 0
    kw = dict(index=data.draw(regions(shape)), offset=offset, seed=data.draw(seeds),
              stream=data.draw(seeds), dtype=data.draw(st.sampled_from(DTYPES)))
    name = data.draw(st.sampled_from(["uniform", "normal", "truncated_normal"]))
    if name == "truncated_normal":
        alpha, beta = data.draw(bounds)
        kw.update(mean=data.draw(st.floats(-100, 100)), std=data.draw(st.floats(1e-2, 100)),
                  alpha=alpha, beta=beta)
    elif name == "normal":
        kw.update(mean=data.draw(st.floats(-1e3, 1e3)), std=data.draw(st.floats(0.0, 1e3)))
    else:
        low = data.draw(st.floats(-1e3, 1e3))
        kw.update(low=low, high=low + data.draw(st.floats(0.0, 1e3)))
    both(contract_backend, name, shape, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", DISTS, ids=DIST_IDS)
def test_every_distribution_and_dtype(contract_backend, name, params, dtype):
    """Every proposal and its resampling path; seeds and offsets at the word boundaries;
    a region of many runs with unaligned starts."""
    for seed, offset in [(0, 0), (2**64 - 1, 3), (987654321, 2**34 - 1001)]:
        both(contract_backend, name, (20_001,), seed=seed, stream=seed % 11, offset=offset,
             dtype=dtype, **params)
    both(contract_backend, name, (37, 41), seed=5, index=(slice(3, None, 2), slice(1, 30)),
         dtype=dtype, **params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, params", [("normal", {}), ("uniform", {})] + [
    ("truncated_normal", dict(alpha=a, beta=b)) for a, b in
    [(-2.0, 2.0), (-1.0, 1.0), (8.0, 9.0), (0.5, 1.5), (1.0, 4.0), (-math.inf, -6.0)]])
def test_many_values(contract_backend, name, params, dtype):
    """Enough values to cover the log, angle and rejection paths widely."""
    both(contract_backend, name, (1 << 18,), seed=2024, offset=12345, dtype=dtype, **params)


def test_golden_worked_example(contract_backend):
    """The worked example of docs/stream.md (section 11)."""
    x = fr.normal(4, seed=0, backend=contract_backend)
    assert [f"{b:08X}" for b in x.view(np.uint32)] == [
        "BFD5CEC5", "BF2B8258", "C00D4833", "3CDAC1CE"]
    t = fr.truncated_normal(8, a=2.0, b=3.0, seed=0, backend=contract_backend)
    assert [f"{b:08X}" for b in t.view(np.uint32)] == [
        "402AEEA8", "400F5659", "40161686", "40127A35", "40280AC8", "4000E9EB", "403AE45F",
        "400B4DD5"]


def test_regions_and_offsets_equal_the_whole(contract_backend):
    whole = fr.truncated_normal((64, 96), a=-0.5, b=1.0, seed=4, backend=contract_backend)
    part = fr.truncated_normal((64, 96), a=-0.5, b=1.0, seed=4, backend=contract_backend,
                               index=(slice(5, 60, 3), slice(7, 90)))
    assert_bits_equal(part, whole[5:60:3, 7:90])
    flat = fr.normal(6144 + 17, seed=4, backend=contract_backend)
    shifted = fr.normal(6144, seed=4, offset=17, backend=contract_backend)
    assert_bits_equal(shifted, flat[17:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_outputs(contract_backend, dtype):
    """Transposed, sliced and F-ordered outputs go through the same contract."""
    expected = draw("normal", (300, 70), backend="numpy", seed=8, dtype=dtype)
    out = np.empty((70, 300), dtype=expected.dtype).T
    draw("normal", (300, 70), backend=contract_backend, seed=8, out=out)
    assert_bits_equal(out, expected)
