"""What the GPU path needs to run, and what fastinit says when a piece is missing.

CuPy from pip alone finds neither NVRTC (fastinit compiles its kernels with it)
nor cuSOLVER/cuBLAS (``Orthogonal``); ``cupy-cuda12x[ctk]`` brings them.
``fastinit.gpu.is_available()`` is true only when all of it is there, and the
errors name the missing piece and the install that provides it. On the
stand-in CuPy, configured to lack each piece.
"""

import pytest

import fastinit.gpu
import fastinit.initializers as fi
from fastinit import random as fr
from fastinit.backends.cuda import GpuUnavailableError


def test_everything_present(cupy):
    assert fastinit.gpu.is_available() and fastinit.gpu.is_available(linalg=False)


def test_without_nvrtc(stand_in):
    stand_in(nvrtc="missing")
    assert not fastinit.gpu.is_available()
    assert not fastinit.gpu.is_available(linalg=False)
    with pytest.raises(GpuUnavailableError, match=r"NVRTC.*cupy-cuda12x\[ctk\]"):
        fr.normal(10, seed=0, device="cuda")


def test_without_cusolver_and_cublas(stand_in):
    cupy = stand_in(linalg=False)
    assert not fastinit.gpu.is_available()
    assert fastinit.gpu.is_available(linalg=False)
    x = fr.normal(10, seed=0, device="cuda")  # the random fills need neither
    assert cupy.asnumpy(x).shape == (10,)
    with pytest.raises(GpuUnavailableError, match=r"cuSOLVER and cuBLAS.*cupy-cuda12x\[ctk\]"):
        fi.Orthogonal(seed=0)((8, 8), device="cuda")


def test_without_a_driver(stand_in):
    stand_in(devices=0)
    assert not fastinit.gpu.is_available()
    with pytest.raises(GpuUnavailableError, match="needs an NVIDIA GPU"):
        fr.normal(10, seed=0, device="cuda")


def test_without_cupy(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert not fastinit.gpu.is_available()
    with pytest.raises(GpuUnavailableError, match=r'pip install "fastinit-ml\[cupy\]"'):
        fr.normal(10, seed=0, device="cuda")
