"""Every initializer x backend x dtype: shape and dtype out, determinism, regions, config
round trip, registry names, the seed rule, out= and device=."""

import json

import re
import reprlib

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit.initializers import registry

from helpers import DTYPES, resolve, run_python

SEED = 1234

# (id, factory, shape): one entry per initializer class and notable configuration.
CASES = [
    ("zeros", lambda: fi.Zeros(), (3, 4)),
    ("ones", lambda: fi.Ones(), (3, 4)),
    ("constant", lambda: fi.Constant(0.25), (3, 4)),
    ("from_array", lambda: fi.FromArray(np.arange(12.0).reshape(3, 4)), (3, 4)),
    ("random_normal", lambda: fi.RandomNormal(0.5, 0.2, seed=SEED), (3, 4)),
    ("random_uniform", lambda: fi.RandomUniform(-1.0, 2.0, seed=SEED), (3, 4)),
    ("truncated_normal", lambda: fi.TruncatedNormal(0.1, 0.3, seed=SEED), (3, 4)),
    ("truncated_normal_jax", lambda: fi.TruncatedNormal(0.0, 1.0, seed=SEED, lower=1.0,
                                                        upper=4.0), (3, 4)),
    ("variance_scaling", lambda: fi.VarianceScaling(0.5, "fan_geo_avg", "untruncated_normal",
                                                    seed=SEED), (3, 3, 4, 5)),
    ("variance_scaling_jax_axes", lambda: fi.VarianceScaling(
        2.0, "fan_out", "uniform", seed=SEED, in_axis=0, out_axis=-1, batch_axis=1),
     (4, 2, 3, 5)),
    ("variance_scaling_keras_axes", lambda: fi.VarianceScaling(
        1.0, "fan_avg", "normal", seed=SEED, input_axes=[0, 1], output_axes=[2]), (3, 4, 5)),
    ("glorot_uniform", lambda: fi.GlorotUniform(seed=SEED), (6, 5)),
    ("glorot_normal", lambda: fi.GlorotNormal(seed=SEED), (6, 5)),
    ("he_uniform", lambda: fi.HeUniform(seed=SEED), (3, 3, 2, 4)),
    ("he_normal", lambda: fi.HeNormal(seed=SEED), (3, 3, 2, 4)),
    ("lecun_uniform", lambda: fi.LecunUniform(seed=SEED), (7,)),
    ("lecun_normal", lambda: fi.LecunNormal(seed=SEED), ()),
    ("orthogonal", lambda: fi.Orthogonal(1.5, seed=SEED), (4, 6)),
    ("orthogonal_torch_layout", lambda: fi.Orthogonal(seed=SEED, column_axis=0), (3, 2, 2)),
    ("identity", lambda: fi.Identity(2.0), (4, 6)),
    ("delta_orthogonal", lambda: fi.DeltaOrthogonal(seed=SEED), (3, 3, 2, 4)),
    ("dirac", lambda: fi.Dirac(groups=2), (4, 3, 3)),
    ("sparse", lambda: fi.Sparse(0.4, 0.1, seed=SEED), (5, 4)),
    ("stft", lambda: fi.STFT("imag", "hamming", "spectrum", True), (8, 1, 5)),
]
IDS = [c[0] for c in CASES]
EXACT = {"random_normal", "random_uniform", "truncated_normal", "truncated_normal_jax",
         "variance_scaling", "variance_scaling_jax_axes", "variance_scaling_keras_axes",
         "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
         "lecun_normal", "zeros", "ones", "constant", "from_array", "identity", "dirac",
         "sparse"}


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_dtype_determinism(case, backend, dtype):
    name, factory, shape = case
    init = factory()
    x = init(shape, dtype, backend=backend)
    assert isinstance(x, np.ndarray)
    assert x.shape == shape and x.dtype == resolve(dtype)
    assert np.isfinite(x.astype(np.float64)).all()
    y = init(shape, dtype, backend=backend)
    np.testing.assert_array_equal(x.astype(np.float64), y.astype(np.float64))


def test_backends_agree_bit_for_bit(case):
    name, factory, shape = case
    pytest.importorskip("numba")
    init = factory()
    a = init(shape, "float32", backend="numpy")
    b = init(shape, "float32", backend="numba")
    if name in EXACT:
        assert a.tobytes() == b.tobytes()
    else:  # QR and windows: same Gaussian input, linear algebra in float64
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_default_dtype_is_float32(case):
    name, factory, shape = case
    assert factory()(shape).dtype == np.float32


def test_region_equals_the_part_of_the_whole(case):
    name, factory, shape = case
    if len(shape) < 2:
        pytest.skip("needs two axes")
    init = factory()
    whole = init(shape)
    index = (slice(1, None), slice(0, shape[1], 2))
    np.testing.assert_array_equal(init(shape, index=index), whole[index])
    np.testing.assert_array_equal(init(shape, index=(0,)), whole[0])


def test_out_fills_in_place_any_layout(case):
    name, factory, shape = case
    init = factory()
    whole = init(shape)
    buf = np.empty(shape, dtype=np.float32, order="F")
    result = init(shape, out=buf)
    assert result is buf
    np.testing.assert_array_equal(buf, whole)
    buf2 = np.zeros(shape, np.float32)
    assert init(out=buf2) is buf2  # the shape defaults to out's
    np.testing.assert_array_equal(buf2, whole)


class _IndexLike:
    """An integer only through ``__index__`` (``SupportsIndex``, as annotated), like a
    framework's integer scalar."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def test_offset_and_stream_take_any_index_like_integer(case):
    """offset= and stream= take what has ``__index__``, as their annotations say, with the
    values of the int: Sparse (and the complex initializers, below) once did arithmetic on
    the offset as given and failed with a bare TypeError."""
    name, factory, shape = case
    init = factory()
    np.testing.assert_array_equal(init(shape, offset=_IndexLike(5), stream=_IndexLike(2)),
                                  init(shape, offset=5, stream=2))


@pytest.mark.parametrize("make", [lambda: fi.RandomNormal(seed=SEED),
                                  lambda: fi.GlorotUniform(seed=SEED)],
                         ids=["random_normal", "glorot_uniform"])
def test_complex_offset_takes_any_index_like_integer(make):
    init = make()
    np.testing.assert_array_equal(init((3, 4), "complex64", offset=_IndexLike(7)),
                                  init((3, 4), "complex64", offset=7))


def test_config_round_trip(case):
    name, factory, shape = case
    init = factory()
    config = init.get_config()
    json.dumps(config)  # JSON-serializable
    again = type(init).from_config(config)
    assert again.get_config() == config
    np.testing.assert_array_equal(again(shape), init(shape))
    data = registry.serialize(init)
    back = registry.deserialize(json.loads(json.dumps(data)))
    assert type(back) is type(init) and back.get_config() == config
    np.testing.assert_array_equal(back(shape), init(shape))
    np.testing.assert_array_equal(init.clone()(shape), init(shape))  # seeded: same values


def test_registry_names(case):
    name, factory, shape = case
    cls = type(factory())
    if cls in (fi.FromArray, fi.Sparse):  # no defaults for value / sparsity
        with pytest.raises(ValueError, match="Received: config=None"):
            registry.get(cls.__name__)
    else:
        assert type(registry.get(cls.__name__)) is cls
    assert cls.__name__ in registry.names()
    assert registry._snake_case(cls.__name__) in registry.names()


def test_stream_changes_seeded_values(case):
    name, factory, shape = case
    init = factory()
    if not hasattr(init, "seed"):
        pytest.skip("not random")
    a, b = init(shape), init(shape, stream=1)
    assert a.shape == b.shape
    if a.size > 1:
        assert not np.array_equal(a, b)


# -- the seed rule ----------------------------------------------------------------------


SEEDED = [fi.RandomNormal, fi.RandomUniform, fi.TruncatedNormal, fi.VarianceScaling,
          fi.GlorotUniform, fi.GlorotNormal, fi.HeUniform, fi.HeNormal, fi.LecunUniform,
          fi.LecunNormal, fi.Orthogonal, fi.DeltaOrthogonal]


@pytest.mark.parametrize("cls", SEEDED, ids=lambda c: c.__name__)
def test_seed_rule(cls):
    shape = (3, 4, 4) if cls is fi.DeltaOrthogonal else (4, 4)
    unseeded = cls()
    assert unseeded.get_config()["seed"] is None
    x = unseeded(shape)
    np.testing.assert_array_equal(unseeded(shape), x)               # drawn once, at construction
    assert not np.array_equal(unseeded.clone()(shape), x)           # a clone draws a new seed
    assert not np.array_equal(cls()(shape), x)                      # so does a new instance
    seeded = cls(seed=5)
    np.testing.assert_array_equal(cls(seed=5)(shape), seeded(shape))  # int seed: reproducible
    np.testing.assert_array_equal(seeded.clone()(shape), seeded(shape))
    assert not np.array_equal(seeded(shape, stream=1), seeded(shape))


def test_unseeded_initializers_follow_pythons_random_seed():
    """seed=None draws from Python's ``random`` (as Keras' own initializers do), so
    ``random.seed`` - which ``keras.utils.set_random_seed`` calls - makes them
    reproducible; without it, two initializers differ."""
    import random
    random.seed(11)
    first = [fi.HeNormal()((4, 4)), fi.Orthogonal()((4, 4))]
    random.seed(11)
    again = [fi.HeNormal()((4, 4)), fi.Orthogonal()((4, 4))]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fi.HeNormal()((4, 4)), fi.HeNormal()((4, 4)))


FORKED_SEEDS = """
import os, random
import fastinit.initializers as fi
random.seed(3)
seeds = []
for _ in range(2):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its unseeded initializer's seed, then exit at once
        os.write(write, str(fi.RandomNormal().seed).encode())
        os._exit(0)
    os.close(write)
    seeds.append(int(os.read(read, 64)))
    os.close(read)
    os.waitpid(pid, 0)
seeds.append(fi.RandomNormal().seed)
print(len(set(seeds)))
"""


def test_forked_children_do_not_repeat_their_parents_unseeded_seeds():
    """Python reseeds ``random`` in a forked child: two children (and the parent) draw
    different seeds even after ``random.seed`` in the parent. (In a fresh interpreter:
    this one may run JAX's threads, which a fork must not inherit.)"""
    import os
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    assert run_python(FORKED_SEEDS).strip() == "3"


def test_streams_are_independent():
    init = fi.RandomNormal(stddev=1.0, seed=0)
    a = init((200_000,), stream=0).astype(np.float64)
    b = init((200_000,), stream=1).astype(np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="Received: seed="):
        fi.RandomNormal(seed=seed)


def test_glorot_matches_engine_directly():
    # The layer above the engine adds nothing but parameters: same bits as fastinit.random.
    import fastinit.random as fr

    p = fi.GlorotUniform(seed=3).parameters((20, 30))
    expected = fr.uniform((20, 30), -p["limit"], p["limit"], seed=3)
    np.testing.assert_array_equal(fi.GlorotUniform(seed=3)((20, 30)), expected)


# -- complex dtypes (JAX) -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_complex_variance_scaling(dtype, distribution, backend):
    init = fi.VarianceScaling(2.0, "fan_in", distribution, seed=SEED)
    shape = (200, 300)
    z = init(shape, dtype, backend=backend)
    assert z.dtype == np.dtype(dtype) and z.shape == shape
    target = 2.0 / 200
    power = float(np.mean(np.abs(z) ** 2))
    expected = target
    if distribution == "truncated_normal":  # JAX's constant; see COMPLEX_TRUNCATED_NORMAL_STDDEV
        expected = target * (1 - 4 * np.exp(-4) / (1 - np.exp(-4))) \
            / fi.COMPLEX_TRUNCATED_NORMAL_STDDEV ** 2
        assert np.abs(z).max() <= 2 * np.sqrt(target) / fi.COMPLEX_TRUNCATED_NORMAL_STDDEV * 1.0001
    if distribution == "uniform":
        assert np.abs(z).max() <= np.sqrt(2 * target) * 1.0001
    assert power == pytest.approx(expected, rel=0.02)
    assert abs(np.mean(z)) < 0.01 * np.sqrt(target) * 10
    np.testing.assert_array_equal(init(shape, dtype, index=(slice(5, 9),)), z[5:9])
    np.testing.assert_array_equal(init(shape, dtype, backend=backend), z)


def test_complex_normal_parts():
    z = fi.RandomNormal(0.0, 1.0, seed=0)((100_000,), "complex128")
    assert np.std(z.real) == pytest.approx(np.sqrt(0.5), rel=0.02)
    assert np.std(z.imag) == pytest.approx(np.sqrt(0.5), rel=0.02)


def test_complex_rejected_for_uniform():
    with pytest.raises(TypeError, match="Received: dtype"):
        fi.RandomUniform(seed=0)((2, 2), "complex64")


# -- calls ---------------------------------------------------------------------------------


def _no_gpu():
    import fastinit.gpu
    if fastinit.gpu.is_available():
        pytest.skip("a GPU is available: the GPU tests cover device='cuda'")
    from fastinit.backends.cuda import GpuUnavailableError
    return GpuUnavailableError


def test_device_cuda_without_a_gpu_is_a_clear_error():
    error = _no_gpu()
    with pytest.raises(error, match="device='cuda' needs (CuPy|an NVIDIA GPU)"):
        fi.GlorotUniform(seed=0)((2, 2), device="cuda")
    with pytest.raises(error, match="device='cuda:1' needs"):
        fi.Zeros()((2, 2), device="cuda:1")
    assert fi.Zeros()((2,), device="cpu").shape == (2,)
    with pytest.raises(ValueError, match="Received: device="):
        fi.Zeros()((2,), device="tpu")
    with pytest.raises(ValueError, match="Received: backend='numba'"):
        fi.Zeros()((2,), device="cuda", backend="numba")


def test_gpu_out_without_a_gpu_is_a_clear_error():
    error = _no_gpu()

    class FakeCupy:
        __cuda_array_interface__ = {}
        shape = (2, 2)

    with pytest.raises(error, match="out of type .*FakeCupy needs"):
        fi.HeNormal(seed=0)((2, 2), out=FakeCupy())


@pytest.mark.parametrize("kwargs, error", [
    ({"backend": "cupy"}, ValueError),
    ({"stream": -1}, ValueError),
    ({"out": np.empty((3, 3), np.float32)}, ValueError),
    ({"out": np.empty((2, 2), np.float64), "dtype": "float32"}, TypeError),
    ({"dtype": "int32"}, TypeError),
])
def test_bad_call_keywords(kwargs, error):
    with pytest.raises(error, match="Received"):
        fi.GlorotUniform(seed=0)((2, 2), **kwargs)


def test_constant_initializers_take_any_numeric_dtype():
    assert fi.Ones()((2,), "int64").dtype == np.int64
    np.testing.assert_array_equal(fi.Identity()((2, 2), "int32"), np.eye(2, dtype=np.int32))
    assert fi.Zeros()((2,), "bool").dtype == np.bool_


UNREPRESENTABLE = [  # (initializer, dtype, the value named in the error)
    (lambda: fi.Constant(-1), "uint8", "-1"),
    (lambda: fi.Identity(0.5), "int8", "0.5"),            # once: zeros
    (lambda: fi.Identity(-1), "uint8", "-1.0"),           # once: 255 on the diagonal
    (lambda: fi.Identity(300), "int8", "300.0"),
    (lambda: fi.Identity(2), "bool", "2.0"),
    (lambda: fi.Identity(1e5), "float16", "100000.0"),    # once: inf
    (lambda: fi.FromArray([[1e6, 1.0], [0.0, 2.0]]), "float16", "1000000.0"),  # once: inf
    (lambda: fi.FromArray([[1e39, 1.0], [0.0, 2.0]]), "bfloat16", "1e+39"),
    (lambda: fi.FromArray([[1.5, 1.0], [0.0, 2.0]]), "int32", "1.5"),
    (lambda: fi.FromArray([[1.0, np.nan], [0.0, 2.0]]), "int32", "nan"),
    (lambda: fi.FromArray(np.array([[2**63, 1], [0, 2]], np.uint64)), "int64",
     "9223372036854775808"),
    (lambda: fi.FromArray([[2.0**63, 1.0], [0.0, 2.0]]), "int64", "9.223372036854776e+18"),
    (lambda: fi.FromArray([[-1, 1], [0, 2]]), "uint16", "-1"),
    (lambda: fi.FromArray([[3, 1], [0, 1]]), "bool", "3"),
    (lambda: fi.Constant(-2**63 - 1), "int64", "-9223372036854775809"),  # exact, no overflow
    (lambda: fi.Constant(10**400), "float64", reprlib.repr(10**400)),
    (lambda: fi.Constant(10**400), "int8", reprlib.repr(10**400)),
    (lambda: fi.Constant(2**64), "uint64", "18446744073709551616"),
]


@pytest.mark.parametrize("make, dtype, value", UNREPRESENTABLE)
def test_values_the_dtype_cannot_hold_are_refused(make, dtype, value):
    """Identity's gain and FromArray's values follow Constant's rule: a ValueError naming
    the value, before anything is written (out keeps its contents)."""
    out = np.full((2, 2), 1, dtype=resolve(dtype) if dtype == "bfloat16" else np.dtype(dtype))
    before = out.copy()
    with pytest.raises(ValueError, match=rf" {re.escape(value)} is not representable "
                                         rf"in {dtype}\. Received: "):
        make()((2, 2), dtype, out=out)
    np.testing.assert_array_equal(out, before)


def test_values_the_dtype_can_hold_are_written():
    np.testing.assert_array_equal(fi.Identity(-1)((2, 2), "int8"), -np.eye(2, dtype=np.int8))
    assert fi.Identity(1)((2, 2), "bool").dtype == np.bool_
    np.testing.assert_array_equal(fi.FromArray([[np.inf, -1], [0, 2]])((2, 2), "float16"),
                                  np.array([[np.inf, -1], [0, 2]], np.float16))
    np.testing.assert_array_equal(fi.FromArray(np.array([[2**63 - 1, 0], [0, 1]]))(
        (2, 2), "int64"), np.array([[2**63 - 1, 0], [0, 1]]))
    region = fi.FromArray([[1.0, 2.0], [1e6, 3.0]])  # the whole array counts, every shard alike
    with pytest.raises(ValueError, match="1000000.0"):
        region((2, 2), "float16", index=(0,))


# -- custom initializers ---------------------------------------------------------------------


class KerasStyle(fi.Initializer):
    """A custom initializer written the Keras way: only __call__(shape, dtype)."""

    def __init__(self, value=3.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=dtype or "float32")

    def get_config(self):
        return {"value": self.value}


def plain(shape, dtype=None):
    return np.arange(np.prod(shape), dtype=dtype or "float32").reshape(shape)


@pytest.mark.parametrize("custom", [KerasStyle(), plain], ids=["subclass", "function"])
def test_custom_initializers_work_everywhere(custom):
    assert fi.get(custom) is custom
    x = fi.call_initializer(custom, (3, 4))
    assert x.shape == (3, 4) and x.dtype == np.float32
    buf = np.empty((4, 3), np.float64).T
    assert fi.call_initializer(custom, (3, 4), out=buf) is buf
    np.testing.assert_array_equal(buf, x)
    np.testing.assert_array_equal(fi.call_initializer(custom, (3, 4), index=(1,)), x[1])
    data = fi.serialize(custom)
    name = data["class_name"]
    back = fi.deserialize(data, custom_objects={name: type(custom) if
                                                isinstance(custom, fi.Initializer) else custom})
    np.testing.assert_array_equal(fi.call_initializer(back, (3, 4)), x)


def test_call_initializer_refuses_stream_for_plain_callables():
    with pytest.raises(ValueError, match="Received: stream="):
        fi.call_initializer(plain, (2,), stream=3)


# -- imports -------------------------------------------------------------------------------


def test_front_ends_import_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, json, fastinit, fastinit.initializers, fastinit.torch, fastinit.jax\n"
            "fastinit.initializers.GlorotUniform(seed=0)((4, 4), backend='numpy')\n"
            "fastinit.initializers.STFT(window=None)((4, 1, 3))\n"
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = ("numba", "llvmlite", "scipy", "ml_dtypes", "torch", "jax", "keras", "cupy")
    assert [m for m in modules if m.split(".")[0] in heavy] == []
