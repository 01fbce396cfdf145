"""``import fastinit`` loads NumPy only: Numba, SciPy and friends load on first use."""

import json
import subprocess
import sys

HEAVY = ("numba", "llvmlite", "scipy", "ml_dtypes", "torch", "jax", "cupy")


def _modules_after(code):
    script = (f"import sys, json\n{code}\n"
              "print(json.dumps(sorted(m for m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=120)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _heavy(modules):
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_fastinit_is_light():
    modules = _modules_after("import fastinit")
    assert "fastinit" in modules and "numpy" in modules
    assert _heavy(modules) == []


def test_import_fastinit_random_and_stream_is_light():
    modules = _modules_after("import fastinit.random, fastinit.stream")
    assert _heavy(modules) == []


def test_numpy_backend_does_not_load_numba():
    modules = _modules_after("import fastinit\n"
                             "fastinit.random.normal(10, seed=0, backend='numpy')")
    assert _heavy(modules) == []
