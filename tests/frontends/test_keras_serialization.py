"""Keras' own serialization keeps fastinit's classes: layers.serialize/deserialize and
model.save/load_model give fastinit's initializers back, with the same values."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit.initializers import registry
from fastinit.initializers.base import SeededInitializer



def _dense(keras, init):
    return keras.layers.Dense(6, kernel_initializer=init), (None, 5), (5, 6)


def _conv(keras, init):
    return keras.layers.Conv2D(4, (3, 3), kernel_initializer=init), (None, 8, 8, 4), (3, 3, 4, 4)


CASES = {
    fi.Zeros: (lambda: fi.Zeros(), _dense), fi.Ones: (lambda: fi.Ones(), _dense),
    fi.Constant: (lambda: fi.Constant(0.5), _dense),
    fi.FromArray: (lambda: fi.FromArray(np.arange(30.0).reshape(5, 6)), _dense),
    fi.RandomNormal: (lambda: fi.RandomNormal(0.1, 0.2, seed=1), _dense),
    fi.RandomUniform: (lambda: fi.RandomUniform(-0.3, 0.2, seed=1), _dense),
    fi.TruncatedNormal: (lambda: fi.TruncatedNormal(stddev=0.3, seed=1), _dense),
    fi.VarianceScaling: (lambda: fi.VarianceScaling(2.0, "fan_avg", "uniform", seed=1), _dense),
    fi.GlorotUniform: (lambda: fi.GlorotUniform(seed=1), _dense),
    fi.GlorotNormal: (lambda: fi.GlorotNormal(seed=1), _dense),
    fi.HeUniform: (lambda: fi.HeUniform(seed=1), _dense),
    fi.HeNormal: (lambda: fi.HeNormal(seed=1), _dense),
    fi.LecunUniform: (lambda: fi.LecunUniform(seed=1), _dense),
    fi.LecunNormal: (lambda: fi.LecunNormal(seed=1), _dense),
    fi.Orthogonal: (lambda: fi.Orthogonal(1.5, seed=1), _dense),
    fi.Identity: (lambda: fi.Identity(2.0), _dense),
    fi.STFT: (lambda: fi.STFT(), lambda keras, init: (
        keras.layers.Conv1D(4, 8, kernel_initializer=init), (None, 16, 1), (8, 1, 4))),
    fi.DeltaOrthogonal: (lambda: fi.DeltaOrthogonal(seed=1), _conv),
    fi.Dirac: (lambda: fi.Dirac(), _conv),
    fi.Sparse: (lambda: fi.Sparse(0.3, seed=1), _dense),
}


def test_every_class_has_a_case():
    assert set(CASES) == set(registry.ALL_OBJECTS)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_layer_round_trip(keras, cls):
    make, layer_of = CASES[cls]
    init = make()
    layer, input_shape, kernel_shape = layer_of(keras, init)
    config = keras.layers.serialize(layer)
    assert config["config"]["kernel_initializer"]["registered_name"] == f"fastinit>{cls.__name__}"
    back = keras.layers.deserialize(config)
    assert type(back.kernel_initializer) is cls
    assert back.kernel_initializer == init
    back.build(input_shape)
    np.testing.assert_array_equal(np.asarray(back.kernel), init(kernel_shape))


def test_save_and_load_model(keras, tmp_path):
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        keras.layers.Conv2D(4, (3, 3), kernel_initializer=fi.HeNormal(seed=7),
                            bias_initializer=fi.Constant(0.1)),
        keras.layers.Flatten(),
        keras.layers.Dense(3, kernel_initializer=fi.Sparse(0.5, seed=2)),
    ])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    conv, dense = loaded.layers[0], loaded.layers[2]
    assert type(conv.kernel_initializer) is fi.HeNormal
    assert type(conv.bias_initializer) is fi.Constant
    assert type(dense.kernel_initializer) is fi.Sparse
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fresh = keras.layers.Conv2D.from_config(conv.get_config())  # a rebuilt layer: same values
    fresh.build((None, 8, 8, 2))
    np.testing.assert_array_equal(np.asarray(fresh.kernel), fi.HeNormal(seed=7)((3, 3, 2, 4)))


def test_fastinit_reads_keras_configs(keras):
    config = keras.initializers.serialize(fi.GlorotUniform(seed=3))
    assert fi.deserialize(config) == fi.GlorotUniform(seed=3)
    assert type(fi.get("fastinit>HeNormal")) is fi.HeNormal


def test_registered_custom_class(keras):
    @fi.register(name="fastinit_test>Halves")
    class Halves(fi.Initializer):
        dtype_kind = "any"

        def generate(self, request):
            return request.write(0.5)

    layer = keras.layers.Dense(2, kernel_initializer=Halves())
    back = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(back.kernel_initializer) is Halves


@pytest.mark.parametrize("first", ["fastinit", "keras"])
def test_import_order(first, keras):
    imports = ["import fastinit.initializers as fi", "import keras"]
    code = "\n".join(imports if first == "fastinit" else imports[::-1]) + textwrap.dedent("""
        import sys
        layer = keras.layers.Dense(3, kernel_initializer=fi.GlorotUniform(seed=1))
        back = keras.layers.deserialize(keras.layers.serialize(layer))
        print(type(back.kernel_initializer) is fi.GlorotUniform
              and issubclass(fi.HeNormal, keras.initializers.VarianceScaling))
    """)
    script = "import fastinit, sys\nassert 'keras' not in sys.modules\n" + code
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "numpy")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "True"


# A model saved with fastinit's initializers, loaded where fastinit was never imported:
# Keras imports no module a config names (only keras.*, keras_hub.*, ...), and finds
# "GlorotUniform" among its own classes; the config's "stream_version" makes Keras' class
# refuse it, so the load fails loudly instead of re-initialising with other values.
SAVE = """
import os, sys
os.environ["KERAS_BACKEND"] = sys.argv[1]
import keras
import fastinit.initializers as fi
model = keras.Sequential([
    keras.Input((4,)),
    keras.layers.Dense(3, kernel_initializer=fi.{init}, bias_initializer=fi.Constant(0.5)),
])
model.save(sys.argv[2])
"""

LOAD = """
import os, sys
os.environ["KERAS_BACKEND"] = sys.argv[1]
import keras
try:
    model = keras.saving.load_model(sys.argv[2])
    print("loaded", type(model.layers[0].kernel_initializer).__module__,
          type(model.layers[0].bias_initializer).__module__)
except Exception as exc:
    print("refused", type(exc).__name__, "stream_version" in str(exc),
          "fastinit>" in str(exc))
print("fastinit imported:", "fastinit" in sys.modules)
import fastinit.initializers as fi   # the documented rule: import fastinit first
model = keras.saving.load_model(sys.argv[2])
print("with fastinit", type(model.layers[0].kernel_initializer).__module__)
"""


def _run(script, *args):
    env = {**os.environ}
    env.pop("KERAS_BACKEND", None)
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.splitlines()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_loading_without_fastinit_fails_loudly(keras, tmp_path, backend):
    pytest.importorskip(backend)
    path = str(tmp_path / "model.keras")
    _run(SAVE.replace("{init}", "GlorotUniform(seed=1)"), backend, path)
    first, imported, with_fastinit = _run(LOAD, backend, path)
    assert first == "refused TypeError True True", first
    assert imported == "fastinit imported: False"
    assert with_fastinit.startswith("with fastinit fastinit.initializers.")


#: fastinit's random initializers that Keras also has (fastinit's Sparse and DeltaOrthogonal
#: are not Keras names: a config of theirs cannot load without fastinit at all).
KERAS_RANDOM = ("RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
                "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
                "LecunNormal", "Orthogonal")


def test_keras_random_names_are_all_of_fastinit_random_ones(keras):
    seeded = {c.__name__ for c in registry.ALL_OBJECTS if issubclass(c, SeededInitializer)}
    assert seeded - set(KERAS_RANDOM) == {"Sparse", "DeltaOrthogonal"}
    assert all(hasattr(keras.initializers, name) for name in KERAS_RANDOM)
    assert not any(hasattr(keras.initializers, name) for name in ("Sparse", "DeltaOrthogonal"))


@pytest.mark.parametrize("name", KERAS_RANDOM)
def test_keras_classes_refuse_fastinit_configs(keras, name):
    """Keras' class of the same name refuses fastinit's config, as it does in a process
    that never imported fastinit."""
    ours = CASES[getattr(fi, name)][0]()
    with pytest.raises(TypeError, match="stream_version"):
        getattr(keras.initializers, name).from_config(ours.get_config())
