"""Fixtures of the GPU tests that run without a GPU: the stand-in CuPy (``helpers.fake_cupy``)."""

import pytest

from helpers import fake_cupy, fake_torch_cuda, nvrtc_ctypes


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory):
    """One kernel cache for the session (each CUDA file is compiled once per target)."""
    return tmp_path_factory.mktemp("kernels")


@pytest.fixture
def stand_in(monkeypatch, kernel_cache):
    """``make(**config)`` installs a fresh stand-in CuPy (see ``fake_cupy.module``).

    It compiles the CUDA files with the real NVRTC: skipped where NVRTC is not installed.
    """
    import importlib

    monkeypatch.setenv("FASTINIT_CACHE_DIR", str(kernel_cache))
    memory = importlib.import_module("fastinit.backends.cuda._memory")
    # The stand-in's "device" memory is host memory: never hand it a real torch allocator
    # (on a machine with a GPU); the torch_cuda fixture switches back to "auto".
    monkeypatch.setattr(memory, "_choice", ["cupy"])

    def make(**config):
        if config.get("nvrtc", "real") == "real" and nvrtc_ctypes.binding() is None:
            pytest.skip("the stand-in CuPy compiles with NVRTC (pip install nvidia-cuda-nvrtc)")
        return fake_cupy.install(monkeypatch, **config)

    yield make
    fake_cupy._forget_fastinit_tables()


@pytest.fixture
def cupy(stand_in):
    """The stand-in CuPy with the defaults: CuPy 14.2, one device."""
    return stand_in()


@pytest.fixture
def torch_cuda(monkeypatch, cupy):
    """torch with "CUDA" tensors in the stand-in's memory (``helpers.fake_torch_cuda``),
    and fastinit's allocator choice back at its default, "auto"."""
    import importlib

    fake = fake_torch_cuda.install(monkeypatch, cupy)
    monkeypatch.setattr(importlib.import_module("fastinit.backends.cuda._memory"), "_choice",
                        ["auto"])
    return fake
