"""The stand-in CuPy's state, devices, arrays and memory (see ``helpers.fake_cupy``).

Arrays are NumPy arrays of a subclass in host memory, registered as memory of
the device that was current when they were allocated; every operation on them
checks the devices and is logged with the current stream (``State.log``).
"""

import contextlib
import ctypes
import types
import weakref
from bisect import bisect_right

import numpy as np

_STATE = []  # the state of the installed stand-in


class CUDARuntimeError(RuntimeError):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


class OutOfMemoryError(MemoryError):
    pass


class State:
    """Devices, streams, memory and the log of one stand-in."""

    def __init__(self, version, devices, capability, nvrtc, linalg, capacity):
        self.version, self.major = version, int(version.split(".")[0])
        self.devices, self.capability = devices, capability
        self.nvrtc, self.linalg, self.capacity = nvrtc, linalg, capacity
        self.device_stack, self.stream_stack = [0], []
        self.starts, self.blocks = [], {}    # registered memory: start -> (size, device, kind)
        self.used, self.peak = {}, 0          # bytes per kind; CuPy pool peak
        self.log = []                         # (operation, stream, device, ranges)
        self.allocator = None                 # using_allocator (thread-local in CuPy)
        self.default_allocator = None         # set_allocator

    # -- memory -----------------------------------------------------------------------
    def register(self, start, size, device, kind, owner=None):
        if start in self.blocks:
            raise AssertionError(f"memory at {start:#x} registered twice")
        self.starts.insert(bisect_right(self.starts, start), start)
        self.blocks[start] = (size, device, kind)
        self.used[kind] = self.used.get(kind, 0) + size
        if kind == "cupy":
            self.peak = max(self.peak, self.used[kind])
        if owner is not None:
            weakref.finalize(owner, self.release, start)

    def release(self, start):
        size, _, kind = self.blocks.pop(start)
        self.starts.remove(start)
        self.used[kind] -= size

    def block(self, address):
        """``(start, size, device, kind)`` of the registered memory holding ``address``."""
        i = bisect_right(self.starts, address) - 1
        if i >= 0:
            start = self.starts[i]
            size, device, kind = self.blocks[start]
            if start <= address < start + max(size, 1):
                return start, size, device, kind
        return None

    # -- devices and streams --------------------------------------------------------
    @property
    def device(self):
        return self.device_stack[-1]

    @property
    def stream(self):
        return self.stream_stack[-1].ptr if self.stream_stack else 0

    def kernel(self, operation, arrays, stream=None):
        """Check that ``arrays`` are on the current device, and log the operation."""
        if not self.devices:
            raise CUDARuntimeError(35, "cudaErrorInsufficientDriver: CUDA driver version is "
                                       "insufficient for CUDA runtime version")
        ranges = []
        for a in arrays:
            if not isinstance(a, ndarray) or a.size == 0:
                continue
            device = a.device.id
            if device != self.device:
                raise ValueError(f"The device where the array resides ({device}) is different "
                                 f"from the current device ({self.device}). Peer access is "
                                 "unavailable between these devices.")
            ranges.append(_bounds(a))
        self.log.append((operation, self.stream if stream is None else stream, self.device,
                         ranges))

    def accesses(self, array):
        """The ``(operation, stream)`` of every logged operation on ``array``'s memory."""
        lo, hi = _bounds(array)
        return [(op, stream) for op, stream, _, ranges in self.log
                if any(a < hi and lo < b for a, b in ranges)]


def state():
    return _STATE[-1]


def _address(array):
    return array.__array_interface__["data"][0]


def _bounds(array):
    from numpy.lib.array_utils import byte_bounds
    return byte_bounds(array.view(np.ndarray))


def _is_bf16(dtype):
    return np.dtype(dtype).name == "bfloat16"


def _no_bf16_kernels(*arrays):
    if state().major < 14 and any(isinstance(a, np.ndarray) and _is_bf16(a.dtype)
                                  for a in arrays):
        raise KeyError("<class 'ml_dtypes.bfloat16'>")  # CuPy 13: no bfloat16 kernel


# -- arrays ------------------------------------------------------------------------------


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    def __new__(cls, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            return empty(shape, dtype, order)
        return _over(memptr, shape, np.dtype(dtype), strides)

    def __array_finalize__(self, obj):
        if self.size == 0 or not _STATE:
            return
        s = state()
        if s.block(_address(self)) is None:  # new memory (a NumPy result): allocated now
            base = self
            while isinstance(base.base, np.ndarray):
                base = base.base
            kind = "allocator" if (s.allocator or s.default_allocator) else "cupy"
            s.register(_address(base), base.nbytes, s.device, kind, owner=base)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out", ())
        for x in (*inputs, *out):
            if type(x) is np.ndarray:  # CuPy takes no host arrays in its kernels
                raise TypeError(f"Unsupported type {type(x)}")
        _no_bf16_kernels(*inputs, *out)
        state().kernel(ufunc.__name__, [*inputs, *out])
        plain = [x.view(np.ndarray) if isinstance(x, ndarray) else x for x in inputs]
        if out:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, ndarray) else o
                                  for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    @property
    def __cuda_array_interface__(self):
        interface = dict(self.view(np.ndarray).__array_interface__)
        if _is_bf16(self.dtype):
            interface["typestr"] = interface["descr"][0][1] = "<V2"
        if self.flags.c_contiguous:
            interface["strides"] = None
        interface.update(version=3, stream=state().stream or 1)
        return interface

    @property
    def device(self):
        found = state().block(_address(self)) if self.size else None
        return Device(found[2] if found else state().device)

    @property
    def data(self):
        device = self.device.id
        return MemoryPointer(UnownedMemory(_address(self), self.nbytes, self, device), 0)

    def get(self, stream=None, order="C", out=None, blocking=True):
        return asnumpy(self)

    def fill(self, value):
        state().kernel("fill", [self])
        if state().major < 14 and _is_bf16(self.dtype) and value != 0:
            _no_bf16_kernels(self)
        value = np.asarray(value, dtype=self.dtype)  # CuPy converts the value, bits or not
        np.ndarray.fill(self.view(np.ndarray), value)

    def __setitem__(self, slices, value):
        if type(value) is np.ndarray and value.ndim > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        _no_bf16_kernels(self, value)
        state().kernel("setitem", [self, value])
        value = value.view(np.ndarray) if isinstance(value, ndarray) else value
        np.ndarray.__setitem__(self.view(np.ndarray), slices, value)

    def view(self, dtype=None, type=None):  # noqa: A002 - CuPy's name
        if dtype is None:
            return np.ndarray.view(self)
        return np.ndarray.view(self, dtype)

    def reshape(self, *shape, order="C", copy=None):
        result = np.ndarray.reshape(self, *shape, order=order)
        if self.size and not np.may_share_memory(result, self):  # a copy: a kernel
            state().kernel("reshape", [self, result])
        return result

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        _no_bf16_kernels(self)
        state().kernel("astype", [self])
        return _wrap(self.view(np.ndarray).astype(dtype, order=order, copy=copy))

    def copy(self, order="C"):
        state().kernel("copy", [self])
        return _wrap(self.view(np.ndarray).copy(order=order))

    def __dlpack_device__(self):
        return (2, self.device.id)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if self.dtype.kind not in "uifcb" and not _is_bf16(self.dtype) or (
                _is_bf16(self.dtype) and state().major < 14):
            raise BufferError("dtype is not supported for dlpack export")
        state().kernel("dlpack-export", [self])  # CuPy makes the consumer's stream wait
        if _is_bf16(self.dtype):  # NumPy exports no bfloat16: a torch CPU capsule has it
            import torch
            host = torch.from_numpy(self.view(np.ndarray).view(np.int16))
            return host.view(torch.bfloat16).__dlpack__()
        kwargs = {} if max_version is None else {"max_version": max_version}
        return self.view(np.ndarray).__dlpack__(**kwargs)


def _wrap(result):
    if isinstance(result, np.ndarray) and not isinstance(result, ndarray):
        return result.view(ndarray)
    return result


def _over(memptr, shape, dtype, strides=None, order="C"):
    """A stand-in array over the memory of ``memptr`` (kept alive by the array)."""
    shape = tuple(int(n) for n in np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    if strides is None:
        strides = _strides(shape, dtype.itemsize, order)
    count = int(np.prod(shape, dtype=np.int64))
    extent = (sum((n - 1) * abs(s) for n, s in zip(shape, strides)) + dtype.itemsize
              if count else 0)
    s = state()
    if count and s.block(memptr.ptr) is None:  # e.g. from a PythonFunctionAllocator
        s.register(memptr.ptr, extent, memptr.device_id, "allocator", owner=memptr.mem)
    buffer = (ctypes.c_char * max(extent, 1)).from_address(memptr.ptr) if count else b""
    array = np.ndarray.__new__(ndarray, shape, dtype, buffer=buffer, strides=strides)
    array._memptr = memptr
    return array


def _strides(shape, itemsize, order):
    dims = list(shape) if order == "F" else list(shape)[::-1]
    strides, step = [], itemsize
    for n in dims:
        strides.append(step)
        step *= max(n, 1)
    return tuple(strides) if order == "F" else tuple(strides[::-1])


# -- memory ------------------------------------------------------------------------------


class BaseMemory:
    def __init__(self, ptr, size, device_id):
        self.ptr, self.size, self.device_id = int(ptr), int(size), int(device_id)


class UnownedMemory(BaseMemory):
    def __init__(self, ptr, size, owner, device_id=-1):
        if device_id < 0:
            device_id = runtime_pointer_attributes(ptr).device
        super().__init__(ptr, size, device_id)
        self.owner = owner
        if size and state().block(ptr) is None:  # memory only a foreign producer knew
            state().register(int(ptr), int(size), device_id, "external", owner=self)


class _PoolMemory(BaseMemory):
    def __init__(self, size, device):
        self.buffer = np.empty(max(size, 1), np.uint8)
        super().__init__(self.buffer.ctypes.data, size, device)
        state().register(self.ptr, size, device, "cupy", owner=self)


class MemoryPointer:
    def __init__(self, mem, offset):
        self.mem, self.ptr, self.device_id = mem, mem.ptr + int(offset), mem.device_id


class MemoryPool:
    def malloc(self, size):
        s = state()
        if s.used.get("cupy", 0) + size > s.capacity:
            raise OutOfMemoryError(f"Out of memory allocating {size:,} bytes (allocated so "
                                   f"far: {s.used.get('cupy', 0):,} bytes).")
        return MemoryPointer(_PoolMemory(size, s.device), 0)

    def used_bytes(self):
        return state().used.get("cupy", 0)

    def total_bytes(self):
        return state().used.get("cupy", 0)

    def free_all_blocks(self, stream=None):
        pass


_POOL = MemoryPool()


class _FunctionMemory(BaseMemory):
    def __init__(self, size, malloc_func, free_func, device):
        self.ptr, self._free = 0, free_func
        super().__init__(malloc_func(size, device) if size else 0, size, device)

    def __del__(self):
        if self.ptr:
            self._free(self.ptr, self.device_id)


class PythonFunctionAllocator:
    def __init__(self, malloc_func, free_func):
        self._malloc, self._free = malloc_func, free_func

    def malloc(self, size):
        return MemoryPointer(_FunctionMemory(size, self._malloc, self._free, state().device), 0)


@contextlib.contextmanager
def using_allocator(allocator=None):
    s = state()
    previous, s.allocator = s.allocator, allocator or _POOL.malloc
    try:
        yield
    finally:
        s.allocator = previous


def set_allocator(allocator=None):
    state().default_allocator = None if allocator in (None, _POOL.malloc) else allocator


def get_default_memory_pool():
    return _POOL


def empty(shape, dtype=float, order="C"):
    s = state()
    if not s.devices:
        raise CUDARuntimeError(35, "cudaErrorInsufficientDriver")
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > s.capacity:
        raise OutOfMemoryError(f"Out of memory allocating {nbytes:,} bytes.")
    allocate = s.allocator or s.default_allocator or _POOL.malloc
    return _over(allocate(nbytes), shape, dtype, order=order)


def zeros(shape, dtype=float, order="C"):
    array = empty(shape, dtype, order)
    array.fill(0)
    return array


def empty_like(prototype, dtype=None, order="K", subok=None, shape=None):
    return empty(prototype.shape if shape is None else shape,
                 prototype.dtype if dtype is None else dtype)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype) and not copy:
        return a
    if isinstance(a, ndarray):
        return a.astype(a.dtype if dtype is None else dtype)
    host = np.asarray(a, dtype=dtype)
    array = empty(host.shape, host.dtype)
    state().kernel("host-to-device", [array])
    np.copyto(array.view(np.ndarray), host)
    return array


def ascontiguousarray(a, dtype=None):
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        with Device(a.device.id):  # CuPy copies on the array's device
            state().kernel("device-to-host", [a])
        return np.array(a.view(np.ndarray), copy=True, order=order)
    return np.asarray(a)


def shares_memory(a, b, max_work=None):
    """CuPy's cost: the address of every element of both, sorted and searched on the GPU."""
    if a is b:
        return True
    pointers = [empty(x.size, np.uint64) for x in (a, b)]
    work = empty(2 * b.size, np.int64), empty(b.size, np.bool_)
    state().kernel("shares_memory", [a, b, *pointers, *work])
    return bool(np.shares_memory(a.view(np.ndarray), b.view(np.ndarray)))


def may_share_memory(a, b, max_work=None):
    if a.device.id != b.device.id:
        return False
    return bool(np.may_share_memory(a.view(np.ndarray), b.view(np.ndarray)))


def moveaxis(a, source, destination):
    return np.moveaxis(a, source, destination)


def diagonal(a, offset=0, axis1=0, axis2=1):
    return np.diagonal(a, offset, axis1, axis2)


def where(condition, x=None, y=None):
    state().kernel("where", [condition, x, y])
    plain = [v.view(np.ndarray) if isinstance(v, ndarray) else v for v in (condition, x, y)]
    return _wrap(np.where(*plain))


def isfinite(x, /, out=None, *, casting="same_kind", dtype=None):
    return np.isfinite(x)


def any(a, axis=None, out=None, keepdims=False):  # noqa: A001 - CuPy's name
    return np.any(a, axis=axis, keepdims=keepdims)


def eye(N, M=None, k=0, dtype=float, order="C"):  # noqa: N803 - CuPy's names
    return asarray(np.eye(N, M, k, dtype))


def from_dlpack(array, *, device=None, copy=None):
    if device is not None:
        raise NotImplementedError("from_dlpack() does not support device yet.")
    kind, _ = array.__dlpack_device__()
    if kind not in (2, 13):
        raise TypeError("the stand-in imports CUDA DLPack buffers only")
    capsule = array.__dlpack__(stream=state().stream or 1)  # CuPy passes its stream
    if not isinstance(capsule, Capsule):
        raise TypeError("the stand-in imports DLPack from its DlpackBuffer producers only")
    view = capsule.array.view(ndarray)
    if _is_bf16(view.dtype):
        if state().major < 14:
            raise NotImplementedError("CuPy does not support bfloat16 yet")
        if np.lib.NumpyVersion(np.__version__) < "2.1.2":  # CuPy 14's rule (dlpack.pyx)
            raise NotImplementedError("CuPy does not support bfloat16. Please install "
                                      "ml_dtypes to use bfloat16.")
    return view


class Capsule:
    def __init__(self, array):
        self.array = array


# -- devices -------------------------------------------------------------------------------


class Device:
    def __init__(self, device=None):
        self.id = state().device if device is None else int(device)

    def __enter__(self):
        if not 0 <= self.id < state().devices:
            raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
        state().device_stack.append(self.id)
        return self

    def __exit__(self, *exc):
        state().device_stack.pop()

    def __int__(self):
        return self.id

    @property
    def compute_capability(self):
        return state().capability

    @property
    def attributes(self):
        return {"MultiProcessorCount": 132}

    def synchronize(self):
        state().log.append(("device-synchronize", None, self.id, []))


def runtime_pointer_attributes(ptr):
    found = state().block(int(ptr))
    if found is None:
        raise CUDARuntimeError(1, "cudaErrorInvalidValue: the stand-in knows no device memory "
                                  f"at {int(ptr):#x}")
    return types.SimpleNamespace(device=found[2], devicePointer=int(ptr), hostPointer=0,
                                 type=2)
