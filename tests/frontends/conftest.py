"""Fixtures of the front-end tests: Keras on its NumPy backend."""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")  # before keras is imported


def pytest_collection_modifyitems(items):
    # Keras 3 on NumPy 2 warns about its own Variable.__array__; not ours.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings(
            "ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning"))


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")
