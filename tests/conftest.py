"""Shared fixtures: the backends every test runs on."""

import pytest

from _util import HAVE_NUMBA

BACKENDS = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Name of a backend; every backend runs the same tests."""
    return request.param


@pytest.fixture
def numba_threads():
    """``set(n)`` sets Numba's thread count; the original is restored afterwards."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has fewer than 2 threads here")
    original = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(original)
