"""Shared fixtures: the backends every test runs on, and the backends of the contract suite."""

import pytest

from helpers import HAVE_NUMBA
from helpers.backends import GpuCopyBackend, HostBackend, build_host_driver, gpu_count

import fastinit.backends as backends

BACKENDS = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Name of a CPU backend; every backend runs the same tests."""
    return request.param


@pytest.fixture
def cpu_threads():
    """``set(n)`` sets fastinit's CPU thread count; the setting is restored afterwards."""
    from fastinit import _threads
    pytest.importorskip("numba")
    original = _threads.configured()
    yield _threads.set_num_threads
    _threads.set_num_threads(original)


# -- the contract suite (tests/backends/test_contract.py) ------------------------------------

@pytest.fixture(scope="session")
def host_backend(tmp_path_factory):
    """The CUDA per-element code compiled as host C++ (skipped without a C++ compiler)."""
    exe = build_host_driver(tmp_path_factory.mktemp("cuda_host"))
    if exe is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) found")
    host = HostBackend(exe)
    yield host
    host.close()


CONTRACT_BACKENDS = [
    pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")),
    "cuda-host",
    pytest.param("cuda-gpu", marks=pytest.mark.skipif(gpu_count() == 0,
                                                      reason="needs CuPy and a CUDA GPU")),
]


@pytest.fixture(params=CONTRACT_BACKENDS)
def contract_backend(request):
    """Name of a backend held to the contract against the NumPy backend (the reference):
    Numba, the host-compiled CUDA code and, with a GPU, the CUDA kernels themselves."""
    name = request.param
    if name == "numba":
        yield name
        return
    if name == "cuda-host":
        twin = request.getfixturevalue("host_backend")
        twin.order, twin.misalign = 0, 0
    else:
        twin = GpuCopyBackend()
    backends.register(name, twin)
    try:
        yield name
    finally:
        backends.register(name, None)


# -- Hypothesis: the same examples on every run (CI); HYPOTHESIS_PROFILE=explore searches anew --

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "ci"))
