"""Devices and streams of GPU outputs, on the stand-in CuPy (which logs every operation
with its stream and refuses arrays of another device).

Every operation on an output's memory runs on the device that holds it and on
the stream its producer names (torch's current stream, the ``stream`` of
``__cuda_array_interface__``); where the producer names none (DLPack,
``__cuda_array_interface__`` without ``stream``), the stream is synchronized
before the call returns. ``out=`` an ``nn.Parameter`` on CUDA works.
"""

import warnings

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit import random as fr

from helpers import assert_bits_equal, fake_cupy

STREAM = 0x5EED


def _range(tensor):
    return tensor.data_ptr(), tensor.data_ptr() + tensor.numel() * tensor.element_size()


def _streams_on(cupy, lo, hi):
    return {stream for op, stream, _, ranges in cupy.state.log
            if any(a < hi and lo < b for a, b in ranges)}


def test_out_parameter_on_cuda(cupy, torch_cuda):
    torch = pytest.importorskip("torch")
    weight = torch_cuda.empty((64, 32))
    parameter = torch.nn.Parameter(weight)
    with pytest.raises(RuntimeError, match="requires grad"):  # what hasattr() used to meet
        parameter.__cuda_array_interface__
    assert fr.normal(std=0.5, seed=1, out=parameter) is parameter
    assert parameter.requires_grad
    assert_bits_equal(parameter.detach().numpy(),
                      fr.normal((64, 32), std=0.5, seed=1, backend="numpy"))
    assert fi.Orthogonal(seed=2)(out=parameter) is parameter


@pytest.mark.parametrize("init", [fi.Orthogonal(seed=3, column_axis=1),
                                  fi.DeltaOrthogonal(seed=3)],
                         ids=["orthogonal_middle_axis", "delta_orthogonal"])
def test_torch_out_on_a_side_stream(cupy, torch_cuda, init):
    """The temporary, the factorisation and the copy-back run on torch's current stream."""
    torch_cuda.set_stream(STREAM)
    tensor = torch_cuda.empty((3, 16, 40))
    assert init(out=tensor) is tensor
    lo, hi = _range(tensor)
    assert _streams_on(cupy, lo, hi) == {STREAM}
    np.testing.assert_allclose(tensor.numpy(), init((3, 16, 40), backend="numpy"), atol=1e-5)


@pytest.mark.parametrize("init", [fi.Orthogonal(seed=3, column_axis=1),
                                  fi.DeltaOrthogonal(seed=3), fi.GlorotNormal(seed=3)],
                         ids=["orthogonal_middle_axis", "delta_orthogonal", "glorot"])
def test_device_other_than_the_current_one(stand_in, init):
    cupy = stand_in(devices=2)
    with cupy.cuda.Device(0):
        x = init((3, 16, 40), device="cuda:1")
    assert x.device.id == 1
    lo, hi = x.__cuda_array_interface__["data"][0], x.__cuda_array_interface__["data"][0] + x.nbytes
    assert {device for _, _, device, ranges in cupy.state.log
            if any(a < hi and lo < b for a, b in ranges)} == {1}
    np.testing.assert_allclose(cupy.asnumpy(x), init((3, 16, 40), backend="numpy"), atol=1e-5)


@pytest.mark.parametrize("version", ["13.6.0", "14.2.0"])
def test_torch_stream_on_both_cupy_versions(stand_in, monkeypatch, version):
    """CuPy 14: Stream.from_external (ExternalStream is deprecated); CuPy 13 has no
    from_external."""
    cupy = stand_in(version=version)
    from helpers import fake_torch_cuda
    torch_cuda = fake_torch_cuda.install(monkeypatch, cupy)
    torch_cuda.set_stream(STREAM)
    tensor = torch_cuda.empty((10, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fr.uniform(seed=0, out=tensor)
    assert _streams_on(cupy, *_range(tensor)) == {STREAM}


def _synchronized_after_last_use(cupy, stream, lo, hi):
    last = max(i for i, (op, s, _, ranges) in enumerate(cupy.state.log)
               if any(a < hi and lo < b for a, b in ranges))
    return any(op == "synchronize" and s == stream for op, s, _, _ in cupy.state.log[last:])


@pytest.mark.parametrize("kind", ["dlpack", "cai_without_stream"])
@pytest.mark.parametrize("init", [fi.RandomNormal(seed=4), fi.Constant(0.5),
                                  fi.Orthogonal(seed=4)], ids=["normal", "constant", "orthogonal"])
def test_producer_without_a_stream_gets_finished_work(cupy, kind, init):
    array = cupy.empty((40, 30), np.float32)
    out = fake_cupy.DlpackBuffer(array) if kind == "dlpack" else fake_cupy.CaiBuffer(array)
    with cupy.cuda.Stream() as stream:
        assert init(out=out) is out
    if kind == "dlpack":  # DLPack: CuPy asked the producer to order its work before ours
        assert out.consumer_streams == [stream.ptr]
    lo = array.__cuda_array_interface__["data"][0]
    assert _streams_on(cupy, lo, lo + array.nbytes) == {stream.ptr}
    assert _synchronized_after_last_use(cupy, stream.ptr, lo, lo + array.nbytes)
    np.testing.assert_allclose(cupy.asnumpy(array), init((40, 30), backend="numpy"), atol=1e-6)


def test_producer_stream_of_the_array_interface(cupy):
    array = cupy.empty((40, 30), np.float32)
    fr.normal(seed=5, out=fake_cupy.CaiBuffer(array, stream=STREAM))
    lo = array.__cuda_array_interface__["data"][0]
    assert _streams_on(cupy, lo, lo + array.nbytes) == {STREAM}
    assert_bits_equal(cupy.asnumpy(array), fr.normal((40, 30), seed=5, backend="numpy"))
