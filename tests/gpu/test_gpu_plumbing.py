"""The GPU path's Python side, run on the CPU with the stand-in CuPy (``helpers.fake_cupy``).

Routing by ``device=`` / ``out=``, allocation, regions, strided outputs
through the scratch slabs, host values written to the device, bfloat16 bits,
and the initializers' GPU branches. The stand-in compiles the CUDA files with
the real NVRTC, checks each launch against the PTX and runs NumPy in place of
the kernels, so every result must equal the CPU's bit for bit. The kernels,
cuSOLVER/cuBLAS and streams themselves are tested on a GPU by tests/gpu/test_gpu.py.
"""

import numpy as np
import pytest

from helpers import fake_cupy
import fastinit.initializers as fi
from fastinit import _target, random as fr

from helpers import assert_bits_equal, exact_initializers

DTYPES = ["float16", "bfloat16", "float32", "float64"]
TOL = {"float32": 2e-5, "float64": 1e-12}


def _bits(x, dtype):
    host = fake_cupy.asnumpy(x)
    return host.view(np.uint16) if dtype == "bfloat16" else host


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, init", exact_initializers(),
                         ids=[name for name, _ in exact_initializers()])
def test_initializers_on_the_gpu_path_equal_the_cpu(cupy, name, init, dtype):
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


@pytest.mark.parametrize("method", ["auto", "stewart", "cholqr2", "qr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, column_axis", [
    ((64, 64), -1), ((300, 40), -1), ((40, 300), -1), ((130, 100), -1), ((100, 130), -1),
    ((3, 3, 8, 16), -1), ((16, 8, 3, 3), 0), ((700, 100), -1)])
def test_orthogonal_gpu_algorithms(cupy, shape, column_axis, dtype, method):
    # fastinit.backends.cuda.orthogonal end to end: the same Gaussian matrix, the solver calls
    # (here LAPACK/BLAS with cuSOLVER/cuBLAS's arguments) and layouts; equal to the CPU
    # result up to rounding, orthonormal, in place in a GPU out.
    init = fi.Orthogonal(gain=1.5, seed=5, column_axis=column_axis, method=method)
    got = init(shape, dtype, device="cuda")
    assert isinstance(got, cupy.ndarray)
    host = fake_cupy.asnumpy(got)
    m = np.moveaxis(host, column_axis, -1).reshape(-1, shape[column_axis]).astype(np.float64)
    m = m if m.shape[0] >= m.shape[1] else m.T
    assert np.abs(m.T @ m / 1.5 ** 2 - np.eye(m.shape[1])).max() <= TOL[dtype]
    np.testing.assert_allclose(host, init(shape, dtype, backend="numpy"), rtol=0,
                               atol=10 * TOL[dtype])
    for order in ("C", "F"):
        out = cupy.empty(shape, dtype, order=order)
        assert init(out=out) is out
        np.testing.assert_array_equal(fake_cupy.asnumpy(out), host)


def test_delta_orthogonal_on_the_gpu_path(cupy):
    init = fi.DeltaOrthogonal(seed=1)
    got = fake_cupy.asnumpy(init((3, 3, 4, 8), device="cuda"))
    np.testing.assert_allclose(got, init((3, 3, 4, 8), backend="numpy"), atol=1e-5)
    assert (got[0] == 0).all() and (got[:, 0] == 0).all()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_strided_outputs_are_filled_in_slabs(cupy, monkeypatch, dtype):
    monkeypatch.setattr(_target, "GPU_SCRATCH_ELEMENTS", 1000)  # many slabs
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


def test_kernels_are_loaded_from_fastinits_own_build(cupy, monkeypatch, kernel_cache):
    """Every module comes from fastinit's NVRTC build, by path: CuPy adds no -ftz=true."""
    made = []
    real = cupy.RawModule

    def recording(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(cupy, "RawModule", recording)
    fr.normal(10, seed=0, device="cuda")
    fi.Orthogonal(seed=0, method="stewart")((40, 30), device="cuda")
    assert len(made) == 2 and all(set(kw) == {"path"} for kw in made)
    assert all(kw["path"].startswith(str(kernel_cache)) for kw in made)


def test_the_stand_in_refuses_what_cupys_own_pipeline_compiles(cupy, monkeypatch):
    """RawModule(code=..., options=...) appends -ftz=true: float32 subnormals would flush."""
    from fastinit.backends.cuda import _compile, sources

    def cupy_pipeline(cupy_module, name, source, kernel):  # fastinit before it compiled itself
        module = cupy_module.RawModule(code=source(), options=sources.OPTIONS)
        return module.get_function(kernel)

    monkeypatch.setattr(_compile, "function", cupy_pipeline)
    with pytest.raises(AssertionError, match="flushes float32 subnormals"):
        fr.normal(10, seed=0, device="cuda")
    fr.normal(10, seed=0, dtype="float64", device="cuda")  # no float32 arithmetic: no flush
