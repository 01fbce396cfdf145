"""fastinit.jax: JAX's initializer protocol, keys or int seeds, jax.Array out, jit and
sharding."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import fastinit.initializers as fi  # noqa: E402
import fastinit.jax as fj  # noqa: E402

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


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_protocol(name, dtype):
    init = BUILDERS[name]
    shape = (3, 4, 5)
    key = jax.random.key(0)
    x = init(key, shape, dtype)
    assert isinstance(x, jax.Array) and x.shape == shape and x.dtype == dtype
    assert jnp.array_equal(init(key, shape, dtype), x)
    assert jnp.array_equal(init(jax.random.PRNGKey(0), shape, dtype), x)  # raw keys too
    seed = fj.key_to_seed(key)
    assert jnp.array_equal(init(seed, shape, dtype), x)                 # int seeds
    if name not in ("constant", "zeros", "ones"):
        assert not jnp.array_equal(init(jax.random.key(1), shape, dtype), x)


def test_default_dtype_and_builder_dtype():
    assert fj.he_normal()(0, (2, 2)).dtype == jnp.float32
    assert fj.he_normal(dtype=jnp.bfloat16)(0, (2, 2)).dtype == jnp.bfloat16


def test_values_are_fastinit_values():
    x = fj.he_uniform()(jax.random.key(3), (64, 32))
    seed = fj.key_to_seed(jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(x), fi.HeUniform(seed=seed)((64, 32)))
    x = fj.normal(0.5)(7, (10,))
    np.testing.assert_array_equal(np.asarray(x), fi.RandomNormal(0.0, 0.5, seed=7)((10,)))


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


def test_out_sharding_generates_shards_on_their_own():
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((1,), ("x",))
    sharding = NamedSharding(mesh, PartitionSpec("x"))
    init = fj.he_normal()
    x = init(0, (8, 4), out_sharding=sharding)
    assert x.sharding == sharding
    assert jnp.array_equal(x, init(0, (8, 4)))


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
