"""A stand-in for CuPy on the CPU, as strict as the real one where fastinit depends on it.

Arrays are NumPy arrays of a subclass in host memory. What it holds fastinit to
(CuPy 14.2, the version the ``cupy`` test extra pins; ``version="13.6.0"`` for
CuPy 13's rules):

- signatures: every function fastinit calls has CuPy's parameters
  (``helpers.cupy_api`` pins them; with real CuPy installed a test compares);
  ``RawModule`` is keyword-only with tuple options; ``empty`` defaults to float64;
- kernels: :mod:`helpers.fake_cupy_kernels` compiles the real sources with the
  real NVRTC, the way CuPy would for the call made (``RawModule(code=...)``
  appends ``-ftz=true``), checks every launch argument against the PTX, refuses
  PTX that flushes float32 subnormals, and runs NumPy in place of the kernels;
- devices and streams: arrays live on the device that was current when they
  were allocated; an operation on an array of another device raises (CuPy
  without peer access); every operation is logged with the current stream
  (:attr:`State.log`), so a test can see which stream touched which memory;
- memory: CuPy's pool is counted (``used_bytes``, peak), ``using_allocator``
  and ``PythonFunctionAllocator`` route allocations elsewhere, huge ones raise
  ``OutOfMemoryError``; ``shares_memory`` costs what CuPy's does;
- DLPack and bfloat16: the dtype rules of the version (CuPy 13 exports no
  bfloat16 and imports none; CuPy 14 imports a bfloat16 producer as bfloat16);
  ``fill`` converts values, ``a[...] = host_array`` is refused.

Here: the module, streams and foreign producers; ``fake_cupy_arrays`` holds the
state, devices, arrays and memory, ``fake_cupy_kernels`` NVRTC and the kernels,
``fake_cupy_linalg`` cuSOLVER and cuBLAS.
"""

import importlib.machinery
import itertools
import sys
import time
import types
import warnings

import numpy as np

from . import fake_cupy_arrays as arrays
from .fake_cupy_arrays import (Capsule, CUDARuntimeError, Device, OutOfMemoryError,  # noqa: F401
                               State, asnumpy, ndarray, state)

VERSION = "14.2.0"

# -- producers of foreign buffers ----------------------------------------------------------


class DlpackBuffer:
    """A producer that exports DLPack only (as JAX does): ``__dlpack__`` records the
    consumer's stream, which a real producer would make wait for its own work."""

    def __init__(self, array):
        self.array, self.consumer_streams = array, []

    def __dlpack_device__(self):
        return (2, self.array.device.id)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.consumer_streams.append(stream)
        return Capsule(self.array)


class CaiBuffer:
    """A producer that exports ``__cuda_array_interface__`` only, with or without a stream."""

    def __init__(self, array, stream=None):
        self.array, self.stream = array, stream

    @property
    def __cuda_array_interface__(self):
        interface = self.array.__cuda_array_interface__
        interface.pop("stream")
        if self.stream is not None:
            interface["stream"] = self.stream
        return interface


# -- streams -------------------------------------------------------------------------------


_stream_ids = itertools.count(0x7000)


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else next(_stream_ids)
        self.device_id = -1 if null else state().device

    def __enter__(self):
        state().stream_stack.append(self)
        return self

    def __exit__(self, *exc):
        state().stream_stack.pop()

    def synchronize(self):
        state().log.append(("synchronize", self.ptr, state().device, []))

    def wait_event(self, event):
        state().log.append(("wait", self.ptr, state().device, []))


def _stream_protocol(self):
    return (0, self.ptr)


def _from_external(cls, obj):
    protocol = getattr(obj, "__cuda_stream__", None)
    if protocol is None:
        raise TypeError(f"Object of type {type(obj).__name__} does not implement the CUDA "
                        "stream protocol (__cuda_stream__ method)")
    stream = cls.__new__(cls)
    stream.ptr, stream.device_id = int(protocol()[1]), -1
    return stream


class ExternalStream(Stream):
    def __init__(self, ptr, device_id=-1):
        if state().major >= 14:
            warnings.warn("ExternalStream is deprecated. Use Stream.from_external() instead "
                          "to interoperate with external streams that implement the CUDA "
                          "stream protocol.", DeprecationWarning, stacklevel=2)
        self.ptr, self.device_id = int(ptr), int(device_id)

    def __enter__(self):
        if self.device_id >= 0 and self.device_id != state().device:
            raise RuntimeError(f"The current device is {state().device} while the stream's "
                               f"device is {self.device_id}")
        return super().__enter__()


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        pass


def get_elapsed_time(start_event, end_event):
    return (end_event.time - start_event.time) * 1e3


def get_current_stream(device_id=-1):
    s = state()
    return s.stream_stack[-1] if s.stream_stack else _NULL


_NULL = Stream.__new__(Stream)
_NULL.ptr, _NULL.device_id = 0, -1


def _device_count():
    if not state().devices:
        raise CUDARuntimeError(35, "cudaErrorInsufficientDriver: CUDA driver version is "
                                   "insufficient for CUDA runtime version")
    return state().devices


# -- the module ------------------------------------------------------------------------------


def module(version=VERSION, devices=1, capability="90", nvrtc="real", linalg=True,
           capacity=64 << 30):
    """A fresh stand-in ``cupy`` module (and the modules beside it, in ``.extra``).

    ``devices=0`` models a machine without a driver; ``nvrtc="missing"`` CuPy
    without NVRTC; ``linalg=False`` without cuSOLVER/cuBLAS.
    """
    from . import fake_cupy_kernels, fake_cupy_linalg
    arrays._STATE.append(State(version, devices, capability, nvrtc, linalg, capacity))
    cupy = types.ModuleType("cupy")
    cupy.__version__ = version
    cupy.state = state()
    for name in ("ndarray", "empty", "zeros", "empty_like", "asarray", "ascontiguousarray",
                 "asnumpy", "shares_memory", "may_share_memory", "moveaxis", "diagonal",
                 "where", "isfinite", "any", "from_dlpack", "get_default_memory_pool", "eye"):
        setattr(cupy, name, getattr(arrays, name))
    for name in ("uint16", "uint32", "int16", "int32", "int64", "float16", "float32",
                 "float64", "abs"):
        setattr(cupy, name, getattr(np, name))
    cupy.RawModule = fake_cupy_kernels.RawModule
    cupy.RawKernel = fake_cupy_kernels.RawKernel
    stream_class = Stream
    if state().major >= 14:  # Stream.from_external and the stream protocol are new in 14
        stream_class = type("Stream", (Stream,), {
            "from_external": classmethod(_from_external), "__cuda_stream__": _stream_protocol})
    runtime = types.SimpleNamespace(
        getDeviceCount=_device_count, cudaDevAttrMultiProcessorCount=16,
        deviceGetAttribute=lambda attrib, device: 132, CUDARuntimeError=CUDARuntimeError,
        memGetInfo=lambda: (state().capacity - state().used.get("cupy", 0), state().capacity),
        pointerGetAttributes=arrays.runtime_pointer_attributes, runtimeGetVersion=lambda: 12090,
        getDeviceProperties=lambda device: {"name": b"CuPy stand-in (CPU)"})
    memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError,
                                   MemoryPool=arrays.MemoryPool,
                                   PythonFunctionAllocator=arrays.PythonFunctionAllocator)
    cuda = types.ModuleType("cupy.cuda")
    cuda.__dict__.update(
        Device=Device, Stream=stream_class, ExternalStream=ExternalStream, Event=Event,
        get_elapsed_time=get_elapsed_time, get_current_stream=get_current_stream,
        runtime=runtime, memory=memory, UnownedMemory=arrays.UnownedMemory,
        MemoryPointer=arrays.MemoryPointer, using_allocator=arrays.using_allocator,
        set_allocator=arrays.set_allocator,
        device=fake_cupy_linalg.handles())
    linalg_modules = fake_cupy_linalg.modules()

    def missing(name):
        if name in linalg_modules:
            if not state().linalg:
                raise ImportError(f'Failure finding "libcusolver.so.11": the stand-in models '
                                  f"CuPy without cuSOLVER/cuBLAS ({name})")
            return linalg_modules[name]
        raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")

    cuda.__getattr__ = missing
    cupy.cuda = cuda
    backends = types.ModuleType("cupy_backends")
    backends.cuda = types.ModuleType("cupy_backends.cuda")
    backends.cuda.libs = libs = types.ModuleType("cupy_backends.cuda.libs")
    libs.nvrtc = fake_cupy_kernels.nvrtc_module(state())
    cupy.extra = {"cupy.cuda": cuda, "cupy_backends": backends,
                  "cupy_backends.cuda": backends.cuda, "cupy_backends.cuda.libs": libs,
                  "cupy_backends.cuda.libs.nvrtc": libs.nvrtc}
    for name, value in [("cupy", cupy), *cupy.extra.items()]:  # importlib.util.find_spec
        value.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return cupy


def _forget_fastinit_tables():
    """Drop what fastinit keeps of the CuPy it saw (modules, kernels, allocators)."""
    import importlib
    from fastinit.backends import cuda
    cuda._sm_count.clear()
    for name, call in (("_compile", "forget"), ("_memory", "_allocators.clear")):
        try:
            module = importlib.import_module(f"fastinit.backends.cuda.{name}")
        except ImportError:  # an older fastinit (the tests also run against one)
            continue
        target = module
        for part in call.split("."):
            target = getattr(target, part)
        target()


def install(monkeypatch, **config):
    """Make ``import cupy`` give a fresh stand-in (``config``: see :func:`module`)."""
    cupy = module(**config)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    for name, value in cupy.extra.items():
        monkeypatch.setitem(sys.modules, name, value)
    _forget_fastinit_tables()
    return cupy


def install_for_process(**config):
    """:func:`install` for a whole process (the GPU check script's rehearsal)."""
    cupy = module(**config)
    sys.modules["cupy"] = cupy
    sys.modules.update(cupy.extra)
    return cupy


def real_cupy_or_skip():
    """The installed CuPy; the calling test is skipped without it or under the stand-in."""
    import pytest
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed (the cupy test extra: pip install '.[test]' on Linux)")
    if getattr(cupy, "state", None) is not None:
        pytest.skip("the stand-in CuPy is installed (a rehearsal)")
    return cupy

