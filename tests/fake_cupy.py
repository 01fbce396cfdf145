"""A stand-in for CuPy on the CPU, for testing fastinit's GPU plumbing without a GPU.

Arrays are NumPy arrays of a subclass that exports ``__cuda_array_interface__``
(so fastinit routes them to its GPU path); the CUDA fill kernels are replaced
by the NumPy backend (:func:`install`). What this checks is the Python side
of the GPU path: routing, allocation, regions, strided outputs, writes of
host values, bfloat16 bits, the initializers' GPU branches. The CUDA kernels
themselves, cuSOLVER/cuBLAS and streams are only exercised by tests/test_gpu.py
on a real GPU.
"""

import sys
import types

import numpy as np


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    @property
    def __cuda_array_interface__(self):
        interface = dict(self.__array_interface__)
        interface["version"] = 3
        return interface

    @property
    def device(self):
        return Device(0)


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def _wrap(array):
    return np.asarray(array).view(ndarray)


def empty(shape, dtype=np.float32, order="C"):
    return _wrap(np.empty(shape, dtype=dtype, order=order))


def asarray(values, dtype=None):
    return _wrap(np.array(values, dtype=dtype, copy=True))


def asnumpy(array):
    return np.array(np.asarray(array).view(np.ndarray), copy=True)


def module():
    """The fake ``cupy`` module."""
    cupy = types.ModuleType("cupy")
    cupy.ndarray = ndarray
    cupy.empty = empty
    cupy.asarray = asarray
    cupy.asnumpy = asnumpy
    cupy.moveaxis = np.moveaxis
    cupy.shares_memory = np.shares_memory
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    memory = types.SimpleNamespace(OutOfMemoryError=MemoryError)
    cupy.cuda = types.SimpleNamespace(Device=Device, runtime=runtime, memory=memory)
    return cupy


def install(monkeypatch):
    """Make ``import cupy`` give the fake and the CUDA fills run the NumPy backend."""
    from fastinit.backends import cupy_backend, numpy_backend
    from fastinit import _dtypes

    def fill(dist, key, out, run_starts, run_length, *, dtype=None, grid=None, block=None):
        assert isinstance(out, ndarray) and out.ndim == 1 and out.flags.c_contiguous
        view = np.asarray(out).view(np.ndarray)
        if dtype == "bfloat16":
            view = view.view(_dtypes.bfloat16())
        numpy_backend.fill(dist, key, view, run_starts, run_length)

    fake = module()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cupy_backend, "fill", fill)
    return fake
