"""What differs between the CuPy versions fastinit supports (13 and 14).

- bfloat16: CuPy 14 has it (kernels, DLPack import and export) where NumPy is
  at least 2.1.2 and ml_dtypes is installed; CuPy 13 can view memory as
  ``ml_dtypes.bfloat16`` but cannot compute with it, import it from DLPack or
  export it (``BufferError``), so there bfloat16 is kept as uint16 bits.
- Foreign streams: CuPy 14 deprecates ``ExternalStream`` for
  ``Stream.from_external`` (an object with ``__cuda_stream__``), which CuPy 13
  lacks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def major(cupy: ModuleType) -> int:
    """CuPy's major version (13, 14, ...)."""
    return int(str(cupy.__version__).split(".")[0])


def has_bfloat16(cupy: ModuleType) -> bool:
    """True when CuPy arrays of dtype bfloat16 work (compute, DLPack in and out)."""
    if major(cupy) < 14 or np.lib.NumpyVersion(np.__version__) < "2.1.2":
        return False
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


class _StreamRef:
    """A CUDA stream handle in the stream protocol (``__cuda_stream__``)."""

    def __init__(self, ptr: int) -> None:
        self.ptr = int(ptr)

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.ptr)


def external_stream(cupy: ModuleType, ptr: int, device: int | None) -> Any:
    """A CuPy stream object for the foreign CUDA stream ``ptr`` on ``device``."""
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:
        return from_external(_StreamRef(ptr))
    return cupy.cuda.ExternalStream(ptr, device)
