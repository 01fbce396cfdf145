"""fastinit.jax: JAX's initializer protocol, keys or int seeds, jax.Array out, computed by
XLA in the graph (jit, vmap, traced keys) with the host's bits."""

import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import fastinit.initializers as fi  # noqa: E402
import fastinit.jax as fj  # noqa: E402
import fastinit.random as fr  # noqa: E402
from helpers import assert_bits_equal  # noqa: E402

BUILDERS = {
    "glorot_uniform": fj.glorot_uniform(), "glorot_normal": fj.glorot_normal(),
    "xavier_uniform": fj.xavier_uniform(), "xavier_normal": fj.xavier_normal(),
    "he_uniform": fj.he_uniform(), "he_normal": fj.he_normal(),
    "kaiming_uniform": fj.kaiming_uniform(), "kaiming_normal": fj.kaiming_normal(),
    "lecun_uniform": fj.lecun_uniform(), "lecun_normal": fj.lecun_normal(),
    "variance_scaling": fj.variance_scaling(0.5, "fan_geo_avg", "normal", in_axis=0,
                                            out_axis=-1, batch_axis=1),
    "normal": fj.normal(0.3), "uniform": fj.uniform(2.0),
    "truncated_normal": fj.truncated_normal(0.5, lower=-1.0, upper=2.5),
    "constant": fj.constant(1.5), "zeros": fj.zeros, "ones": fj.ones,
    "orthogonal": fj.orthogonal(2.0), "delta_orthogonal": fj.delta_orthogonal(),
}
# One of each kind of program in the 16-bit dtypes (the others are float32 only: each
# (builder, dtype) is a compilation).
NARROW = ("he_uniform", "normal", "truncated_normal", "constant", "orthogonal")
CASES = [(name, "float32") for name in BUILDERS] + [
    (name, dtype) for name in NARROW for dtype in ("bfloat16", "float16")]
SHAPE = (3, 4, 5)


def _host(name, seed, shape, dtype):
    """The same initializer computed on the host (NumPy/Numba)."""
    init = BUILDERS[name]
    if name in ("zeros", "ones"):
        return np.asarray((fi.Zeros() if name == "zeros" else fi.Ones())(shape, dtype))
    if name == "constant":
        return np.full(shape, 1.5, dtype)
    return np.asarray(fj.wrap(init.initializer, backend="host")(seed, shape, dtype))


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_protocol_and_host_bits(name, dtype):
    init = BUILDERS[name]
    dtype = jnp.dtype(dtype)
    key = jax.random.key(0)
    x = init(key, SHAPE, dtype)
    assert isinstance(x, jax.Array) and x.shape == SHAPE and x.dtype == dtype
    assert jnp.array_equal(init(key, SHAPE, dtype), x)
    assert jnp.array_equal(init(jax.random.PRNGKey(0), SHAPE, dtype), x)  # raw keys too
    seed = fj.key_to_seed(key)
    assert jnp.array_equal(init(seed, SHAPE, dtype), x)                 # int seeds
    if name not in ("constant", "zeros", "ones"):
        assert not jnp.array_equal(init(jax.random.key(1), SHAPE, dtype), x)
    host = _host(name, seed, SHAPE, dtype)
    if "orthogonal" in name:   # the same Gaussian, factorised by XLA or LAPACK
        np.testing.assert_allclose(np.asarray(x, np.float32), host.astype(np.float32),
                                   atol=2e-2 if dtype != np.float32 else 1e-5)
    else:
        assert_bits_equal(np.asarray(x), host)


def test_float64_with_x64():
    jax.config.update("jax_enable_x64", True)
    try:
        for name in ("he_uniform", "normal", "truncated_normal", "orthogonal"):
            x = BUILDERS[name](7, SHAPE, jnp.float64)
            assert x.dtype == jnp.float64
            host = _host(name, 7, SHAPE, np.float64)
            if name == "orthogonal":
                np.testing.assert_allclose(np.asarray(x), host, atol=1e-12)
            else:
                assert_bits_equal(np.asarray(x), host)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_default_dtype_and_builder_dtype():
    assert fj.he_normal()(0, (2, 2)).dtype == jnp.float32
    assert fj.he_normal(dtype=jnp.bfloat16)(0, (2, 2)).dtype == jnp.bfloat16


def test_values_are_fastinit_values():
    x = fj.he_uniform()(jax.random.key(3), (64, 32))
    seed = fj.key_to_seed(jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(x), fi.HeUniform(seed=seed)((64, 32)))
    x = fj.normal(0.5)(7, (10,))
    np.testing.assert_array_equal(np.asarray(x), fi.RandomNormal(0.0, 0.5, seed=7)((10,)))


def test_orthogonal_is_orthogonal_and_matches_host_qr():
    for shape, axis in (((6, 4), -1), ((4, 6), -1), ((5, 5), -1), ((5, 5), 0), ((3, 2, 8), 0),
                        ((2, 3, 4, 4), 1)):
        w = np.asarray(fj.orthogonal(1.0, column_axis=axis)(5, shape), np.float64)
        host = fi.Orthogonal(seed=5, column_axis=axis, method="qr")(shape)
        np.testing.assert_allclose(w, host, atol=1e-5)
        m = np.moveaxis(w, axis, -1).reshape(-1, shape[axis])
        small = min(m.shape)
        gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)
    k = np.asarray(fj.delta_orthogonal(1.5)(0, (3, 3, 4, 6)))
    assert (k[1, 1] != 0).all() and np.count_nonzero(k) == 24
    np.testing.assert_allclose(k[1, 1] @ k[1, 1].T, 2.25 * np.eye(4), atol=1e-5)


def test_jit_and_vmap():
    init = fj.glorot_normal()
    key = jax.random.key(5)
    eager = init(key, (8, 16))
    jitted = jax.jit(init, static_argnums=1)(key, (8, 16))
    assert jnp.array_equal(jitted, eager)
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: init(k, (8, 16)))(keys)
    for i in range(3):
        assert jnp.array_equal(batched[i], init(keys[i], (8, 16)))


@pytest.mark.parametrize("name", ["he_uniform", "truncated_normal", "normal", "orthogonal"])
def test_keys_made_inside_the_program(name):
    """``fold_in``/``split`` under ``jit``: the seed comes from the traced key, in the graph."""
    init = BUILDERS[name]

    @jax.jit
    def program(key):
        a, b = jax.random.split(jax.random.fold_in(key, 11))
        return init(a, (6, 5)), init(b, (6, 5))

    key = jax.random.key(2)
    got_a, got_b = program(key)
    a, b = jax.random.split(jax.random.fold_in(key, 11))
    assert jnp.array_equal(got_a, init(a, (6, 5)))
    assert jnp.array_equal(got_b, init(b, (6, 5)))
    text = program.lower(key).as_text()
    assert "callback" not in text


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_the_seed_rule_in_the_graph_is_the_host_rule(impl):
    from fastinit.jax._keys import seed_words
    keys = jax.random.split(jax.random.key(9, impl=impl), 16)
    lo, hi = jax.jit(jax.vmap(seed_words))(keys)
    for i in range(16):
        seed = fj.key_to_seed(keys[i])
        assert (int(lo[i]), int(hi[i])) == (seed & 0xFFFFFFFF, seed >> 32)
        assert seed == fj.key_to_seed(jax.random.key_data(keys[i]))


def test_key_to_seed_values_are_unchanged():
    """The rule's values (tests and checkpoints depend on them)."""
    assert fj.key_to_seed(jax.random.PRNGKey(5)) == 5
    words = np.array([256, 3], np.uint32)
    assert fj.key_to_seed(jax.random.wrap_key_data(words)) == fj.key_to_seed(words) == (
        (256 << 32) | 3)
    # Four words (rbg keys) mixed by Philox: the values of the rule before it ran in the graph.
    assert fj.key_to_seed(np.array([1, 2, 3, 4], np.uint32)) == 9889090531038014090
    assert fj.key_to_seed(jax.random.key(9, impl="rbg")) == 16888050571120076346


def test_out_sharding_on_one_device():
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((1,), ("x",))
    sharding = NamedSharding(mesh, PartitionSpec("x"))
    for init in (fj.he_normal(), fj.uniform(), fj.zeros):
        x = init(0, (8, 4), out_sharding=sharding)
        assert x.sharding == sharding
        assert jnp.array_equal(x, init(0, (8, 4)))


def test_host_path_for_what_xla_does_not_express():
    init = fj.wrap(fi.Identity(2.0))
    assert jnp.array_equal(init(0, (2, 3)), 2.0 * jnp.eye(2, 3))
    jitted = jax.jit(lambda k: fj.wrap(fi.Sparse(0.5, seed=1))(k, (6, 4)))(jax.random.key(0))
    assert jnp.array_equal(jitted, fj.wrap(fi.Sparse(0.5))(jax.random.key(0), (6, 4)))
    assert "callback" in jax.jit(lambda k: fj.wrap(fi.Sparse(0.5))(k, (6, 4))).lower(
        jax.random.key(0)).as_text()


class _IndexLike:
    """An integer only through ``__index__`` (``SupportsIndex``), like a framework's scalar."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class _StreamThree(fi.RandomNormal):
    """A custom initializer that draws from stream 3, given as an index-like integer."""

    def generate(self, request):
        return request.draw(fr.normal_distribution(0.0, 1.0, request.dtype), self._call_seed,
                            stream=_IndexLike(3))


def test_a_custom_stream_is_compiled_once():
    """A draw's stream is recorded as an int: an index-like one (as ``Request.draw``'s
    annotation allows) once made a new plan, and a new compilation, at every call."""
    from fastinit.jax import _wrap

    init = fj.wrap(_StreamThree())
    first = init(0, (7, 3))
    before = _wrap._compiled.cache_info()
    assert jnp.array_equal(init(0, (7, 3)), first)
    after = _wrap._compiled.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)
    assert_bits_equal(np.asarray(first), fi.RandomNormal(0.0, 1.0, seed=0)((7, 3), stream=3))


def test_empty_shapes():
    for init in (fj.he_uniform(), fj.truncated_normal(), fj.ones):
        assert init(0, (0, 5)).shape == (0, 5)


@pytest.mark.parametrize("dtype", [jnp.complex64])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_complex(distribution, dtype):
    z = fj.variance_scaling(1.0, "fan_in", distribution)(0, (256, 64), dtype)
    assert z.dtype == dtype
    power = float(jnp.mean(jnp.abs(z) ** 2))
    expected = 1 / 256
    if distribution == "truncated_normal":
        expected *= 0.9253716 / fi.COMPLEX_TRUNCATED_NORMAL_STDDEV ** 2
    assert power == pytest.approx(expected, rel=0.03)


def test_complex_matches_jax_statistics():
    """Same distribution as JAX's own complex variance scaling (moments of |z|)."""
    for distribution in ("truncated_normal", "normal", "uniform"):
        ours = jnp.abs(fj.variance_scaling(2.0, "fan_avg", distribution)(
            0, (512, 256), jnp.complex64))
        theirs = jnp.abs(jax.nn.initializers.variance_scaling(2.0, "fan_avg", distribution)(
            jax.random.key(0), (512, 256), jnp.complex64))
        for k in (1, 2, 4):
            assert float(jnp.mean(ours ** k)) == pytest.approx(float(jnp.mean(theirs ** k)),
                                                               rel=0.02)


def test_errors():
    with pytest.raises(ValueError, match="Received: shape="):
        fj.glorot_uniform()(0, (5,))
    with pytest.raises(ValueError, match="Received: mode="):
        fj.variance_scaling(1.0, "fan_sum", "uniform")
    with pytest.raises(ValueError, match="Received: shape="):
        fj.delta_orthogonal()(0, (3, 5, 4))
    with pytest.raises(TypeError, match="Received: key"):
        fj.he_normal()(jnp.zeros(2, jnp.float32), (2, 2))


def test_hostile_inputs_are_refused_before_any_work():
    from jax.sharding import PartitionSpec
    init = fj.he_normal()
    with pytest.raises(TypeError, match="Received: dtype"):
        init(0, (2, 2), np.dtype(">f4"))
    with pytest.raises(TypeError, match="Received: dtype"):
        init(0, (2, 2), jnp.int32)
    with pytest.raises(ValueError, match="Received: seed"):
        init(-1, (2, 2))
    with pytest.raises(ValueError, match="Received: seed"):
        init(2**64, (2, 2))
    with pytest.raises(TypeError, match="Received: out_sharding"):
        init(0, (2, 2), out_sharding=PartitionSpec("x"))
    with pytest.raises(ValueError, match="one key"):
        init(jnp.zeros((2, 2), jnp.uint32), (2, 2))
    # what is no key at all is a TypeError naming it (not a batch of keys)
    for key, shown in ((1.5, "1.5"), ("abc", "'abc'"), (None, "None"), (True, "True"),
                       (jnp.array(1.5), "Array(1.5"), (np.float64(3), "np.float64(3.0)")):
        with pytest.raises(TypeError, match=r"Received: key=" + re.escape(shown)):
            init(key, (2, 2))
    with pytest.raises(ValueError, match="Received: backend"):
        fj.wrap(fi.HeNormal(), backend="gpu")
    with pytest.raises(ValueError, match="Received"):
        fj.truncated_normal(1.0, lower=3.0, upper=2.0)
    for shape in ((2**62,), (2**31, 2**31)):
        with pytest.raises(ValueError, match="Received"):
            fj.normal()(0, shape)


def test_strict_rank_promotion():
    """JAX's own test settings (``jax_numpy_rank_promotion="raise"``), as JAX's nn_test
    runs its initializers: no implicit broadcast between ranks, batched keys included."""
    with jax.numpy_rank_promotion("raise"):
        for init in (fj.orthogonal(), fj.truncated_normal(), fj.he_uniform()):
            assert init(jax.random.key(0), (3, 2)).shape == (3, 2)
        keys = jax.random.split(jax.random.key(0), 2)
        assert jax.vmap(lambda k: fj.truncated_normal()(k, (3, 2)))(keys).shape == (2, 3, 2)


def test_constant_array_checks_its_arguments_and_honours_out_sharding():
    from jax.sharding import NamedSharding, PartitionSpec

    init = fj.constant(np.arange(4.0))
    np.testing.assert_array_equal(np.asarray(init(None, (3, 4))), np.tile(np.arange(4.0), (3, 1)))
    sharding = NamedSharding(jax.make_mesh((1,), ("x",)), PartitionSpec("x"))
    x = init(None, (2, 4), out_sharding=sharding)
    assert x.sharding == sharding
    with pytest.raises(TypeError, match="Received: out_sharding='bogus'"):
        init(None, (2, 4), out_sharding="bogus")
    with pytest.raises(ValueError, match=r"does not broadcast.*Received: shape=\(2, 3\)"):
        init(None, (2, 3))
    with pytest.raises(ValueError, match="Received"):
        init(None, (2, -4))


@pytest.mark.parametrize("method", ["auto", "stewart", "cholqr2"])
def test_wrapped_orthogonal_keeps_its_method(method):
    """Methods other than QR are not QR's matrix in the graph: they run on the host."""
    for made in (fi.Orthogonal(2.0, method=method), fi.DeltaOrthogonal(method=method)):
        shape = (3, 3, 4, 6) if isinstance(made, fi.DeltaOrthogonal) else (6, 4)
        host = made.with_seed(5)(shape)
        np.testing.assert_array_equal(np.asarray(fj.wrap(made)(5, shape)), host)
    qr = np.asarray(fj.wrap(fi.Orthogonal(2.0, method="qr"))(5, (6, 4)), np.float64)
    np.testing.assert_allclose(qr, fi.Orthogonal(2.0, seed=5, method="qr")((6, 4)), atol=1e-5)
