"""Drop-in: fastinit initializers in real Keras 3 layers, and fastinit.torch on real
torch.nn layers (filled in place)."""

import math

import numpy as np
import pytest

import fastinit.initializers as fi



def test_dense(keras):
    kernel_init = fi.GlorotUniform(seed=1)
    layer = keras.layers.Dense(256, kernel_initializer=kernel_init,
                               bias_initializer=fi.Constant(0.1))
    layer.build((None, 512))
    kernel = np.asarray(layer.kernel.numpy())
    bias = np.asarray(layer.bias.numpy())
    assert kernel.shape == (512, 256) and kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, kernel_init((512, 256)))
    limit = math.sqrt(6 / (512 + 256))
    assert np.abs(kernel).max() < limit
    assert kernel.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)
    np.testing.assert_allclose(bias, 0.1)
    y = layer(np.ones((2, 512), np.float32))
    assert tuple(y.shape) == (2, 256)


def test_conv2d(keras):
    layer = keras.layers.Conv2D(64, (3, 3), kernel_initializer=fi.HeNormal(seed=2),
                                bias_initializer=fi.Zeros())
    layer.build((None, 16, 16, 32))
    kernel = np.asarray(layer.kernel.numpy())
    assert kernel.shape == (3, 3, 32, 64)
    std = math.sqrt(2 / (3 * 3 * 32))
    assert kernel.std() == pytest.approx(std, rel=0.02)
    assert np.abs(kernel).max() <= 2 * std / fi.TRUNCATED_NORMAL_STDDEV
    assert not np.asarray(layer.bias.numpy()).any()


def test_names_custom_and_keras_configs(keras):
    # keras.initializers.get passes our objects and plain callables through.
    init = fi.get("kaiming_uniform")
    assert keras.initializers.get(init) is init
    layer = keras.layers.Dense(8, kernel_initializer=lambda shape, dtype=None: fi.Ones()(
        shape, dtype))
    layer.build((None, 4))
    assert (np.asarray(layer.kernel.numpy()) == 1).all()
    # A Keras config deserialises to the fastinit class; a fastinit config of a random
    # initializer never silently becomes Keras' class of the same name (other values).
    config = keras.initializers.serialize(keras.initializers.HeNormal(seed=3))
    ours = fi.deserialize(config)
    assert isinstance(ours, fi.HeNormal) and ours.seed == 3
    with pytest.raises(TypeError, match="stream_version"):
        keras.initializers.deserialize(fi.serialize(fi.GlorotUniform(seed=4)))


def test_torch_layers_in_place():
    torch = pytest.importorskip("torch")
    import fastinit.torch as ft

    linear = torch.nn.Linear(512, 256)
    conv = torch.nn.Conv2d(32, 64, 3)
    for module, fill in [(linear, lambda w: ft.kaiming_uniform_(w, a=math.sqrt(5), seed=0)),
                         (conv, lambda w: ft.kaiming_normal_(w, nonlinearity="relu", seed=0))]:
        ptrs = {name: p.data_ptr() for name, p in module.named_parameters()}
        fill(module.weight)
        ft.zeros_(module.bias)
        for name, p in module.named_parameters():
            assert p.data_ptr() == ptrs[name], name
        assert not module.bias.any()
    bound = 1 / math.sqrt(512)
    linear_w, conv_w = linear.weight.detach(), conv.weight.detach()
    assert float(linear_w.abs().max()) <= bound
    assert float(linear_w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert float(conv_w.std()) == pytest.approx(math.sqrt(2 / (32 * 9)), rel=0.02)
    out = conv(torch.ones(1, 32, 8, 8))
    assert out.shape == (1, 64, 6, 6)
