"""GPU outputs: where the output lives decides the device (see ``fastinit._target``).

:func:`route` looks at ``device=`` and ``out=`` and returns ``None`` for the
CPU path or a :class:`GpuOutput`:

- ``device="cuda"`` / ``"cuda:1"`` (or a ``torch.device`` / ``cupy.cuda.Device``):
  a new CuPy array on that device is filled and returned;
- ``out=`` a CuPy array, or any CUDA buffer exporting ``__cuda_array_interface__``
  or DLPack (a torch CUDA tensor, bfloat16 included; a JAX GPU array's buffer
  where writable): filled in place, without a copy, and returned. The work
  runs on the stream the producer names: torch's current stream for a torch
  tensor, the ``stream`` of ``__cuda_array_interface__``; else on CuPy's
  current stream (DLPack: CuPy asks the producer to order its pending work
  before it), and then that stream is synchronized before the call returns,
  since nothing would order the producer's later work after the writes.

bfloat16 is held as uint16 bits inside (CuPy's ``fill`` and copies would
convert bfloat16 values numerically); a ``device=`` result is a bfloat16 view
where CuPy supports the dtype (``_compat.py``), else the bits.

Nothing here imports CuPy or a framework unless a GPU output is asked for.
"""

from __future__ import annotations

import contextlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import _dtypes
from . import _compat, _memory

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager

    from typing import TypeGuard

    import numpy.typing as npt
    import torch

    from ..._typing import Backend, DeviceLike, GpuArray, Output

_GPU_NAMES = ("cuda", "gpu")
_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged
_TYPESTR = {"<f2": "float16", "<f4": "float32", "<f8": "float64", "<u2": "uint16",
            "<i2": "int16"}


_CURRENT = -1  # device_index(..., resolve=False) for "cuda" without an index


def device_index(device: DeviceLike, resolve: bool = True) -> int | None:
    """None for the CPU (``None``, "cpu"), else the CUDA device index; ValueError otherwise.

    ``resolve=False`` returns ``_CURRENT`` for the current device instead of asking CUDA.
    """
    if device is None:
        return None
    if not isinstance(device, str):
        kind = getattr(device, "type", None)          # torch.device
        if kind is not None:
            index = getattr(device, "index", None)
            device = f"{kind}:{index}" if index is not None else str(kind)
        elif hasattr(device, "id") and type(device).__module__.startswith("cupy"):
            return int(device.id)                    # cupy.cuda.Device
        else:
            raise TypeError(f"device must be a string such as 'cuda:0'. Received: device={device!r}")
    name, _, index = device.lower().partition(":")
    if name == "cpu" and not index:
        return None
    if name not in _GPU_NAMES:
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N'. "
                         f"Received: device={device!r}")
    if not index:
        return _current_device() if resolve else _CURRENT
    if not index.isdigit():
        raise ValueError(f"device index must be a non-negative integer. Received: device={device!r}")
    return int(index)


def _current_device() -> int:
    from . import import_cupy
    return int(import_cupy("device='cuda'").cuda.Device().id)


def is_gpu_array(obj: object) -> bool:
    """True for CuPy arrays and CUDA buffers (``__cuda_array_interface__`` or DLPack on CUDA)."""
    if obj is None:
        return False
    if _is_torch(obj):  # first: a CUDA tensor that requires grad raises in the property
        return bool(obj.is_cuda)
    if isinstance(obj, np.ndarray) and type(obj) is np.ndarray:
        return False
    try:
        if hasattr(obj, "__cuda_array_interface__"):
            return True
    except Exception:  # a property that raises (not AttributeError)
        pass
    if isinstance(obj, np.ndarray):
        return False
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if dlpack_device is not None:
        try:
            return int(dlpack_device()[0]) in _DLPACK_CUDA
        except Exception:
            return False
    return False


def _is_torch(obj: object) -> TypeGuard[torch.Tensor]:
    """True for torch tensors (subclasses such as ``nn.Parameter`` included)."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    tensor = getattr(torch, "Tensor", None) if torch is not None else None
    return tensor is not None and isinstance(obj, tensor)


def route(out: Output | None, device: DeviceLike, backend: Backend) -> GpuOutput | None:
    """A :class:`GpuOutput` when the output lives on a GPU, else None (the CPU path)."""
    gpu_out = is_gpu_array(out)
    index = device_index(device, resolve=False)
    if not gpu_out and index is None:
        return None
    if backend not in ("auto", "cupy"):
        raise ValueError(f"GPU outputs are written by backend='cupy' (or 'auto'). "
                         f"Received: backend={backend!r}")
    if out is not None and not gpu_out:
        raise ValueError(f"out is on the CPU but device={device!r} asks for a GPU. "
                         f"Received: out of type {type(out).__name__}, device={device!r}")
    if gpu_out and device is not None and index is None:
        raise ValueError(f"out is on a GPU but device={device!r}. Received: out of type "
                         f"{type(out).__name__}, device={device!r}")
    from . import import_cupy
    cupy = import_cupy(f"device={device!r}" if out is None else
                       f"out of type {type(out).__module__}.{type(out).__name__}")
    count = cupy.cuda.runtime.getDeviceCount()
    if index == _CURRENT:
        index = _current_device()
    if index is not None and index >= count:
        raise ValueError(f"device cuda:{index} does not exist ({count} CUDA device(s)). "
                         f"Received: device={device!r}")
    if out is None:
        return GpuOutput(cupy, None, None, None, index)
    array, dtype_name, stream, sync = as_cupy(out)
    if index is not None and array.device.id != index:
        raise ValueError(f"out is on cuda:{array.device.id}, device={device!r} asks for "
                         f"cuda:{index}. Received: device={device!r}")
    return GpuOutput(cupy, out, array, dtype_name, array.device.id, stream, sync)


def as_cupy(out: Output) -> tuple[GpuArray, str, int | None, bool]:
    """``(cupy_view, dtype_name, stream, sync)`` for a GPU buffer, without a copy.

    bfloat16 buffers become uint16 views; ``stream`` is the producer's CUDA
    stream handle, or None; ``sync`` says that the producer's stream is
    unknown, so the writes must be finished before returning.
    """
    import cupy
    if isinstance(out, cupy.ndarray):
        return (*_bits(out), None, False)
    if _is_torch(out):
        return (*_from_torch(cupy, out), False)
    interface = getattr(out, "__cuda_array_interface__", None)
    if interface is not None:
        stream = _interface_stream(interface)
        return (_from_interface(cupy, out, interface), _interface_dtype(out, interface),
                stream, stream is None)
    try:
        view = cupy.from_dlpack(out)  # passes CuPy's current stream to the producer
    except Exception as exc:
        raise TypeError(
            f"out exports DLPack, but CuPy {cupy.__version__} cannot import it ({exc}). "
            "bfloat16 DLPack buffers need CuPy 14 with ml_dtypes and NumPy >= 2.1.2; a "
            "buffer with __cuda_array_interface__ or a torch tensor works with any "
            f"CuPy. Received: out of type {type(out).__name__}") from exc
    return (*_bits(view), None, True)


def _bits(array: GpuArray) -> tuple[GpuArray, str]:
    """``(array, dtype name)``, bfloat16 as a uint16 view: CuPy's fill and copies would
    convert bfloat16 values, not copy bits."""
    if array.dtype.name == "bfloat16":
        return array.view(np.uint16), "bfloat16"
    return array, array.dtype.name


def _from_torch(cupy: ModuleType, tensor: Any) -> tuple[GpuArray, str, int]:
    import torch
    if tensor.is_conj() or tensor.is_neg():
        raise ValueError("Cannot fill a tensor with a lazy conjugate or negation bit. "
                         "Received: a tensor with is_conj() or is_neg()")
    data = tensor.detach()
    name = str(data.dtype).replace("torch.", "")
    if name == "bfloat16":
        data = data.view(torch.int16)
    stream = torch.cuda.current_stream(data.device).cuda_stream
    if data.numel() == 0:
        view = cupy.empty(tuple(data.shape), dtype=np.uint16 if name == "bfloat16" else name)
    else:
        view = _from_interface(cupy, data, data.__cuda_array_interface__)
        if name == "bfloat16":
            view = view.view(np.uint16)
    return view, name, stream


def _interface_dtype(obj: object, interface: dict[str, Any]) -> str:
    typestr = interface["typestr"]
    name = _TYPESTR.get(typestr)
    dtype = getattr(obj, "dtype", None)
    if "bfloat16" in str(dtype) and typestr in ("<V2", "<u2", "<i2", "|V2"):
        return "bfloat16"
    if name is None:
        raise TypeError(f"out holds {typestr} values; fastinit writes float16, bfloat16, "
                        f"float32 or float64. Received: out with typestr {typestr!r}")
    return name


def _interface_stream(interface: dict[str, Any]) -> int | None:
    stream = interface.get("stream")
    return int(stream) if stream else None


def _from_interface(cupy: ModuleType, owner: object, interface: dict[str, Any]) -> GpuArray:
    """A CuPy view of a ``__cuda_array_interface__`` buffer (no copy)."""
    ptr, read_only = interface["data"]
    if read_only:
        raise ValueError(f"out is read-only. Received: out of type {type(owner).__name__} "
                         "with a read-only __cuda_array_interface__")
    typestr = interface["typestr"]
    itemsize = int(typestr[2:])
    storage = np.dtype(f"<u{itemsize}") if typestr[1] in "Vui" else np.dtype(typestr)
    shape = tuple(int(s) for s in interface["shape"])
    strides = interface.get("strides")
    if strides is None:
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) * itemsize
                        for i in range(len(shape)))
    size = int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return cupy.empty(shape, dtype=storage)
    extent = sum((n - 1) * abs(s) for n, s in zip(shape, strides)) + itemsize
    device = cupy.cuda.runtime.pointerGetAttributes(ptr).device
    memory = cupy.cuda.UnownedMemory(ptr, extent, owner, device_id=device)
    return cupy.ndarray(shape, dtype=storage, memptr=cupy.cuda.MemoryPointer(memory, 0),
                        strides=strides)


class GpuOutput:
    """A GPU output: allocated on the device (``device=``) or wrapping ``out=`` without a copy."""

    def __init__(self, cupy: ModuleType, out: Output | None, array: GpuArray | None,
                 dtype_name: str | None, device: int | None, stream: int | None = None,
                 sync: bool = False) -> None:
        self.cupy = cupy
        self.out = out                  # what the caller passed (returned as is)
        self.array: GpuArray = array    # CuPy view of it (bfloat16 as uint16); None until
                                        # allocate() for a device= output
        self.dtype_name = dtype_name
        self.device = device
        self.stream = stream            # the producer's stream handle, or None
        self.sync = sync                # finish the writes before leaving context()

    @property
    def dtype(self) -> np.dtype[Any]:
        """The output dtype of an ``out=`` buffer (``np.dtype``; bfloat16 via ml_dtypes)."""
        if self.dtype_name in _dtypes.SUPPORTED:
            return _dtypes.resolve(self.dtype_name)
        return np.dtype(self.dtype_name)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def allocate(self, shape: Sequence[int], name: str) -> GpuArray:
        """The CuPy array to write (allocated on the device for ``device=``)."""
        if self.array is None:
            from . import allocate
            self.array = allocate(shape, name, self.device)
            self.out = self.array if name != "bfloat16" else _bfloat16_view(self.cupy,
                                                                            self.array)
        return self.array

    def scratch(self, n: int, name: str) -> GpuArray:
        """A 1-D CuPy buffer of ``n`` elements on the output's device."""
        from . import allocate
        return allocate((n,), name, self.device)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """A ``with`` block on the output's device and stream, allocating from the
        allocator ``_memory.py`` chooses; for an output whose producer's stream is unknown,
        the stream is synchronized on leaving."""
        cupy = self.cupy
        with cupy.cuda.Device(self.device), self._stream(), _memory.allocations(cupy):
            yield
            if self.sync:
                cupy.cuda.get_current_stream().synchronize()

    def write(self, values: npt.ArrayLike | GpuArray, shape: Sequence[int],
              dtype: npt.DTypeLike) -> Output | None:
        """Copy ``values`` (a scalar, or a NumPy or CuPy array broadcastable to
        ``shape``) into the output, converted to ``dtype``, and return the output.

        Scalars are broadcast on the device; host arrays are converted on the
        host and copied once.
        """
        cupy = self.cupy
        name = np.dtype(dtype).name
        with self.context():
            array = self.allocate(shape, name)
            if array.size == 0:
                return self.out
            if isinstance(values, cupy.ndarray) and name != "bfloat16":
                array[...] = values
                return self.out
            if isinstance(values, cupy.ndarray):
                values = cupy.asnumpy(values)
            with np.errstate(over="ignore", invalid="ignore"):
                host = np.asarray(values).astype(_dtypes.resolve(name) if name in _dtypes.SUPPORTED
                                                 else np.dtype(name))
            if name == "bfloat16":
                host = host.view(np.uint16)  # array holds the bits: copy bits, not values
            if host.ndim == 0:
                array.fill(host[()])
            else:
                array[...] = cupy.asarray(host)
        return self.out

    def _stream(self) -> AbstractContextManager[Any]:
        if self.stream is None:
            return contextlib.nullcontext()
        return _compat.external_stream(self.cupy, self.stream, self.device)


def _bfloat16_view(cupy: ModuleType, bits: GpuArray) -> GpuArray:
    """A bfloat16 CuPy view of uint16 bits where CuPy supports bfloat16, else the bits."""
    return bits.view(_dtypes.bfloat16()) if _compat.has_bfloat16(cupy) else bits
