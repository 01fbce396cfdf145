"""fastinit.jax as the initializers of Flax models (NNX and Linen): the keys Flax derives
become seeds in the graph, and each parameter holds fastinit's values for its key."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("flax")

import fastinit.jax as fj  # noqa: E402
from helpers import assert_bits_equal  # noqa: E402


def _recording(init, keys):
    """``init``, recording the key of each call (Flax derives them: we check the values
    against the host's for that key)."""
    def recorded(key, shape, dtype=None, out_sharding=None):
        keys.append((jax.random.key_data(key) if jax.dtypes.issubdtype(
            key.dtype, jax.dtypes.prng_key) else key, shape, dtype))
        return init(key, shape, dtype, out_sharding)
    return recorded


def _host(init, key_data, shape, dtype):
    return np.asarray(fj.wrap(init.initializer, backend="host")(
        fj.key_to_seed(np.asarray(key_data)), shape, dtype))


def test_nnx_linear_and_conv():
    from flax import nnx

    keys = []
    kernel = fj.glorot_uniform()
    conv = fj.he_normal()
    linear = nnx.Linear(16, 8, kernel_init=_recording(kernel, keys), rngs=nnx.Rngs(0))
    layer = nnx.Conv(3, 4, (3, 3), kernel_init=_recording(conv, keys), rngs=nnx.Rngs(1))
    (lk, lshape, ldtype), (ck, cshape, cdtype) = keys
    assert_bits_equal(np.asarray(linear.kernel[...]), _host(kernel, lk, lshape, ldtype))
    assert_bits_equal(np.asarray(layer.kernel[...]), _host(conv, ck, cshape, cdtype))
    assert linear(jnp.ones((2, 16))).shape == (2, 8)


def test_nnx_under_jit_with_traced_keys():
    from flax import nnx

    @nnx.jit
    def make(rngs):
        return nnx.Linear(32, 32, kernel_init=fj.truncated_normal(0.02), rngs=rngs)

    first = make(nnx.Rngs(3)).kernel[...]
    again = make(nnx.Rngs(3)).kernel[...]
    other = make(nnx.Rngs(4)).kernel[...]
    assert jnp.array_equal(first, again) and not jnp.array_equal(first, other)
    assert float(jnp.abs(first).max()) <= 0.04


def test_linen_dense_under_jit():
    import flax.linen as nn

    keys = []
    kernel = fj.lecun_normal()

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(8, kernel_init=_recording(kernel, keys),
                            bias_init=fj.zeros)(x)

    x = jnp.ones((1, 16))
    eager = Model().init(jax.random.key(0), x)["params"]      # records the parameter's key
    params = jax.jit(Model().init)(jax.random.key(0), x)["params"]
    (key_data, shape, dtype), = keys[:1]
    got = np.asarray(params["Dense_0"]["kernel"])
    assert_bits_equal(got, np.asarray(eager["Dense_0"]["kernel"]))
    assert_bits_equal(got, _host(kernel, key_data, shape, dtype))
    assert not np.asarray(params["Dense_0"]["bias"]).any()
