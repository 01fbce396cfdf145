"""A typed package: mypy passes on it with the project's configuration (and on
``typed_usage.py``, what the annotations say to a user's checker), and the package is
annotated, by two measures (both printed):

- The public API (narrow): the objects named in the ``__all__`` of the public modules
  (:data:`PUBLIC_MODULES`, and of their public subpackages reached that way: a module named
  in an ``__all__`` is walked too), that fastinit defines. Of those, each function counts
  once, and each class counts with the methods its body defines (inherited ones count in the
  class that defines them): public methods, properties and ``__init__`` / ``__call__``;
  other dunders are protocol methods whose types checkers know. About 150 functions.
- Every function (broad): each function and method without a leading underscore in every
  module of the package, private modules included (issue 21 counted about 440 such), read
  from the source (nothing imported): module-level functions and the methods of classes
  whose names have no leading underscore, their ``__init__`` / ``__call__`` too; not
  functions nested in functions. An overloaded function counts once. About 490.

A function is annotated when its return and every parameter but a leading ``self`` /
``cls`` are (``*args`` and ``**kwargs`` included). Every module outside the ``fastinit``
entries of pyproject's ``[[tool.mypy.overrides]]`` list of modules not annotated yet must be
100% annotated by both measures (mypy's ``disallow_untyped_defs`` holds there as well).
Phase 1 of the typing work (issue 21, item 5) annotated the initializers and the core,
phase 2 the front ends ``fastinit.torch``, ``fastinit.materialize`` and ``fastinit.dask``,
phases 3 and 4 the rest (``fastinit.random``, the backends, ``fastinit.jax`` and the XLA
backend); :data:`REQUIRED_OVERALL` and :data:`REQUIRED_BROAD` are issue 21's bar, 0.90.
Nothing here imports an optional framework (the front ends import theirs on first use).
"""

import ast
import contextlib
import fnmatch
import importlib
import inspect
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("fastinit", "fastinit.random", "fastinit.initializers", "fastinit.torch",
                  "fastinit.jax", "fastinit.dask", "fastinit.sharding", "fastinit.materialize",
                  "fastinit.gpu")
#: The share of the public API that must be annotated (issue 21: at least 90%).
REQUIRED_OVERALL = 0.90
#: The share of every non-underscore function and method that must be (issue 21: 90%).
REQUIRED_BROAD = 0.90
#: Methods of a class that count besides its public ones.
COUNTED_DUNDERS = ("__init__", "__call__")


def _pyproject():
    tomllib = pytest.importorskip("tomllib")   # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _not_annotated_yet(config):
    """The module patterns of the override that marks modules as not annotated yet."""
    patterns = []
    for override in config["tool"]["mypy"].get("overrides", []):
        if override.get("disallow_untyped_defs") is False:
            modules = override["module"]
            patterns += [modules] if isinstance(modules, str) else modules
    return patterns


def _matches(module, patterns):
    # mypy's patterns: "a.b" is that module, "a.b.*" the package and everything below it.
    return any(module == p or p.endswith(".*") and (module == p[:-2] or
                                                    fnmatch.fnmatch(module, p))
               for p in patterns)


def _own(obj):
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "fastinit"


def _functions_of(cls):
    """``(name, function)`` for the counted methods that ``cls``'s body defines."""
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in COUNTED_DUNDERS:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        if isinstance(value, types.FunctionType):
            yield f"{cls.__qualname__}.{name}", value


def public_api():
    """``{qualified name: (defining module, function)}`` for the public API (see the
    module docstring)."""
    found, seen_modules, seen_classes = {}, set(), set()
    pending = list(PUBLIC_MODULES)
    while pending:
        name = pending.pop()
        if name in seen_modules:
            continue
        seen_modules.add(name)
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith("fastinit."):
                    pending.append(obj.__name__)
                continue
            if not _own(obj):
                continue
            if inspect.isclass(obj):
                classes = [c for c in obj.__mro__ if _own(c) and c not in seen_classes]
                seen_classes.update(classes)
                for cls in classes:
                    for qualname, fn in _functions_of(cls):
                        found[f"{cls.__module__}.{qualname}"] = (cls.__module__, fn)
            elif isinstance(obj, types.FunctionType):
                found[f"{obj.__module__}.{obj.__qualname__}"] = (obj.__module__, obj)
    return found


def _counted(names):
    """The parameters whose annotation counts: all but a leading ``self`` / ``cls``."""
    return names[1:] if names and names[0] in ("self", "cls") else names


def is_annotated(fn):
    fn = inspect.unwrap(fn)   # a decorated function (contextlib.contextmanager): its own
    annotations = fn.__annotations__   # strings under "from __future__ import annotations"
    params = list(inspect.signature(fn, follow_wrapped=False).parameters)
    return "return" in annotations and all(p in annotations for p in _counted(params))


def _is_annotated_node(node):
    """:func:`is_annotated` of a ``def`` read from the source."""
    a = node.args
    params = a.posonlyargs + a.args + [x for x in (a.vararg,) if x] + a.kwonlyargs + \
        [x for x in (a.kwarg,) if x]
    by_name = {p.arg: p for p in params}
    return node.returns is not None and all(by_name[n].annotation is not None
                                            for n in _counted([p.arg for p in params]))


def _defs(body, prefix=""):
    """``(qualified name, def)`` of the functions the broad measure counts in ``body``
    (a module's or a class's; ``if`` / ``try`` blocks looked into)."""
    in_class = bool(prefix)
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_") or in_class and node.name in COUNTED_DUNDERS:
                yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            if not node.name.startswith("_"):
                yield from _defs(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.If, ast.Try)):
            blocks = [node.body, node.orelse] + \
                ([h.body for h in node.handlers] + [node.finalbody]
                 if isinstance(node, ast.Try) else [])
            for block in blocks:
                yield from _defs(block, prefix)


def functions_in(source):
    """``{qualified name: annotated?}`` of the broad measure in a module's source (the last
    ``def`` of a name wins: an overloaded function's implementation)."""
    return {name: _is_annotated_node(node) for name, node in _defs(ast.parse(source).body)}


def package_functions():
    """``{module.qualified name: (module, annotated?)}``: the broad measure (see the module
    docstring) over every module of the package."""
    found = {}
    package = ROOT / "fastinit"
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        for name, annotated in functions_in(path.read_text(encoding="utf-8")).items():
            found[f"{module}.{name}"] = (module, annotated)
    return found


def test_public_api_of_annotated_modules_is_fully_annotated():
    pending = _not_annotated_yet(_pyproject())
    api = public_api()
    checked = {name: fn for name, (module, fn) in api.items() if not _matches(module, pending)}
    missing = sorted(name for name, fn in checked.items() if not is_annotated(fn))
    # The initializers, sharding and gpu are measured (the walk found them).
    assert {"fastinit.initializers.base.Initializer.__call__", "fastinit.sharding.generate",
            "fastinit.gpu.to_torch", "fastinit.warmup", "fastinit.random.uniform",
            "fastinit.jax.glorot_uniform", "fastinit.jax._wrap.wrap"} <= set(checked)
    assert not missing, f"public functions without full annotations: {missing}"
    everything = package_functions()
    checked = [name for name, (module, _) in everything.items() if not _matches(module, pending)]
    assert {"fastinit.torch._session.Session.write", "fastinit.dask.array",
            "fastinit.materialize._writer.Engine.write_file", "fastinit.backends.numba.fill",
            "fastinit.backends.xla.sample", "fastinit.backends.xla._guards.IEEE.div"} <= set(
        checked)
    missing = sorted(name for name in checked if not everything[name][1])
    assert not missing, f"functions without full annotations: {missing}"


def test_public_api_annotation_coverage():
    api = public_api()
    annotated = sum(is_annotated(fn) for _, fn in api.values())
    share = annotated / len(api)
    print(f"public API annotated: {annotated} of {len(api)} functions and methods "
          f"({share:.1%}); required {REQUIRED_OVERALL:.0%}")
    assert share >= REQUIRED_OVERALL, sorted(n for n, (_, fn) in api.items()
                                             if not is_annotated(fn))


def test_broad_annotation_coverage():
    found = package_functions()
    annotated = sum(a for _, a in found.values())
    share = annotated / len(found)
    print(f"every non-underscore function and method annotated: {annotated} of {len(found)} "
          f"({share:.1%}); required {REQUIRED_BROAD:.0%}")
    assert share >= REQUIRED_BROAD, sorted(n for n, (_, a) in found.items() if not a)


def test_broad_measure_counts_what_its_docstring_says():
    source = """
from typing import overload
def typed(x: int, *args: int, **kw: int) -> int: ...
def untyped_star(x: int, *args, **kw: int) -> None: ...
def untyped_kwonly(*, x) -> None: ...
def _private(x): ...
@overload
def over(x: int) -> int: ...
@overload
def over(x: str) -> str: ...
def over(x): ...
def outer() -> None:
    def nested(y): ...
class Thing:
    def __init__(self, x): ...
    def __repr__(self): ...
    def method(self, x: int) -> int: ...
    @staticmethod
    def static(x: int) -> int: ...
    def _helper(self): ...
    class Inner:
        def deep(self, y): ...
class _Hidden:
    def method(self, x): ...
if True:
    def conditional(x: int) -> int: ...
"""
    assert functions_in(source) == {
        "typed": True, "untyped_star": False, "untyped_kwonly": False, "over": False,
        "outer": True, "Thing.__init__": False, "Thing.method": True, "Thing.static": True,
        "Thing.Inner.deep": False, "conditional": True}


def test_coverage_measure_sees_missing_annotations():
    def typed(x: int, *args: int, **kw: int) -> int: ...

    def untyped_return(x: int): ...

    def untyped_star(x: int, *args) -> None: ...

    class Thing:
        def method(self, x: int) -> int: ...

    @contextlib.contextmanager
    def managed(x: int) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def unmanaged(x):
        yield

    assert is_annotated(typed) and is_annotated(Thing.method) and is_annotated(managed)
    assert not is_annotated(unmanaged)
    assert not is_annotated(untyped_return) and not is_annotated(untyped_star)


def test_override_patterns_match_like_mypy():
    patterns = ["fastinit.torch.*", "fastinit.random"]
    assert _matches("fastinit.torch", patterns) and _matches("fastinit.torch._hf", patterns)
    assert _matches("fastinit.random", patterns)
    assert not _matches("fastinit.random_extra", patterns)
    assert not _matches("fastinit.torchvision", patterns)


def test_mypy_passes_on_the_package(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    # pyproject.toml's [tool.mypy] settings, on the package and on typed_usage.py (what the
    # annotations say to a user's checker); a fresh cache in a temporary directory, so that
    # the check is whole each time.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "--no-color-output",
         "--show-error-codes", "fastinit", str(Path("tests", "tools", "typed_usage.py"))],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"


def test_py_typed_is_shipped():
    assert (ROOT / "fastinit" / "py.typed").is_file()
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get("fastinit", [])
    if (ROOT / ".git").exists() and shutil.which("git"):   # committed, not just present here
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "fastinit/py.typed"],
                                 capture_output=True, text=True).stdout
        assert "py.typed" in tracked
