"""benchmarks/jax_gpu.py (the GPU check's JAX step) where no GPU is: it refuses to run
without one when asked, and keeps what each phase measured when a later one fails."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "jax_gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("jax_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_require_gpu_exits_at_once_without_one(tmp_path):
    out = tmp_path / "jax-gpu.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--require-gpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "JAX sees no GPU" in proc.stderr and "'cpu'" in proc.stderr
    assert not out.exists()
    assert time.perf_counter() - start < 60     # no phase ran (import and exit)


def test_each_phase_is_saved_and_a_failing_one_does_not_lose_them(tmp_path, monkeypatch):
    gpu = _module()
    out = tmp_path / "jax-gpu.json"
    seen = {}

    def speed(n, rounds):
        seen["on disk"] = json.loads(out.read_text())   # what a kill now would leave
        raise RuntimeError("out of memory")

    monkeypatch.setattr(gpu, "bits", lambda n: {"float32": {"normal": 0}})
    monkeypatch.setattr(gpu, "guards", lambda n: {"contraction off": {"normal": 3}})
    monkeypatch.setattr(gpu, "division_flag", lambda n: {"normal": 0})
    monkeypatch.setattr(gpu, "speed", speed)
    assert gpu.main(["--json", str(out)]) == 1
    assert seen["on disk"]["bits"] == {"float32": {"normal": 0}}
    assert seen["on disk"]["needed"] == ["contraction"]
    report = json.loads(out.read_text())
    assert report["speed"] == {"failed": "RuntimeError: out of memory"}
    assert report["bits"] == {"float32": {"normal": 0}}
    assert "Phases that failed" in gpu.markdown(report)


def test_the_division_flag_child_is_bounded(monkeypatch):
    gpu = _module()

    def hang(*args, timeout, **kwargs):
        assert timeout <= 60
        raise subprocess.TimeoutExpired("python", timeout)

    monkeypatch.setattr(gpu.subprocess, "run", hang)
    assert gpu.division_flag(16) == {"error": f"timed out after {gpu.DIVISION_FLAG_TIMEOUT}s"}
