"""The output of one call: checked once, routed to the CPU or the GPU once, filled.

Every entry point builds one :class:`Target` (``fastinit.random`` directly,
the initializers through their ``Request``), as every distribution of
``numpy/random/_generator.pyx`` goes through ``_common.pyx``'s
``check_output`` and ``cont``. It validates the shape, the region
(``index=``, ``offset=``), the dtype, ``out`` and the device, and owns the
one loop that feeds a backend's ``fill`` (see ``fastinit.backends``):
contiguous outputs directly, strided ones through a bounded scratch buffer
in C-order boxes (whole rows or pieces of one row, :func:`_region.boxes`),
the same rule on both devices.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any, SupportsIndex

import numpy as np

from . import _dtypes, _region, backends, stream as _stream
from ._checks import check_output_array, check_shape, check_uint64, has_overlap
from .backends.cuda import _output as _gpu

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    import numpy.typing as npt

    from ._typing import (
        Array, Backend, DeviceLike, DTypeKind, GpuArray, Index, Output, Shape, ShapeLike,
    )
    from .backends import Distribution

    #: A device's ``fill(dist, key, out, run_starts, run_length)`` (``fastinit.backends``).
    Fill = Callable[[Distribution, tuple[int, int], Any, npt.NDArray[np.int64], int], None]
    #: A scratch buffer of at most ``n`` elements, and ``dst[...] = src``, on that device.
    Scratch = Callable[[int], Any]
    Copy = Callable[[Any, Any], None]

__all__ = ["Target"]

CPU_SCRATCH_ELEMENTS = 1 << 20   # strided outputs are produced through a scratch buffer
GPU_SCRATCH_ELEMENTS = 1 << 24   # of at most this many elements


class Target:
    """Where one call's values go, checked.

    Parameters
    ----------
    shape : int or tuple of int, optional
        The global shape; may be omitted when ``out`` is given without ``index``.
    dtype : optional
        Defaults to ``out.dtype``, else float32; ``kind`` says which dtypes are
        accepted (``fastinit._dtypes.resolve``).
    out, index, offset, backend, device
        As in :mod:`fastinit.random`.

    Attributes
    ----------
    shape, dtype, region, index, offset, backend, gpu
        ``index`` is the full index tuple (one entry per axis) or None;
        ``gpu`` is a :class:`~fastinit.backends.cuda._output.GpuOutput` or None.
    """

    def __init__(self, shape: ShapeLike | None = None, dtype: npt.DTypeLike | None = None, *,
                 kind: DTypeKind = "float", out: Output | None = None,
                 index: Index | None = None, offset: SupportsIndex = 0,
                 backend: Backend = "auto", device: DeviceLike = None) -> None:
        backends.check_name(backend)
        self.gpu = _gpu.route(out, device, backend)
        # The output's NumPy array (a base-class view: an ndarray subclass, np.matrix or a
        # memmap, keeps its own indexing and reshaping rules away from the kernels; the
        # caller gets out), or None: a new array, or a GPU output (self.gpu).
        self._buffer: npt.NDArray[Any] | None = None
        out_shape: tuple[int, ...] | None = None
        out_dtype: np.dtype[Any] | None = None
        if self.gpu is not None:
            gpu_array = self.gpu.array
            if out is not None and has_overlap(gpu_array.shape, gpu_array.strides,
                                               gpu_array.itemsize):
                raise ValueError("out may have overlapping elements (a broadcast or stride-0 "
                                 "view). Received: out with shape "
                                 f"{tuple(gpu_array.shape)} and strides "
                                 f"{tuple(gpu_array.strides)}")
            if out is not None:
                out_shape, out_dtype = self.gpu.shape, self.gpu.dtype
        elif out is not None:
            array = check_output_array(out)
            out_shape, out_dtype = array.shape, array.dtype
            self._buffer = array if type(array) is np.ndarray else array.view(np.ndarray)
        if shape is None:
            if out_shape is None or index is not None:
                raise TypeError("shape is required unless out is given without index. "
                                "Received: shape=None")
            shape = out_shape
        self.shape: Shape = check_shape(shape)
        self.region = _region.region(self.shape, index, offset)
        self.index: tuple[Any, ...] | None = (None if index is None else
                                              _full_index(index, len(self.shape)))
        self.offset = operator.index(offset)  # checked by the region
        if dtype is None:
            dtype = out_dtype if out_dtype is not None else np.float32
        self.dtype: np.dtype[Any] = _dtypes.resolve(dtype, kind)
        if out_shape is not None:
            if out_dtype != self.dtype:
                raise TypeError(f"out has dtype {out_dtype}, expected {self.dtype}. "
                                f"Received: out with dtype {out_dtype}, dtype={dtype!r}")
            if tuple(out_shape) != self.region.shape:
                raise ValueError(f"out has shape {tuple(out_shape)}, expected "
                                 f"{self.region.shape}. Received: out with shape "
                                 f"{tuple(out_shape)}")
        self.backend: Backend = backend
        self.out: Output | None = out

    # -- random values -------------------------------------------------------------

    def draw(self, dist: Distribution, seed: SupportsIndex,
             stream: SupportsIndex) -> Array | GpuArray:
        """Fill the output with ``dist`` drawn from ``(seed, stream)`` and return it."""
        key = _stream.derive_key(check_uint64(seed, "seed"), check_uint64(stream, "stream"))
        return self.fill(dist, key)

    def fill(self, dist: Distribution, key: tuple[int, int]) -> Array | GpuArray:
        """Fill the output with ``dist`` under the Philox ``key`` and return it."""
        array = self._array(self.region.shape, self.dtype)
        if array.size:
            with self._context():
                fill, scratch, copy = self._backend()
                if array.flags.c_contiguous:
                    _fill_range(fill, dist, key, self.region, 0, array.reshape(-1))
                else:
                    _fill_strided(fill, scratch, copy, dist, key, self.region, array)
        return self.result()

    def _backend(self) -> tuple[Fill, Scratch, Copy]:
        """``(fill, scratch(n), copy(dst, src))`` of the device that holds the output."""
        name = self.dtype.name
        gpu = self.gpu
        if gpu is not None:
            from .backends import cuda

            def gpu_fill(dist: Distribution, key: tuple[int, int], out: GpuArray,
                         starts: npt.NDArray[np.int64], length: int) -> None:
                cuda.fill(dist, key, out, starts, length, dtype=name)

            def gpu_scratch(n: int) -> GpuArray:
                return gpu.scratch(min(n, GPU_SCRATCH_ELEMENTS), name)

            return gpu_fill, gpu_scratch, _assign
        backend = backends.get(self.backend)
        copy_2d = getattr(backend, "copy_2d", None)

        def copy(dst: npt.NDArray[Any], src: npt.NDArray[Any]) -> None:
            if copy_2d is not None and dst.ndim == 2:
                copy_2d(dst, src)
            else:
                dst[...] = src

        def scratch(n: int) -> npt.NDArray[Any]:
            return np.empty(min(n, CPU_SCRATCH_ELEMENTS), self.dtype)

        return backend.fill, scratch, copy

    # -- given values ------------------------------------------------------------------

    def write(self, values: npt.ArrayLike | GpuArray) -> Array | GpuArray:
        """Write ``values`` (broadcastable to the region's shape) to the output and return it."""
        if self.gpu is not None:
            return self.gpu.write(values, self.region.shape, self.dtype)
        out = self._array(self.region.shape, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            np.copyto(out, values, casting="unsafe")
        return self.result()

    def write_whole(self, values: npt.ArrayLike | GpuArray) -> Array | GpuArray:
        """Like :meth:`write`, for ``values`` of the whole global shape: the region is cut out."""
        if self.index is not None:
            whole: Any = values if _gpu.is_gpu_array(values) else np.asarray(values)
            values = whole[self.index]
        return self.write(values)

    def work_array(self, dtype: npt.DTypeLike) -> Array | GpuArray:
        """A C-ordered ``dtype`` array of the whole tensor to compute in, where the output
        lives (NumPy or CuPy). When it can be the output (the whole tensor, in the
        output's dtype), it is: ``out`` itself if C-contiguous, else the new output."""
        dtype = np.dtype(dtype)
        whole = self.index is None and self.dtype == dtype
        if self.gpu is None:
            if whole and (self._buffer is None or self._buffer.flags.c_contiguous):
                return self._array(self.shape, dtype)
            return np.empty(self.shape, dtype)
        if whole and (self.gpu.array is None or self.gpu.array.flags.c_contiguous):
            return self.gpu.allocate(self.shape, dtype.name)
        with self.gpu.context():
            return self.gpu.cupy.empty(self.shape, dtype)

    def is_output(self, array: object) -> bool:
        """True when ``array`` is (the CuPy or base-class view of) the output itself."""
        return array is (self.gpu.array if self.gpu is not None else self._buffer)

    def result(self) -> Array | GpuArray:
        """The output as the caller sees it (``out`` itself, or the new array)."""
        return self.gpu.out if self.gpu is not None else self.out

    def _array(self, shape: Shape, dtype: npt.DTypeLike) -> Array | GpuArray:
        """The array to write: ``out``'s (CuPy view), or a new one of ``shape``."""
        if self.gpu is not None:
            return self.gpu.allocate(shape, np.dtype(dtype).name)
        if self._buffer is None:
            self.out = self._buffer = np.empty(shape, dtype)
        return self._buffer

    def _context(self) -> AbstractContextManager[Any]:
        import contextlib
        return self.gpu.context() if self.gpu is not None else contextlib.nullcontext()


def _assign(dst: Any, src: Any) -> None:
    dst[...] = src


def _full_index(index: Index, ndim: int) -> tuple[Any, ...]:
    if not isinstance(index, tuple):
        index = (index,)
    return index + (slice(None),) * (ndim - len(index))


def _fill_range(fill: Fill, dist: Distribution, key: tuple[int, int], region: _region.Region,
                position: int, flat: Any) -> None:
    """Fill ``flat`` (contiguous) with the region's positions ``[position, position + flat.size)``."""
    for start, starts, length in region.pieces(position, flat.size):
        fill(dist, key, flat[start:start + starts.size * length], starts, length)


def _fill_strided(fill: Fill, scratch: Scratch, copy: Copy, dist: Distribution,
                  key: tuple[int, int], region: _region.Region, array: Any) -> None:
    """Fill a strided ``array`` box by box through one bounded scratch buffer."""
    buffer = scratch(array.size)
    position = 0
    for index, box in _region.boxes(array.shape, buffer.size):
        n = math.prod(box)
        _fill_range(fill, dist, key, region, position, buffer[:n])
        copy(array[index], buffer[:n].reshape(box))
        position += n
