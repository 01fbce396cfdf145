"""bfloat16 on the GPU path under CuPy 13's and CuPy 14's rules (the stand-in CuPy).

CuPy 13 views memory as bfloat16 but has no kernels for it and cannot export
it through DLPack (``BufferError``, which ``torch.from_dlpack`` does not
retry); CuPy 14 imports a bfloat16 DLPack producer as a bfloat16 array, whose
``fill`` and copies convert values. fastinit keeps the bits: ``device=``
results are uint16 bits on CuPy 13 and bfloat16 on CuPy 14, hand-offs go
through int16, and bfloat16 outputs are written as bits.
"""

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit import _dtypes, random as fr
from fastinit.gpu import to_jax, to_torch

from helpers import assert_bits_equal, fake_cupy

VERSIONS = ["13.6.0", "14.2.0"]


def _expected_bits(shape, **kw):
    return fr.normal(shape, dtype="bfloat16", backend="numpy", **kw).view(np.uint16)


@pytest.mark.parametrize("version", VERSIONS)
def test_device_result_and_to_torch(stand_in, monkeypatch, version):
    torch = pytest.importorskip("torch")
    cupy = stand_in(version=version)
    from helpers import fake_torch_cuda
    fake_torch_cuda.install(monkeypatch, cupy)
    b = fr.normal((64, 32), seed=2, dtype="bfloat16", device="cuda")
    for tensor in (to_torch(b, dtype="bfloat16"), to_torch(b.view(np.uint16), "bfloat16")):
        assert tensor.dtype == torch.bfloat16 and tensor.data_ptr() == b.data.ptr
        assert_bits_equal(tensor.view(torch.int16).numpy().view(np.uint16),
                          _expected_bits((64, 32), seed=2))
    # CuPy 13 can neither compute with nor export a bfloat16 array: it gets the bits.
    assert b.dtype.name == ("uint16" if version.startswith("13") else "bfloat16")
    if version.startswith("14"):
        assert to_torch(b).dtype == torch.bfloat16


@pytest.mark.parametrize("version", VERSIONS)
def test_to_jax(stand_in, monkeypatch, version):
    jax = pytest.importorskip("jax")
    cupy = stand_in(version=version)
    seen = []

    def from_dlpack(array):  # JAX on the CPU here: take the values the capsule would carry
        seen.append(array.dtype.name)
        return jax.numpy.asarray(cupy.asnumpy(array))

    monkeypatch.setattr(jax.dlpack, "from_dlpack", from_dlpack)
    b = fr.normal((16, 8), seed=2, dtype="bfloat16", device="cuda")
    j = to_jax(b, dtype="bfloat16")
    assert j.dtype == jax.numpy.bfloat16
    assert seen == (["uint16"] if version.startswith("13") else ["bfloat16"])
    assert_bits_equal(np.asarray(j).view(np.uint16), _expected_bits((16, 8), seed=2))


def _dlpack_bfloat16(cupy, shape, strided=False):
    bits = cupy.empty((shape[0], 2 * shape[1]) if strided else shape, np.uint16)
    array = (bits[:, ::2] if strided else bits).view(_dtypes.bfloat16())
    return fake_cupy.DlpackBuffer(array), array


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_dlpack_bfloat16_outputs_get_bits(cupy, strided):
    out, array = _dlpack_bfloat16(cupy, (50, 40), strided)
    assert fr.normal(seed=7, out=out) is out
    assert_bits_equal(cupy.asnumpy(array).view(np.uint16), _expected_bits((50, 40), seed=7))
    for init in (fi.Constant(0.25), fi.Identity(gain=3.0), fi.Orthogonal(seed=1)):
        init(out=out)
        expected = init((50, 40), "bfloat16", backend="numpy").view(np.uint16)
        assert_bits_equal(cupy.asnumpy(array).view(np.uint16), expected)


def test_dlpack_bfloat16_on_cupy_13_is_refused_clearly(stand_in):
    cupy = stand_in(version="13.6.0")
    out, _ = _dlpack_bfloat16(cupy, (4, 4))
    with pytest.raises(TypeError, match=r"CuPy 14 with ml_dtypes.*Received: out of type "
                                        r"DlpackBuffer"):
        fr.normal(seed=1, out=out)


@pytest.mark.parametrize("version", VERSIONS)
def test_bfloat16_cupy_outputs(stand_in, version):
    cupy = stand_in(version=version)
    bits = cupy.empty((30, 20), np.uint16)
    out = bits.view(_dtypes.bfloat16())  # CuPy 13 makes such views too, without kernels
    assert fr.normal(seed=3, out=out) is out
    assert_bits_equal(cupy.asnumpy(bits), _expected_bits((30, 20), seed=3))
    fi.Constant(-1.5)(out=out)
    expected = fi.Constant(-1.5)((30, 20), "bfloat16", backend="numpy").view(np.uint16)
    assert_bits_equal(cupy.asnumpy(bits), expected)
