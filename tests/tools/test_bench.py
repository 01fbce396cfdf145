"""The side-by-side benchmark, the command line and the asv suite run (no speed asserted)."""

import importlib
import importlib.util
import inspect
import itertools
import json
import numbers
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastinit import bench, cli
from fastinit.bench import cases, measure
from fastinit.bench.cli import parse_count

ROOT = Path(__file__).resolve().parents[2]
ASV_DIR = ROOT / "benchmarks" / "benchmarks"
BENCH_PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def test_cli_bench_quick_prints_table(capsys, tmp_path):
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    for name in ("fastinit numba", "fastinit numpy", "numpy Generator", "numpy rejection"):
        assert name in out
    for case in ("normal", "uniform", "trunc normal", "glorot uniform", "orthogonal 256x256"):
        assert case in out
    assert "machine:" in out and "command:" in out and "G elem/s" in out
    data = json.loads(path.read_text())
    assert data["settings"]["size"] == cases.QUICK_SIZE
    rows = {(r["case"], r["implementation"]) for r in data["results"]}
    assert ("truncated_normal", "fastinit numba") in rows
    assert all(r["error"] is None for r in data["results"])


def _installed(module):
    return importlib.util.find_spec(module) is not None


def test_cli_bench_quick_variance_scaling_and_orthogonal(capsys, tmp_path):
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--cases", "variance_scaling,orthogonal",
                       "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "glorot uniform" in out and "orthogonal 256x256" in out
    assert "/matrix" in out  # the orthogonal rows give the seconds per matrix
    data = json.loads(path.read_text())
    assert data["settings"]["ortho_size"] == cases.QUICK_ORTHO_SIZE
    results = {(r["case"], r["implementation"]): r for r in data["results"]}
    assert [r["case"] for r in data["results"]].count("variance_scaling") >= 3
    expected = {("variance_scaling", "fastinit numba"), ("variance_scaling", "fastinit numpy"),
                ("variance_scaling", "numpy Generator"), ("orthogonal", "fastinit"),
                ("orthogonal", "numpy.linalg.qr")}
    optional = {"torch": [("variance_scaling", "torch"), ("orthogonal", "torch")],
                "jax": [("variance_scaling", "jax"), ("orthogonal", "jax")],
                "scipy": [("orthogonal", "scipy.linalg.qr")],
                "keras": [("variance_scaling", "keras (numpy)")]}
    for module, rows in optional.items():
        if _installed(module):
            expected.update(rows)
    assert expected <= set(results)
    for key in expected:
        r = results[key]
        assert r["error"] is None, (key, r["error"])
        if r["skipped"]:  # only Keras may be skipped (already imported on another backend)
            assert key == ("variance_scaling", "keras (numpy)"), key
            continue
        assert r["elements_per_second"] > 0
    kernel = results[("variance_scaling", "fastinit numba")]
    assert kernel["shape"] == [cases.QUICK_SIZE // 4096, 4096]
    assert kernel["n"] == (cases.QUICK_SIZE // 4096) * 4096
    ortho = results[("orthogonal", "numpy.linalg.qr")]
    assert ortho["shape"] == [256, 256] and ortho["n"] == 256 * 256
    assert ortho["x_numpy"] == pytest.approx(1.0)


def test_bench_cases_select_and_ortho_size(capsys):
    status = cli.main(["bench", "--size", "5000", "--repeat", "1", "--cases", "ortho",
                       "--ortho-size", "48", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "orthogonal 48x48" in out and "glorot" not in out and "uniform  " not in out


def test_numpy_references_are_correct():
    import numpy as np
    out = np.empty((64, 64), dtype=np.float32)
    q = bench.numpy_orthogonal(np.random.default_rng(0), out)
    assert q is out
    np.testing.assert_allclose(out.T @ out, np.eye(64), atol=1e-5)
    assert bench.case_shape("variance_scaling", 10**6) == (244, 4096)
    assert bench.case_shape("variance_scaling", 1000) == (1, 1000)
    assert bench.case_shape("orthogonal", 10**6, 300) == (300, 300)
    assert bench.case_shape("normal", 10**6) == (10**6,)
    results = bench.run(size=4096 * 4, repeat=1, cases=["variance_scaling"])
    assert {r.implementation for r in results} >= {"fastinit numba", "numpy Generator"}
    assert all(not r.error for r in results), [r.error for r in results]


def test_cli_demo_prints_intro(capsys):
    status = cli.main(["demo", "--quick", "--cases", "uniform"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("fastinit demo: initialises 1e6-element float32 tensors")
    assert "fastinit numba" in out and "numpy Generator" in out
    assert "fastinit numpy" not in out  # the demo leaves the NumPy fallback out (--skip)


def test_cli_skip(capsys):
    assert cli.main(["bench", "--quick", "--cases", "uniform", "--skip",
                     "fastinit numba, numpy Generator"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("uniform ")]
    assert len(rows) >= 1 and all("fastinit numba" not in r for r in rows)
    assert any("fastinit numpy" in r for r in rows)
    assert all("numpy Generator" not in r for r in rows)
    assert cli.main(["bench", "--quick", "--skip", "fastinit numbaa"]) == 2
    assert "'fastinit numbaa'" in capsys.readouterr().err


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--size", "1.5"])
    with pytest.raises(SystemExit):
        cli.main(["bench", "--cases", "gamma"])
    with pytest.raises(SystemExit):
        cli.main(["bench", "--ortho-size", "0"])
    capsys.readouterr()


@pytest.mark.parametrize("text, value", [("1e8", 10**8), ("100_000_000", 10**8),
                                         ("2**20", 1 << 20), ("1000", 1000)])
def test_parse_size(text, value):
    assert parse_count(text) == value


def test_import_fastinit_stays_light():
    code = ("import sys, fastinit; "
            "print(sorted(m for m in ('fastinit.bench', 'fastinit.cli', 'numba', 'torch', "
            "'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_cli_bench_plot_writes_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "tmp.png"
    status = cli.main(["bench", "--quick", "--cases", "normal", "--plot", str(path)])
    capsys.readouterr()
    assert status == 0
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_cli_bench_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib"
                        else real_find_spec(name, *a))
    path = tmp_path / "tmp.png"
    status = cli.main(["bench", "--quick", "--cases", "normal", "--plot", str(path)])
    err = capsys.readouterr().err
    assert status == 2 and not path.exists()  # refused before the run
    assert "--plot needs matplotlib" in err and "pip install" in err


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


# Benchmarks whose real work is too slow for the test suite, and what the test runs
# instead (the same code path): bench_startup compiles the Numba kernel with a cold
# cache (~10 s); here its subprocesses call the NumPy backend (no compilation).
_TEST_SETTINGS = {"bench_startup": {"STATEMENT": "fr.normal(1000, seed=0, backend='numpy')"}}


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
    cases = _cases()
    assert len(cases) >= 5
    modules = {c.id.split(".")[0] for c in cases}
    assert {"bench_random", "bench_initializers", "bench_peers", "bench_gpu",
            "bench_startup"} <= modules


def test_asv_parameters_are_separate_axes():
    """params is a tuple of lists with one name per axis, never one packed string."""
    for module in _asv_modules():
        for owner in vars(module).values():
            if not inspect.isclass(owner) or owner.__module__ != module.__name__:
                continue
            params = getattr(owner, "params", None)
            if not params:
                continue
            assert isinstance(params, tuple), owner
            assert len(params) == len(owner.param_names), owner
            for axis in params:
                assert all(not isinstance(v, str) or not any(c in v for c in ",:|=")
                           for v in axis), (owner, axis)


def test_startup_benchmark_subprocess(tmp_path):
    """The start-up subprocess runs with the given NUMBA_CACHE_DIR and reports seconds."""
    startup = next(m for m in _asv_modules() if m.__name__.endswith(".bench_startup"))
    assert "fr.normal(1000, seed=0)" in startup.STATEMENT
    assert startup.ColdCache.track_first_call.unit == "s"
    seconds = startup.first_call_seconds(tmp_path, "fr.normal(10, seed=0, backend='numpy')")
    assert 0 < seconds < 60


@pytest.fixture(scope="module")
def one_blas_thread():
    """OpenBLAS limited to one thread while the suite runs once: on a machine that other
    work keeps busy, its threads make small QRs (the orthogonal benchmarks) take ~0.5 s
    instead of ms (see fastinit.bench), and these runs measure nothing anyway."""
    if _installed("scipy"):
        import scipy.linalg  # noqa: F401 - loads SciPy's OpenBLAS, so that it is limited too
    blas = measure.BlasThreads()
    blas.limit(1)
    yield
    blas.restore()


@pytest.mark.parametrize("owner, method, combo", _cases())
def test_asv_benchmark_runs_once(owner, method, combo, monkeypatch, one_blas_thread):
    module = sys.modules[owner.__module__ if owner is not None else method.__module__]
    for attribute, value in _TEST_SETTINGS.get(module.__name__.split(".")[-1], {}).items():
        monkeypatch.setattr(module, attribute, value)
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


def test_model_case(capsys, tmp_path):
    """``--cases model``: a Llama-style transformers model built three ways (needs
    transformers; not in the default cases)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert "model" not in cases.CASES and "model" in cases.ALL_CASES
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--quick", "--cases", "model", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "llama model" in out and "LlamaForCausalLM" in out
    data = json.loads(path.read_text())
    rows = {r["implementation"]: r for r in data["results"]}
    assert set(rows) == {"fastinit init_module_", "fastinit fast_init", "transformers"}
    assert all(r["error"] is None and r["skipped"] is None for r in rows.values())
    n = rows["transformers"]["n"]
    assert n == bench.case_shape("model", cases.QUICK_SIZE)[0] > 0


# -- how a case is measured: turns, budget, warm-up, BLAS threads ------------------------


def _fake_rows(log, slow=0.0):
    """Three implementations of 'normal' that log their calls: a compiling one, a fast one
    and one taking ``slow`` seconds per call."""
    def factory(name, compiles, seconds):
        def make(case, out, ctx):
            def call():
                log.append(name)
                time.sleep(seconds)
            return cases.Runner(call, compiles=compiles, note=name)
        return make
    return [("fastinit numba", factory("a", True, 0.0)),
            ("numpy Generator", factory("b", False, 0.0)),
            ("torch", factory("c", False, slow))]


def test_implementations_take_turns_within_a_budget(monkeypatch):
    log = []
    monkeypatch.setattr(measure, "implementations", lambda case: _fake_rows(log, slow=0.3))
    results = measure.run(size=1000, repeat=3, cases=["normal"], budget=0.25)
    # a's first call is its untimed warm-up; then rounds of one call each; c's first call
    # (0.3 s) exceeds the budget, so it is timed once; a and b make their 3 calls.
    assert log == ["a", "a", "b", "c", "a", "b", "a", "b"]
    timed = {r.implementation: len(r.seconds) for r in results}
    assert timed == {"fastinit numba": 3, "numpy Generator": 3, "torch": 1}
    assert all(r.rate and not r.error for r in results)


def test_a_failing_implementation_leaves_the_others(monkeypatch):
    log = []
    rows = _fake_rows(log)

    def broken(case, out, ctx):
        def call():
            raise RuntimeError("boom")
        return cases.Runner(call)
    monkeypatch.setattr(measure, "implementations", lambda case: rows[:2] + [("jax", broken)])
    results = {r.implementation: r for r in measure.run(size=1000, repeat=2, cases=["normal"])}
    assert results["jax"].error == "RuntimeError: boom" and not results["jax"].seconds
    assert len(results["numpy Generator"].seconds) == 2


def test_blas_threads_limited_through_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401 - loads SciPy's BLAS
    before = {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i["user_api"] == "blas"}
    blas = measure.BlasThreads()
    assert blas.limit(1) == len(before) > 0
    assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "blas")
    blas.restore()
    assert {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas"} == before
    assert {"library", "version", "num_threads"} <= set(measure.blas_info()[0])


def test_demo_runs_where_a_skipped_peer_is_not_installed(capsys, monkeypatch):
    """The demo's default --skip names Keras' row; without Keras that is no error."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] in ("keras", "torch", "jax")
                        else real_find_spec(name, *a))
    assert "keras (numpy)" in cli.DEMO_SKIP
    assert cli.main(["demo", "--quick", "--cases", "uniform,orthogonal"]) == 0
    out = capsys.readouterr().out
    assert "numpy.linalg.qr" in out and "scipy.linalg.qr" not in out


def test_jax_cases(capsys, tmp_path):
    """``--cases jax``: fastinit.jax on XLA against jax.random under jit (not in the
    default cases, nor the demo's)."""
    pytest.importorskip("jax")
    assert not set(cases.JAX_CASES) & set(cases.CASES)
    path = tmp_path / "bench.json"
    status = cli.main(["bench", "--size", "1e4", "--repeat", "1", "--cases", "jax",
                       "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0 and "jax: normal" in out and "jax: trunc normal" in out
    rows = json.loads(path.read_text())["results"]
    assert {(r["case"], r["implementation"]) for r in rows} == {
        (c, i) for c in cases.JAX_CASES for i in ("fastinit.jax", "jax.random")}
    assert all(r["error"] is None and r["skipped"] is None for r in rows)
