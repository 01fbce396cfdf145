"""Each guard of the XLA backend against the rewrite it defends from (fastinit.backends.xla._guards).

Every test runs the same computation with the guard on (the NumPy backend's bits)
and off (XLA's rewrite shows), so each test fails without its guard.
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from fastinit import random as fr, stream  # noqa: E402
from fastinit.backends import xla  # noqa: E402
from fastinit.backends.xla import _elements, _philox, _truncated  # noqa: E402
from fastinit.backends.xla._guards import IEEE, Guards  # noqa: E402
from helpers import assert_bits_equal  # noqa: E402

U32 = np.uint32
F32 = np.dtype(np.float32)


def _sample(dist, shape, offset=0, seed=0):
    key = stream.derive_key(seed, 0)
    return jax.jit(lambda k0, k1: xla.sample(dist, (k0, k1), shape, F32, offset))(
        U32(key[0]), U32(key[1]))


def _differ(a, b):
    return int(np.sum(np.asarray(a).view(np.uint32) != np.asarray(b).view(np.uint32)))


def test_contraction_guard():
    """XLA:CPU fuses a * b + c into an FMA: ~40% of uniform(-3, 5.5) values differ."""
    dist = fr.uniform_distribution(-3.0, 5.5, F32)
    want = fr.uniform(1 << 16, -3.0, 5.5, seed=0, backend="numpy")
    assert _differ(_sample(dist, (1 << 16,)), want) == 0
    with xla.guards.using(contraction=False):
        assert _differ(_sample(dist, (1 << 16,)), want) > 1000


def test_division_guard():
    """Division by a constant (the exponential proposal's rate) becomes a multiplication by
    its reciprocal."""
    dist = fr.truncated_normal_distribution(0.0, 1.0, 2.0, 3.0, F32)
    want = fr.truncated_normal(1 << 14, 0.0, 1.0, 2.0, 3.0, seed=0, backend="numpy")
    assert _differ(_sample(dist, (1 << 14,)), want) == 0
    with xla.guards.using(division="none"):
        assert _differ(_sample(dist, (1 << 14,)), want) > 10


# Seed 0, stream 0: word 2 of round 0 of block 26109600 is 0xffffffc5, so ln(u) of the
# radius of lanes 2 and 3 is +0.0 and their normal values are zeros.
ZERO_RADIUS = 4 * 26109600 + 2


def test_signed_zero_guard():
    """``0.0 - x`` and ``0.0 + x`` fold to ``-x`` and ``x``: a -0.0 where IEEE gives +0.0
    (one normal in 2**25, where ln u is +0.0)."""
    key = stream.derive_key(0, 0)
    counter = np.array([26109600, 0, 0, 0], U32)
    assert fr.philox4x32_10(counter, np.array(key, U32))[2] >= 0xFFFFFF80
    dist = fr.normal_distribution(0.0, 2.0, F32)
    want = fr.normal(2, 0.0, 2.0, seed=0, offset=ZERO_RADIUS, backend="numpy")
    assert list(want.view(np.uint32)) == [0, 0]
    assert _differ(_sample(dist, (2,), ZERO_RADIUS), want) == 0
    with xla.guards.using(signed_zero=False):
        assert _differ(_sample(dist, (2,), ZERO_RADIUS), want) == 1


def test_the_opaque_zero_survives_range_analysis(monkeypatch):
    """A constant key and positions of known range (a small tensor, indices taken modulo its
    size) let LLVM prove a zero made from the first rounds' words, and fold every guard;
    the last round's words are beyond its reach."""
    n = 1 << 20
    dist = fr.truncated_normal_distribution(0.0, 1.0, -2.0, 2.0, F32)
    key = stream.derive_key(3, 0)
    j = (np.arange(1 << 16, dtype=np.int64) * 13 % n).astype(U32)

    def attempt(j):   # traced anew at each call: the zero's round is read when tracing
        def values(j):
            position = _philox.positions([(j % U32(n)) // U32(1) % U32(n)], (n,), 0)
            return _elements.candidate(dist, (U32(key[0]), U32(key[1])), position, 1)[0]
        return jax.jit(values)(j)

    from fastinit.backends import numpy_backend
    z, _ = numpy_backend._candidates(dist, (j // 4).astype(np.uint64), 1,
                                     stream.key_schedule(*key), np.float32)
    want = z[np.arange(j.size), j % 4]
    assert _differ(attempt(j), want) == 0
    monkeypatch.setattr(_philox, "ZERO_ROUND", 1)
    assert _differ(attempt(j), want) > 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_software_division_is_correctly_rounded_from_a_few_ulps_off(dtype, request):
    """The division of XLA:GPU (``div.full``, up to 2 ulps) made exact: quotients pushed
    0, 1 and 2 ulps off each way come back to the IEEE quotient, over the operands of the
    stream's divisions (t / (2 + t) of the log, -ln u / rate)."""
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
        request.addfinalizer(lambda: jax.config.update("jax_enable_x64", False))
    rng = np.random.default_rng(7)
    t = rng.uniform(np.sqrt(0.5) - 1, np.sqrt(2) - 1, 1 << 16).astype(dtype)
    x = np.concatenate([t, rng.uniform(0, 44, 1 << 16).astype(dtype)])
    y = np.concatenate([2 + t, rng.uniform(1, 30, 1 << 16).astype(dtype)])
    want = x / y
    for ulps in (-2, -1, 0, 1, 2):
        start = want.copy()
        for _ in range(abs(ulps)):
            start = np.nextafter(start, np.inf if ulps > 0 else -np.inf).astype(dtype)

        @jax.jit
        def correct(x, y, q, zero):
            return IEEE(zero, dtype, Guards()).correct_quotient(x, y, q)

        got = correct(x, y, start, np.zeros(x.shape, U32))
        assert_bits_equal(got, want)
        if ulps:
            assert _differ(start, want) > 0


def test_guards_are_part_of_the_compiled_programs_key():
    dist = fr.truncated_normal_distribution(0.0, 1.0, 2.0, 3.0, F32)
    key = xla.derive_key(U32(0), U32(0), 0)
    first = np.asarray(jax.jit(lambda: xla.sample(dist, key, (64,), F32))())
    with xla.guards.using(division="none"):
        assert _truncated._mapped(dist, (64,), F32, 0, xla.guards.current()) is not (
            _truncated._mapped(dist, (64,), F32, 0, Guards()))
    assert_bits_equal(np.asarray(jax.jit(lambda: xla.sample(dist, key, (64,), F32))()), first)


def test_bad_guard_settings_are_refused():
    with pytest.raises(ValueError, match="Received: division='fast'"):
        Guards(division="fast")
