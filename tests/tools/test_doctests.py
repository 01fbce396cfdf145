"""The examples in the docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import fastinit

from helpers import HAVE_NUMBA

# Front ends whose examples need their framework.
FRAMEWORK_OF = {"fastinit.torch": "torch", "fastinit.jax": "jax"}


def _modules():
    names = ["fastinit"]
    for info in pkgutil.walk_packages(fastinit.__path__, "fastinit."):
        if info.name.endswith("__main__"):
            continue
        if not HAVE_NUMBA and "numba" in info.name:
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_doctests(name):
    if name in FRAMEWORK_OF:  # these import their framework lazily, in the examples too
        pytest.importorskip(FRAMEWORK_OF[name])
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional framework (torch, jax, ...) is absent
        if (exc.name or "").split(".")[0] == "fastinit":
            raise
        pytest.skip(f"{name} needs {exc.name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failures in {name}"


def test_random_has_examples():
    import fastinit.random

    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for t in finder.find(fastinit.random))
    assert examples >= 6
    assert doctest.testmod(fastinit.random).attempted == examples
