"""The GPU path's Python side, run on the CPU with a fake CuPy (``tests/fake_cupy.py``).

Routing by ``device=`` / ``out=``, allocation, regions, strided outputs
through the scratch slabs, host values written to the device, bfloat16 bits,
and the initializers' GPU branches. The fake runs the NumPy backend in place
of the CUDA kernels, so every result must equal the CPU's bit for bit. The
kernels, cuSOLVER/cuBLAS and streams are tested on a GPU by tests/test_gpu.py.
"""

import numpy as np
import pytest

import fake_cupy
import fastinit.initializers as fi
from fastinit import _device, _orthogonal, _orthogonal_gpu, random as fr

from _util import assert_bits_equal

DTYPES = ["float16", "bfloat16", "float32", "float64"]
INITIALIZERS = [
    fi.RandomNormal(0.1, 0.5, seed=3), fi.RandomUniform(-2.0, 1.0, seed=3),
    fi.TruncatedNormal(stddev=0.3, seed=3), fi.GlorotUniform(seed=3), fi.HeNormal(seed=3),
    fi.VarianceScaling(2.0, "fan_avg", "truncated_normal", seed=3), fi.Zeros(), fi.Ones(),
    fi.Constant(0.25), fi.Identity(gain=2.0), fi.Sparse(0.3, stddev=1.0, seed=3),
    fi.Orthogonal(gain=1.5, seed=3),
]


@pytest.fixture
def cupy(monkeypatch):
    fake = fake_cupy.install(monkeypatch)
    # The GPU orthogonal algorithms need cuSOLVER: here the CPU's, on the same buffer.
    monkeypatch.setattr(_orthogonal_gpu, "haar", lambda matrix, **kw: _orthogonal.haar(
        np.asarray(matrix).view(np.ndarray), backend="numpy", **kw))
    return fake


def _bits(x, dtype):
    host = fake_cupy.asnumpy(x)
    return host.view(np.uint16) if dtype == "bfloat16" else host


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", INITIALIZERS, ids=lambda i: type(i).__name__)
def test_initializers_on_the_gpu_path_equal_the_cpu(cupy, init, dtype):
    shape = (96, 40)
    expected = init(shape, dtype, backend="numpy")
    expected = expected.view(np.uint16) if dtype == "bfloat16" else expected
    got = init(shape, dtype, device="cuda")
    assert isinstance(got, cupy.ndarray) and got.shape == shape
    # bfloat16: a bfloat16 view where the array library has the dtype, else uint16 bits.
    assert got.dtype.name in (("uint16", "bfloat16") if dtype == "bfloat16" else (dtype,))
    assert_bits_equal(_bits(got, dtype), expected)
    region = (slice(10, 50), slice(3, 30, 2))
    assert_bits_equal(_bits(init(shape, dtype, device="cuda:0", index=region), dtype),
                      expected[region])
    if dtype != "bfloat16":
        for out in (cupy.empty(shape, dtype, order="F"), cupy.empty((96, 80), dtype)[:, ::2]):
            assert init(shape, out=out) is out
            assert_bits_equal(_bits(out, dtype), expected)


def test_orthogonal_layouts_on_the_gpu_path(cupy):
    for init, shape in [(fi.Orthogonal(seed=1, column_axis=0), (16, 8, 3, 3)),
                        (fi.Orthogonal(seed=1), (3, 3, 8, 16)),
                        (fi.DeltaOrthogonal(seed=1), (3, 3, 4, 8))]:
        expected = init(shape, backend="numpy")
        assert_bits_equal(fake_cupy.asnumpy(init(shape, device="cuda")), expected)
        out = cupy.empty(shape, np.float32)
        assert init(out=out) is out          # computed in place in the output
        assert_bits_equal(fake_cupy.asnumpy(out), expected)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_strided_outputs_are_filled_in_slabs(cupy, monkeypatch, dtype):
    monkeypatch.setattr(_device, "_SCRATCH_ELEMENTS", 1000)  # many slabs
    expected = fr.normal((400, 200), seed=8, dtype=dtype, backend="numpy")
    fortran = cupy.empty((400, 200), dtype, order="F")
    assert fr.normal(seed=8, out=fortran) is fortran
    assert_bits_equal(fake_cupy.asnumpy(fortran), expected)
    part = cupy.empty((200, 300), dtype)[::-2, 20:170].T[::-1]  # negative strides
    fr.normal((400, 200), seed=8, index=(slice(50, 350, 2), slice(0, 100)), out=part)
    assert_bits_equal(fake_cupy.asnumpy(part), expected[50:350:2, :100])
    wide = cupy.empty((3, 5000), dtype, order="F")             # one slab row > scratch
    fr.normal((3, 5000), seed=8, out=wide)
    assert_bits_equal(fake_cupy.asnumpy(wide), fr.normal((3, 5000), seed=8, dtype=dtype,
                                                         backend="numpy"))
