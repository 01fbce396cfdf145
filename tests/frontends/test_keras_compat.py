"""fastinit's initializers where Keras treats its own specially: layers that give a
``VarianceScaling`` the fan axes of their kernel, ``SeedGenerator`` seeds, ``Constant``
with an array value, and Keras' error messages (its own tests match them)."""

import math

import numpy as np
import pytest

import fastinit.initializers as fi


def _mha_query(keras, init):
    layer = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=init)
    layer.build((None, 10, 32), (None, 10, 32))
    return layer.query_dense, ([0], [1, 2])


def _gqa_query(keras, init):
    layer = keras.layers.GroupQueryAttention(head_dim=16, num_query_heads=8,
                                               num_key_value_heads=2, kernel_initializer=init)
    layer.build((None, 10, 32), (None, 10, 32))
    return layer._query_dense, ([0], [1, 2])


def _einsum_dense(keras, init):
    layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 8, 16),
                                     kernel_initializer=init)
    layer.build((None, 10, 32))
    return layer, ([0], [1, 2])


LAYERS = {"MultiHeadAttention": _mha_query, "GroupedQueryAttention": _gqa_query,
          "EinsumDense": _einsum_dense}
FAMILY = {"LecunNormal": (), "GlorotUniform": (), "HeUniform": (),
          "VarianceScaling": (2.0, "fan_avg", "uniform")}


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize("layer_of", list(LAYERS.values()), ids=list(LAYERS))
def test_layers_give_fan_axes_to_fastinit_variance_scaling(keras, layer_of, name):
    ours, axes = layer_of(keras, getattr(fi, name)(*FAMILY[name], seed=1))
    theirs, _ = layer_of(keras, getattr(keras.initializers, name)(*FAMILY[name], seed=1))
    kernel = np.asarray(ours.kernel)
    assert type(ours.kernel_initializer) is getattr(fi, name)
    # What Keras' own initializer gets in the same layer: the einsum's fan axes ...
    np.testing.assert_array_equal(
        kernel, getattr(fi, name)(*FAMILY[name], seed=1, input_axes=axes[0],
                                  output_axes=axes[1])(kernel.shape))
    # ... and so the same standard deviation (4096 values: about 1% sampling error).
    assert kernel.std() == pytest.approx(np.asarray(theirs.kernel).std(), rel=0.05)


def test_variance_scaling_family_is_a_keras_variance_scaling(keras):
    from keras.src.initializers.random_initializers import VarianceScaling
    for cls in (fi.VarianceScaling, fi.GlorotNormal, fi.HeNormal, fi.LecunUniform):
        assert issubclass(cls, keras.initializers.VarianceScaling)
        assert issubclass(cls, VarianceScaling)
        # fastinit's own methods come first: the values are fastinit's
        assert cls.__call__ is fi.Initializer.__call__
        assert cls.get_config is not keras.initializers.VarianceScaling.get_config


# -- Keras SeedGenerator seeds ---------------------------------------------------------


@pytest.mark.parametrize("make", [fi.RandomNormal, fi.HeNormal, fi.Orthogonal,
                                  lambda seed: fi.Sparse(0.5, seed=seed)])
def test_seed_generator_draws_a_new_seed_per_call(keras, make):
    init = make(seed=keras.random.SeedGenerator(1337))
    cls = type(init)
    first, second = init((8, 8)), init((8, 8))
    assert not np.array_equal(first, second)
    again = make(seed=keras.random.SeedGenerator(1337))   # reproducible from its seed
    np.testing.assert_array_equal(again((8, 8)), first)
    np.testing.assert_array_equal(again((8, 8)), second)
    clone = cls.from_config(init.get_config())           # the generator's seed, anew
    np.testing.assert_array_equal(clone((8, 8)), first)


def test_set_random_seed_makes_unseeded_initializers_reproducible(keras):
    """As with Keras' own initializers: keras.utils.set_random_seed fixes the seed an
    unseeded initializer draws at construction."""
    keras.utils.set_random_seed(21)
    a = [fi.GlorotUniform()((5, 3)), keras.initializers.GlorotUniform()((5, 3))]
    keras.utils.set_random_seed(21)
    b = [fi.GlorotUniform()((5, 3)), keras.initializers.GlorotUniform()((5, 3))]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]))


def test_seed_generator_config_is_keras_serializable(keras):
    import json
    init = fi.RandomUniform(seed=keras.random.SeedGenerator(7))
    config = init.get_config()
    assert config["seed"]["class_name"] == "SeedGenerator"
    json.dumps(config)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(init))
    assert type(back) is fi.RandomUniform
    np.testing.assert_array_equal(back((5,)), fi.RandomUniform(
        seed=keras.random.SeedGenerator(7))((5,)))


def test_seed_generator_check_does_not_advance_and_regions_are_refused(keras):
    init = fi.RandomNormal(seed=keras.random.SeedGenerator(3))
    init.check((4, 4))
    np.testing.assert_array_equal(init((4, 4)), fi.RandomNormal(
        seed=keras.random.SeedGenerator(3))((4, 4)))
    with pytest.raises(ValueError, match="SeedGenerator.*Received: seed="):
        init((4, 4), index=(slice(0, 2),))
    with pytest.raises(ValueError, match="integer seed"):
        init((4, 4), offset=16)


def test_seed_generator_in_a_layer(keras):
    init = fi.GlorotUniform(seed=keras.random.SeedGenerator(5))
    a = keras.layers.Dense(4, kernel_initializer=init)
    b = keras.layers.Dense(4, kernel_initializer=init)
    a.build((None, 3))
    b.build((None, 3))
    assert not np.array_equal(np.asarray(a.kernel), np.asarray(b.kernel))
    limit = math.sqrt(6 / 7)
    assert np.abs(np.asarray(a.kernel)).max() < limit


@pytest.mark.parametrize("seed", ["1", 1.0, True, object(), -1, 2**64])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="Received: seed="):
        fi.HeNormal(seed=seed)


# -- Constant with an array value --------------------------------------------------------


def test_constant_array_value_as_keras(keras):
    value = np.random.default_rng(0).random((3, 3))
    ours = fi.Constant(value)
    np.testing.assert_array_equal(ours((3, 3), dtype="float64"), value)
    np.testing.assert_array_equal(ours((3, 3)), value.astype(np.float32))
    row = fi.Constant([1.0, 2.0, 3.0])        # broadcast, as Keras' value * ones(shape)
    layer = keras.layers.Dense(3, bias_initializer=row, kernel_initializer=fi.Constant(
        [[1.0], [2.0]]))
    layer.build((None, 2))
    np.testing.assert_array_equal(np.asarray(layer.bias), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(layer.kernel), [[1.0] * 3, [2.0] * 3])
    back = fi.deserialize(fi.serialize(row))
    assert back == row and back((2, 3)).tolist() == [[1.0, 2.0, 3.0]] * 2
    np.testing.assert_array_equal(row((2, 3), index=(1, slice(1, 3))), [2.0, 3.0])


@pytest.mark.parametrize("value, shape, dtype, match", [
    ([1.0, 2.0], (3,), "float32", r"does not broadcast to shape \(3,\)"),
    ([1.5, 2.0], (2,), "int32", "not representable in int32"),
    ([1, 300], (2,), "uint8", "300 is not representable in uint8"),
    ([0, 2], (2,), "bool", "not representable in bool"),
    ([1e39], (1,), "float32", "not representable in float32"),
])
def test_constant_array_value_refused_before_writing(value, shape, dtype, match):
    out = np.full(shape, 1, dtype=dtype)
    with pytest.raises(ValueError, match=match):
        fi.Constant(value)(shape, out=out)
    assert (out == 1).all()
    with pytest.raises(ValueError, match=match):
        fi.Constant(value).check(shape, dtype)


@pytest.mark.parametrize("value", [[np.nan], ["a"], [[1.0], [2.0, 3.0]], [1 + 2j]])
def test_constant_bad_array_values(value):
    with pytest.raises(ValueError, match="value"):
        fi.Constant(value)


# -- Keras' error messages --------------------------------------------------------------


def test_error_messages_match_keras():
    with pytest.raises(ValueError, match="Argument `scale` must be positive float.*"
                                         r"Received: scale=-1\.0"):
        fi.VarianceScaling(scale=-1.0)
    with pytest.raises(ValueError, match="Invalid `mode` argument:.*Received: mode="):
        fi.VarianceScaling(mode="invalid_mode")
    with pytest.raises(ValueError, match="Invalid `distribution` argument:.*Received: "):
        fi.VarianceScaling(distribution="invalid_dist")
    with pytest.raises(ValueError, match=r"Expected `shape` to be \(5, 5\).*Received: shape"):
        fi.get(np.ones((5, 5)))((10, 10))


# -- the stream version in configs ------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, True, "1", 1.0, None])
def test_configs_of_another_stream_version_are_refused(version):
    config = {**fi.HeNormal(seed=1).get_config(), "stream_version": version}
    with pytest.raises(ValueError, match="stream_version="):
        fi.HeNormal.from_config(config)
    with pytest.raises(ValueError, match="stream_version="):
        fi.deserialize({"class_name": "HeNormal", "config": config})


def test_configs_without_a_stream_version_still_load():
    assert fi.HeNormal.from_config({"seed": 1}) == fi.HeNormal(seed=1)
    assert fi.HeNormal(seed=1).get_config()["stream_version"] == 1
    assert "stream_version" not in repr(fi.HeNormal(seed=1))


def test_constant_array_of_another_byte_order():
    value = np.array([1.5, 2.5], dtype=">f8")
    np.testing.assert_array_equal(fi.Constant(value)((2, 2)), [[1.5, 2.5]] * 2)
