"""The XLA backend (fastinit.backends.xla) against the NumPy backend, bit for bit.

Each program is compiled once and fed many inputs: word maps on 2**24 words,
element values at arbitrary stream positions (offsets up to 2**62, both 32-bit
halves of a block) under per-element keys (seeds 0 and 2**64 - 1, several
streams), then whole tensors (shapes of 1, 3, 7 elements, offsets off the
4-element blocks) through the public sampler, truncated normal with both of its
algorithms.
"""

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from fastinit import _dtypes, stream  # noqa: E402
from fastinit import random as fr  # noqa: E402
from fastinit.backends import numpy_backend, xla  # noqa: E402
from fastinit.backends.xla import _elements, _maps, _philox, _truncated  # noqa: E402
from fastinit.backends.xla._guards import IEEE  # noqa: E402
from helpers import DTYPES, TRUNC_BOUNDS, assert_bits_equal  # noqa: E402

U32 = np.uint32
SEEDS = (0, 2**64 - 1)
STREAMS = (0, 7, 2**64 - 1)


@pytest.fixture
def x64():
    """float64 arrays (the f64 family) for one test."""
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def _words(n, seed=0):
    """``n`` words: every edge the maps treat apart, then random ones."""
    edges = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFFFF7F, 0xFFFFFF80, 0xFFFFFFFE, 0xFFFFFFFF,
             0x7FFFFFFF, 0x80000000, 0x3504F300, 0xB504F333]
    edges += [(o << 29) + d for o in range(8) for d in (0, 1, 31, 32, 33)]
    edges += [((o + 1) << 29) - d for o in range(8) for d in (1, 31, 32, 33)]
    rest = np.random.default_rng(seed).integers(0, 2**32, n - len(edges), dtype=np.uint64)
    return np.concatenate([np.array(edges, np.uint64) & 0xFFFFFFFF, rest]).astype(U32)


def _ops(zero, dtype):
    return IEEE(zero, dtype)


def _assert_same(got, want):
    """:func:`assert_bits_equal`, fast on millions of words."""
    got, want = np.asarray(got), np.asarray(want)
    uint = np.dtype(f"u{want.dtype.itemsize}")
    if got.dtype != want.dtype or not np.array_equal(got.view(uint), want.view(uint)):
        assert_bits_equal(got, want)


def test_f32_word_maps_on_2_24_words():
    w = _words(1 << 24)

    @jax.jit
    def maps(w, zero):
        ops = _ops(zero, np.float32)
        return (_maps.uniform_f32(w), _maps.log_of_uniform_f32(w, ops),
                _maps.angle_f32(w, jnp.zeros(w.shape, bool), ops),
                _maps.angle_f32(w, jnp.ones(w.shape, bool), ops))

    uniform, log, cos, sin = maps(w, np.zeros_like(w))
    _assert_same(uniform, stream.uniform_f32(w))
    _assert_same(log, stream.log_of_uniform_f32(w))
    ref_cos, ref_sin = stream.cos_sin_f32(w)
    _assert_same(cos, ref_cos)
    _assert_same(sin, ref_sin)


def test_f64_word_maps_on_2_22_word_pairs(x64):
    hi, lo = _words(1 << 22, seed=1), _words(1 << 22, seed=2)

    @jax.jit
    def maps(hi, lo, zero):
        ops = _ops(zero, np.float64)
        return (_maps.uniform_f64(hi, lo), _maps.log_of_uniform_f64(hi, lo, ops),
                _maps.angle_f64(hi, lo, jnp.zeros(hi.shape, bool), ops),
                _maps.angle_f64(hi, lo, jnp.ones(hi.shape, bool), ops))

    uniform, log, cos, sin = maps(hi, lo, np.zeros_like(hi))
    _assert_same(uniform, stream.uniform_f64(hi, lo))
    _assert_same(log, stream.log_of_uniform_f64(hi, lo))
    ref_cos, ref_sin = stream.cos_sin_f64(hi, lo)
    _assert_same(cos, ref_cos)
    _assert_same(sin, ref_sin)


def test_philox_matches_the_known_answer_vectors():
    from helpers import KAT
    for counter, key, expected in KAT:
        words, zero = _philox.philox(tuple(U32(c) for c in counter), tuple(U32(k) for k in key))
        assert [int(w) for w in words] == list(expected)
        assert int(zero) == 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stream_number", STREAMS)
def test_derived_keys_match(seed, stream_number):
    k0, k1 = xla.derive_key(U32(seed & 0xFFFFFFFF), U32(seed >> 32), stream_number)
    assert (int(k0), int(k1)) == stream.derive_key(seed, stream_number)


# -- positions -----------------------------------------------------------------------


@pytest.mark.parametrize("global_shape, offset, corner, block", [
    ((7,), 0, (0,), (7,)),
    ((3, 5), 2**32 - 9, (1, 2), (2, 3)),          # positions cross 2**32
    ((4, 3, 5), 2**62 - 60, (1, 0, 3), (3, 3, 2)),
    ((1, 6), 5, (0, 1), (1, 5)),
])
def test_positions_of_a_block(global_shape, offset, corner, block):
    hi, lo = jax.jit(lambda: _philox.positions(_philox.grid(block, corner), global_shape,
                                               offset))()
    index = np.indices(block).reshape(len(block), -1).T + np.array(corner)
    expected = offset + np.ravel_multi_index(index.T, global_shape).astype(object)
    got = np.asarray(lo).astype(object).ravel()
    if hi is not None:
        got = got + (np.asarray(hi).astype(object).ravel() << 32)
    assert list(got) == list(expected)


# -- elements at arbitrary positions ---------------------------------------------------------

# Stream positions: the start, both sides of 2**32 and of 2**34 (the block's high word
# for the f32 family), and the last ones below 2**62.
POSITIONS = np.array(sorted({p for base in (0, 2**32, 2**34, 2**62 - 64) for p in
                             range(max(base - 11, 0), base + 13)} - {2**62 + i for i in
                                                                      range(64)}),
                     dtype=np.uint64)
POSITIONS = POSITIONS[POSITIONS < 2**62]


def _keys():
    return [(seed, s) for seed in SEEDS for s in STREAMS]


def _reference(dist, dtype, positions):
    """NumPy backend values at ``positions`` for every key of :func:`_keys`, stacked."""
    out = []
    for seed, s in _keys():
        values = np.empty(positions.size, dtype)
        numpy_backend.fill(dist, stream.derive_key(seed, s), values,
                           positions.astype(np.int64), 1)
        out.append(values)
    return np.stack(out)


def _element_values(dist, dtype, positions):
    """The XLA backend's values at ``positions`` (one program for every key)."""
    hi = U32(0) + (positions >> np.uint64(32)).astype(U32)
    lo = (positions & np.uint64(0xFFFFFFFF)).astype(U32)
    keys = np.array([stream.derive_key(seed, s) for seed, s in _keys()], U32)

    @jax.jit
    def values(k0, k1, hi, lo):
        key = (k0[:, None], k1[:, None])
        z, ops = _elements.uniform_or_normal(dist, key, (hi[None], lo[None]))
        return _elements.output_stage(dist, z, ops, dtype)

    return values(keys[:, 0], keys[:, 1], hi, lo)


ELEMENTWISE = [("uniform", fr.uniform_distribution, (0.0, 1.0)),
               ("uniform_m3_5.5", fr.uniform_distribution, (-3.0, 5.5)),
               ("normal", fr.normal_distribution, (0.0, 1.0)),
               ("normal_shifted", fr.normal_distribution, (0.5, 0.02))]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name, make, args", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elements_at_any_position_under_any_key(name, make, args, dtype):
    dt = _dtypes.resolve(dtype)
    dist = make(*args, dt)
    assert_bits_equal(_element_values(dist, dt, POSITIONS), _reference(dist, dt, POSITIONS))


@pytest.mark.parametrize("name, make, args", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_float64_elements_at_any_position_under_any_key(name, make, args, x64):
    dt = np.dtype(np.float64)
    dist = make(*args, dt)
    assert_bits_equal(_element_values(dist, dt, POSITIONS), _reference(dist, dt, POSITIONS))


def _candidates_ref(dist, positions, attempt, key):
    lanes = stream.LANES_F64 if dist.wide else stream.LANES_F32
    ftype = np.float64 if dist.wide else np.float32
    blocks = positions // np.uint64(lanes)
    z, ok = numpy_backend._candidates(dist, blocks, attempt, stream.key_schedule(*key), ftype)
    lane = (positions % np.uint64(lanes)).astype(np.int64)[:, None]
    return (np.take_along_axis(z, lane, 1)[:, 0], np.take_along_axis(ok, lane, 1)[:, 0])


@pytest.mark.parametrize("name, alpha, beta", TRUNC_BOUNDS, ids=[b[0] for b in TRUNC_BOUNDS])
def test_truncated_normal_attempts_at_any_position(name, alpha, beta):
    """Attempts 0, 1 and 255 (the last) of every proposal, as candidates and acceptance."""
    dist = fr.truncated_normal_distribution(0.0, 1.0, alpha, beta, np.dtype(np.float32))
    key = stream.derive_key(2**64 - 1, 3)
    hi = (POSITIONS >> np.uint64(32)).astype(U32)
    lo = (POSITIONS & np.uint64(0xFFFFFFFF)).astype(U32)

    @jax.jit
    def attempt(hi, lo, k):
        z, ok, _ = _elements.candidate(dist, (U32(key[0]), U32(key[1])), (hi, lo), k)
        return z, ok

    for k in (0, 1, stream.MAX_ATTEMPTS - 1):
        z, ok = attempt(hi, lo, U32(k))
        ref_z, ref_ok = _candidates_ref(dist, POSITIONS, k, key)
        assert_bits_equal(z, ref_z)
        np.testing.assert_array_equal(np.asarray(ok), ref_ok)


# -- whole tensors through the sampler ---------------------------------------------------


def _sample(dist, dtype, shape, offset, seed=0, s=0):
    key = xla.derive_key(U32(seed & 0xFFFFFFFF), U32(seed >> 32), s)
    return xla.sample(dist, key, shape, dtype, offset)


def _host(kind, dtype, shape, offset, args, seed=0, s=0):
    fn = {"uniform": fr.uniform, "normal": fr.normal, "truncated_normal": fr.truncated_normal}
    return fn[kind](shape, *args, dtype=dtype, seed=seed, stream=s, offset=offset,
                    backend="numpy")


# (distribution, shape, offset): 1, 3 and 7 elements, off the 4-element blocks, at the
# stream's end, 2-D.
SMALL = [("uniform", (1,), 0), ("uniform", (3,), 5), ("uniform", (7,), 2**62 - 8),
         ("uniform", (2, 5), 3), ("normal", (7,), 2**62 - 8), ("normal", (3,), 1),
         ("truncated_normal", (2, 5), 3)]
ARGS = {"uniform": (fr.uniform_distribution, (-3.0, 5.5)),
        "normal": (fr.normal_distribution, (0.5, 2.0)),
        "truncated_normal": (fr.truncated_normal_distribution, (0.0, 1.0, -1.0, 1.0))}


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_tensors_through_the_sampler(dtype, request):
    dt = _dtypes.resolve(dtype)
    if dt == np.float64:
        request.getfixturevalue("x64")
    # Every case in float32; the others (a compilation each) one of each distribution.
    cases = SMALL if dt == np.float32 else [SMALL[2], SMALL[5], SMALL[6]]
    for kind, shape, offset in cases:
        make, args = ARGS[kind]
        dist = make(*args, dt)
        sample = jax.jit(lambda lo, hi: xla.sample(dist, xla.derive_key(lo, hi, 0), shape,
                                                   dt, offset))
        for seed in SEEDS:
            got = sample(U32(seed & 0xFFFFFFFF), U32(seed >> 32))
            assert_bits_equal(got, _host(kind, dt, shape, offset, args, seed))


@pytest.fixture
def compacted(monkeypatch):
    """The list-based truncated normal (large blocks) on small ones, with tiny lists,
    chunks and steps (several batches, chunks and steps per round)."""
    monkeypatch.setattr(_truncated, "FULL_PASS_WORK", 0)
    monkeypatch.setattr(_truncated, "_sizes", lambda dist, n, itemsize, budget=None: (32, 64, 100))
    _truncated._mapped.cache_clear()
    _truncated._partitioned.cache_clear()
    yield
    _truncated._mapped.cache_clear()
    _truncated._partitioned.cache_clear()


# The list algorithm on one case of each proposal, mirrored or not (the rounds over the
# whole block run every case).
LISTED = ("sym_2sigma", "tail_8_9", "narrow_1e-4", "narrow_at_0", "below_mean")
TRUNC_CASES = [(name, a, b, algorithm) for name, a, b in TRUNC_BOUNDS
               for algorithm in ("full_passes", "compacted")
               if algorithm == "full_passes" or name in LISTED]


@pytest.mark.parametrize("name, alpha, beta, algorithm", TRUNC_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in TRUNC_CASES])
def test_truncated_normal_tensors(name, alpha, beta, algorithm, request):
    if algorithm == "compacted":
        request.getfixturevalue("compacted")
    dt = np.dtype(np.float32)
    shape, offset = (67, 75), 2**40 + 1   # 5025 elements: XLA:CPU vectorises
    dist = fr.truncated_normal_distribution(0.5, 2.0, 0.5 + 2 * alpha, 0.5 + 2 * beta, dt)
    got = jax.jit(lambda: _sample(dist, dt, shape, offset, 2**64 - 1, 5))()
    want = _host("truncated_normal", dt, shape, offset,
                 (0.5, 2.0, 0.5 + 2 * alpha, 0.5 + 2 * beta), 2**64 - 1, 5)
    assert_bits_equal(got, want)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_truncated_normal_tensors_in_other_dtypes(dtype, request):
    dt = _dtypes.resolve(dtype)
    if dt == np.float64:
        request.getfixturevalue("x64")
    for _, alpha, beta in (TRUNC_BOUNDS[0], TRUNC_BOUNDS[3], TRUNC_BOUNDS[5]):
        dist = fr.truncated_normal_distribution(0.0, 1.0, alpha, beta, dt)
        got = jax.jit(lambda: _sample(dist, dt, (41, 13), 6))()
        assert_bits_equal(got, _host("truncated_normal", dt, (41, 13), 6,
                                     (0.0, 1.0, alpha, beta)))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_truncated_normal_lists_of_2_byte_items(dtype, compacted):
    """2-byte items take the list path a sixteenth of the block at a time, in float32."""
    dt = _dtypes.resolve(dtype)
    for _, alpha, beta in (TRUNC_BOUNDS[0], TRUNC_BOUNDS[3]):
        dist = fr.truncated_normal_distribution(0.0, 1.0, alpha, beta, dt)
        got = jax.jit(lambda: _sample(dist, dt, (67, 75), 6))()
        assert_bits_equal(got, _host("truncated_normal", dt, (67, 75), 6,
                                     (0.0, 1.0, alpha, beta)))


def test_a_large_truncated_normal_takes_the_list_path():
    """The default choice: a block of 2**20 elements uses lists (and equals NumPy)."""
    n = 1 << 20
    assert n * (math.log(n) / -math.log(0.0455) + 1) > _truncated.FULL_PASS_WORK
    dist = fr.truncated_normal_distribution(0.0, 1.0, -2.0, 2.0, np.dtype(np.float32))
    got = jax.jit(lambda: _sample(dist, np.dtype(np.float32), (n,), 0, 3))()
    assert_bits_equal(got, _host("truncated_normal", np.float32, (n,), 0,
                                 (0.0, 1.0, -2.0, 2.0), 3))


def test_batched_keys_add_leading_axes():
    dist = fr.truncated_normal_distribution(0.0, 1.0, -1.0, 1.0, np.dtype(np.float32))
    seeds = np.array([0, 1, 2], U32)

    @jax.jit
    def batched(lo):
        return jax.vmap(lambda s: _sample_traced(dist, s))(lo)

    got = batched(seeds)
    for i, seed in enumerate(seeds):
        assert_bits_equal(got[i], _host("truncated_normal", np.float32, (4, 5), 0,
                                        (0.0, 1.0, -1.0, 1.0), int(seed)))


def _sample_traced(dist, seed_lo):
    key = xla.derive_key(seed_lo, U32(0), 0)
    return xla.sample(dist, key, (4, 5), np.dtype(np.float32), 0)


def test_sample_refuses_a_dtype_its_distribution_is_not_for():
    wide = fr.normal_distribution(0.0, 1.0, np.dtype(np.float64))
    narrow = fr.normal_distribution(0.0, 1.0, np.dtype(np.float32))
    key = (U32(1), U32(2))
    with pytest.raises(ValueError, match="jax_enable_x64.*Received: dtype"):
        xla.sample(wide, key, (4,), np.float64)        # x64 off: uint64 steps as uint32
    with pytest.raises(ValueError, match="Received: dtype"):
        xla.sample(narrow, key, (4,), np.float64)      # would be float32 values
    with pytest.raises(ValueError, match="Received: dtype"):
        xla.sample(wide, key, (4,), np.float32)
    with pytest.raises(TypeError, match="Received: dtype"):
        xla.sample(narrow, key, (4,), np.int32)


def test_sample_of_a_wide_distribution_with_x64(x64):
    wide = fr.normal_distribution(0.0, 1.0, np.dtype(np.float64))
    got = jax.jit(lambda: xla.sample(wide, xla.derive_key(U32(3), U32(0), 0), (5,),
                                     np.float64))()
    assert got.dtype == np.float64
    assert_bits_equal(got, _host("normal", np.float64, (5,), 0, (0.0, 1.0), 3))
