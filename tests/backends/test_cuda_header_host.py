"""The CUDA per-element code compiled as host C++: what the contract suite does not cover.

``fastinit/backends/cuda/fastinit_stream.cuh`` is the math of the CUDA kernels.
It also compiles as host C++ (``tests/helpers/cuda_host_driver.cpp``,
``-ffp-contract=off``, no fast-math); ``tests/backends/test_contract.py`` holds
it to the NumPy backend bit for bit. Here: Philox and the raw words, the
16-bit rounding, the order of items and unaligned stores, and an unoptimised
build. Skipped when no C++ compiler is found.
"""

import numpy as np
import pytest

from fastinit import _dtypes, stream

from helpers import DTYPES, KAT, KAT_IDS, assert_bits_equal, draw, raw_words
from helpers.backends import HostBackend, build_host_driver

import fastinit.backends as backends


@pytest.fixture
def host(host_backend):
    host_backend.order, host_backend.misalign = 0, 0
    return host_backend


@pytest.fixture
def hostcpp(host):
    """Name of a backend, "hostcpp", that runs the host-compiled CUDA header."""
    backends.register("hostcpp", host)
    yield "hostcpp"
    backends.register("hostcpp", None)


def both(name, shape, **kw):
    expected = draw(name, shape, backend="numpy", **kw)
    got = draw(name, shape, backend="hostcpp", **kw)
    assert_bits_equal(got, expected)
    return got


# -- Philox ----------------------------------------------------------------------------------


@pytest.mark.parametrize("counter, key, expected", KAT, ids=KAT_IDS)
def test_kat(host, counter, key, expected):
    assert host.philox(counter, key) == expected


def test_raw_words_match_philox(host):
    key = stream.derive_key(12345, 7)
    for start, n in [(0, 64), (3, 61), (2**34 - 6, 13), (2**62 - 9, 9)]:
        np.testing.assert_array_equal(host.raw(key, start, n, round_=5),
                                      raw_words(key, start, n, 5))


@pytest.mark.parametrize("order", [0, -1, 1, 7, 1000])
@pytest.mark.parametrize("misalign", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_order_and_alignment_invariance(hostcpp, host, order, misalign, dtype):
    """Items in any order (a grid-stride loop over G threads) and the unaligned store path."""
    host.order, host.misalign = order, misalign
    for name, params in [("normal", {}), ("truncated_normal", dict(alpha=-1.0, beta=1.0)),
                         ("truncated_normal", dict(alpha=2.0, beta=3.0))]:
        both(name, (513,), seed=11, offset=1, dtype=dtype, **params)
        both(name, (9, 13), seed=11, index=(slice(None), slice(2, 11)), dtype=dtype, **params)


def test_rounding_to_16_bits(host):
    """float16 and bfloat16 rounding of the header against NumPy and ml_dtypes."""
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    edges = []
    for v in (0.0, 5.96e-8, 2.98e-8, 6.1e-5, 6.097e-5, 65504.0, 65519.99, 65520.0, 1e30, 3.4e38,
              1.0, 1.0009765625, 1.00048828125, 2049.0):
        b = int(np.float32(v).view(np.uint32))
        edges += [max(b + d, 0) for d in range(-3, 4)]
    edges = np.array(edges, dtype=np.uint32)
    bits = np.concatenate([sample, edges, edges | np.uint32(0x80000000)])
    values = bits.view(np.float32)
    finite = np.isfinite(values)
    bits, values = bits[finite], values[finite]
    half, bf = host.round16(bits)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(half, values.astype(np.float16).view(np.uint16))
        np.testing.assert_array_equal(bf, values.astype(_dtypes.bfloat16()).view(np.uint16))


# -- optimisation level does not matter ---------------------------------------------------------


def test_unoptimised_build_agrees(tmp_path, monkeypatch):
    """-O0 (no inlining, no constant folding) gives the same bits as the NumPy backend."""
    backend = HostBackend(build_host_driver(tmp_path, "-O0"))
    backends.register("hostcpp", backend)
    try:
        for dtype in DTYPES:
            for name, params in [("normal", {}), ("uniform", {}),
                                 ("truncated_normal", dict(alpha=-1.0, beta=1.0)),
                                 ("truncated_normal", dict(alpha=8.0, beta=9.0)),
                                 ("truncated_normal", dict(alpha=0.5, beta=1.5))]:
                both(name, (4099,), seed=3, offset=5, dtype=dtype, **params)
    finally:
        backends.register("hostcpp", None)
        backend.close()
