"""The ``fastinit`` command itself: what a bare command does, and which copy it runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastinit import cli
from fastinit.bench import cli as bench_cli

ROOT = Path(__file__).resolve().parents[2]


def test_bare_command_prints_help_and_runs_nothing(capsys, monkeypatch):
    def no_benchmark(*args, **kwargs):
        raise AssertionError("a bare 'fastinit' must not start the benchmark")

    monkeypatch.setattr(bench_cli, "run_from_args", no_benchmark)
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ")
    for command in ("bench", "demo", "warmup", "materialize"):
        assert command in out
    assert "demo'" in out  # the epilog says where to start


def test_python_m_fastinit_without_arguments(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastinit"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m fastinit")
    assert "G elem/s" not in proc.stdout


def test_console_script_is_declared():
    """README's first command runs ``fastinit demo``: the console script imports the
    installed package, where ``python -m fastinit`` in a checkout would import the
    checkout (the current directory comes first on ``sys.path``)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["fastinit"] == "fastinit.cli:main"
    readme = (ROOT / "README.md").read_text()
    commands = "".join(re.findall(r"^ *```\n(.*?)^ *```", readme, re.S | re.M))
    assert "pip install . && fastinit demo" in commands
    assert "python -m fastinit" not in commands


@pytest.mark.parametrize("argv", [["--version"], ["demo", "--help"]])
def test_help_and_version_exit_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert capsys.readouterr().out
