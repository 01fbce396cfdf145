"""The shape of the package: no import cycle (function-level imports included), small
modules, and a README that describes every folder."""

import ast
import re
from pathlib import Path

import pytest

import fastinit

PACKAGE = Path(fastinit.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 520


def _modules():
    """Dotted module name -> path, for every module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name, path, modules):
    """The fastinit modules ``name`` imports anywhere in its body (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # "from a import b": the module a.b if there is one, else a itself.
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules
                       else origin for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_modules_are_small():
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_readme_layout_names_every_folder():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    # Relative to the package's parent: CI tests an installed (site-packages) copy.
    folders = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
               if p.is_dir() and "__pycache__" not in p.parts} | {"fastinit"}
    folders |= {f"tests/{p.name}" for p in (ROOT / "tests").iterdir()
                if p.is_dir() and p.name != "__pycache__"}
    folders |= {"benchmarks", "docs"}
    missing = sorted(f for f in folders if not re.search(rf"`{re.escape(f)}/?`", section))
    assert not missing, f"README's Layout section does not describe: {missing}"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_docstrings_are_short(name):
    """Module docstrings summarise; the documentation lives in docs/."""
    doc = ast.get_docstring(ast.parse(_modules()[name].read_text())) or ""
    assert doc, f"{name} has no module docstring"
    assert len(doc.splitlines()) <= 40, f"{name}'s docstring has {len(doc.splitlines())} lines"
