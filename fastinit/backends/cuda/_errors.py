"""What the GPU path raises when it cannot run, and what to install."""

__all__ = ["INSTALL_HINT", "GpuUnavailableError", "DeviceMemoryError"]

#: What to install: CuPy alone finds neither NVRTC nor cuBLAS/cuSOLVER without a
#: system CUDA toolkit; the ``[ctk]`` extra brings them as wheels.
INSTALL_HINT = ('Install CuPy with the CUDA libraries it loads: pip install "fastinit-ml[cupy]" '
                '(cupy-cuda12x[ctk]), or cupy-cuda13x[ctk] for a CUDA 13 driver')


class GpuUnavailableError(NotImplementedError):
    """A GPU output was asked for, but CuPy, a CUDA device or a CUDA library is missing.

    A ``NotImplementedError`` (so a ``RuntimeError``), as fastinit raised for any
    GPU request before this backend.
    """


class DeviceMemoryError(MemoryError):
    """The GPU has not enough free memory for the requested output."""
