"""The ``.npy`` format: one writer of headers and blocks, for checkpoints and Dask."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from .._typing import StrPath

__all__ = ["header", "create", "NpyBlocks"]


def header(shape: Sequence[int], dtype: npt.DTypeLike) -> bytes:
    """The bytes of a version-1.0 ``.npy`` header for a C-ordered array."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
            "shape": tuple(shape)})
    return f.getvalue()


def check_dtype(dtype: npt.DTypeLike) -> None:
    """The ``.npy`` format has no bfloat16 type (NumPy cannot read one back)."""
    if np.dtype(dtype).name == "bfloat16":
        raise ValueError("The .npy format has no bfloat16 type; use safetensors or float32. "
                         "Received: dtype='bfloat16'")


def create(path: StrPath, shape: Sequence[int], dtype: npt.DTypeLike) -> int:
    """Create ``path`` as a ``.npy`` file of the full size (sparse where the file system
    allows), header written, data to be written by :class:`NpyBlocks`."""
    check_dtype(dtype)
    head = header(shape, dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    with open(path, "xb") as f:
        f.write(head)
        f.truncate(len(head) + nbytes)
    return len(head)


class NpyBlocks:
    """A ``dask.array.store`` target that writes blocks into an existing ``.npy`` file.

    Picklable (it holds the path, shape and dtype), so tasks on worker processes
    write straight into the file through a memmap of their own.
    """

    def __init__(self, path: StrPath, shape: Sequence[int], dtype: npt.DTypeLike,
                 offset: int) -> None:
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        self.offset, self.ndim = int(offset), len(self.shape)

    def __setitem__(self, index: Any, value: npt.ArrayLike) -> None:
        m = np.memmap(self.path, dtype=self.dtype, mode="r+", offset=self.offset,
                      shape=self.shape, order="C")
        try:
            m[index] = value
            m.flush()
        finally:
            del m
