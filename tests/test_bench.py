"""The side-by-side benchmark, the command line and the asv suite run (no speed asserted)."""

import importlib
import importlib.util
import inspect
import itertools
import json
import numbers
import subprocess
import sys
from pathlib import Path

import pytest

from fastinit import bench, cli

ROOT = Path(__file__).resolve().parents[1]
ASV_DIR = ROOT / "benchmarks" / "benchmarks"
BENCH_PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def test_cli_bench_quick_prints_table(capsys, tmp_path):
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    for name in ("fastinit numba", "fastinit numpy", "numpy Generator", "numpy rejection"):
        assert name in out
    for case in ("normal", "uniform", "trunc normal"):
        assert case in out
    assert "machine:" in out and "command:" in out and "G elem/s" in out
    data = json.loads(path.read_text())
    assert data["settings"]["size"] == bench.QUICK_SIZE
    rows = {(r["case"], r["implementation"]) for r in data["results"]}
    assert ("truncated_normal", "fastinit numba") in rows
    assert all(r["error"] is None for r in data["results"])


def test_cli_demo_prints_intro(capsys):
    status = cli.main(["demo", "--quick", "--cases", "uniform"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("fastinit demo: initialises 1e6-element float32 tensors")
    assert "fastinit numba" in out and "numpy Generator" in out


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--size", "1.5"])
    with pytest.raises(SystemExit):
        cli.main(["bench", "--cases", "gamma"])
    capsys.readouterr()


@pytest.mark.parametrize("text, value", [("1e8", 10**8), ("100_000_000", 10**8),
                                         ("2**20", 1 << 20), ("1000", 1000)])
def test_parse_size(text, value):
    assert bench.parse_size(text) == value


def test_import_fastinit_stays_light():
    code = ("import sys, fastinit; "
            "print(sorted(m for m in ('fastinit.bench', 'fastinit.cli', 'numba', 'torch', "
            "'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_python_m_fastinit_bench_runs():
    proc = subprocess.run([sys.executable, "-m", "fastinit", "bench", "--size", "1000",
                           "--repeat", "1", "--cases", "uniform"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "fastinit numba" in proc.stdout and "numpy Generator" in proc.stdout


# -- the asv suite ---------------------------------------------------------------


def _asv_modules():
    """Every module of benchmarks/benchmarks, imported under a private package name."""
    name = "_fastinit_asv_benchmarks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ASV_DIR / "__init__.py", submodule_search_locations=[str(ASV_DIR)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return [importlib.import_module(f"{name}.{path.stem}")
            for path in sorted(ASV_DIR.glob("*.py")) if path.name != "__init__.py"]


def _smallest(params):
    """Parameter combinations to try: the smallest value of numeric axes, every other value."""
    if not params:
        return [()]
    if not isinstance(params[0], (list, tuple)):
        params = [params]  # a single axis
    axes = []
    for axis in params:
        numeric = all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in axis)
        axes.append([min(axis)] if numeric else list(axis))
    return list(itertools.product(*axes))


def _cases():
    cases = []
    for module in _asv_modules():
        for owner_name, owner in vars(module).items():
            if owner_name.startswith("_") or getattr(owner, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(owner):
                methods = [m for m in vars(owner) if m.startswith(BENCH_PREFIXES)]
                for method in methods:
                    for combo in _smallest(getattr(owner, "params", [])):
                        cases.append(pytest.param(owner, method, combo,
                                                  id=f"{module.__name__.split('.')[-1]}."
                                                     f"{owner_name}.{method}{list(combo)}"))
            elif inspect.isfunction(owner) and owner_name.startswith(BENCH_PREFIXES):
                cases.append(pytest.param(None, owner, (), id=f"{owner_name}"))
    return cases


def test_asv_suite_is_not_empty():
    assert len(_cases()) >= 5


@pytest.mark.parametrize("owner, method, combo", _cases())
def test_asv_benchmark_runs_once(owner, method, combo):
    if owner is None:  # a module-level benchmark function
        name, result = method.__name__, method(*combo)
    else:
        name, instance = method, owner()
        try:
            if hasattr(instance, "setup"):
                instance.setup(*combo)
        except NotImplementedError as exc:  # asv's way of skipping a combination
            pytest.skip(str(exc))
        try:
            result = getattr(instance, method)(*combo)
        finally:
            if hasattr(instance, "teardown"):
                instance.teardown(*combo)
    if name.startswith("timeraw_"):  # returns code that asv times in a fresh interpreter
        subprocess.run([sys.executable, "-c", result], check=True)
    elif name.startswith("track_"):
        assert isinstance(result, numbers.Real)
