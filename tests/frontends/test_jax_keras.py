"""Keras 3 on its JAX backend with fastinit: the initializer classes (host values) and
fastinit.jax's (values from XLA, here through a Keras-style adapter) give the same bits
as on the host. Keras picks its backend once per process: the checks run in a fresh
interpreter with ``KERAS_BACKEND=jax``."""

import json

import pytest

pytest.importorskip("jax")
pytest.importorskip("keras")

from helpers import run_python  # noqa: E402

SCRIPT = r"""
import json
import numpy as np
import keras, jax
import fastinit.initializers as fi
import fastinit.jax as fj

assert keras.backend.backend() == "jax"


class FromJax(keras.initializers.Initializer):
    # A fastinit.jax builder under Keras' (shape, dtype) protocol, its seed fixed.
    def __init__(self, init, seed):
        self.init, self.seed = init, seed

    def __call__(self, shape, dtype=None):
        return self.init(self.seed, tuple(shape), dtype)


dense = keras.layers.Dense(64, kernel_initializer=fi.GlorotUniform(seed=1),
                           bias_initializer=FromJax(fj.normal(0.1), 5))
dense.build((None, 32))
conv = keras.layers.Conv2D(8, 3, kernel_initializer=FromJax(fj.he_normal(), 7))
conv.build((None, 9, 9, 4))
model = keras.Sequential([keras.Input((32,)), dense])
out = model(np.ones((2, 32), np.float32))
print(json.dumps({
    "kernel_is_jax": isinstance(dense.kernel.value, jax.Array),
    "class": bool(np.array_equal(np.asarray(dense.kernel.value),
                                 fi.GlorotUniform(seed=1)((32, 64)))),
    "bias": bool(np.array_equal(np.asarray(dense.bias.value),
                                fi.RandomNormal(0.0, 0.1, seed=5)((64,)))),
    "conv": bool(np.array_equal(np.asarray(conv.kernel.value),
                                fi.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=7,
                                                   in_axis=-2, out_axis=-1)((3, 3, 4, 8)))),
    "forward": list(out.shape),
}))
"""


def test_keras_jax_backend():
    out = run_python(SCRIPT, env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert json.loads(out.strip().splitlines()[-1]) == {
        "kernel_is_jax": True, "class": True, "bias": True, "conv": True, "forward": [2, 64]}
