"""Every ```python block of README.md and docs/*.md runs as written, in a fresh process.

Each block is the whole program: it runs alone in a new interpreter (this checkout
importable, nothing else set up), in an empty temporary working directory, with a
timeout, and without ``KERAS_BACKEND`` (a block that uses Keras sets it, as a reader's
program must: Keras' default backend, TensorFlow, is not a dependency). The only
exemption is a block fenced ```python gpu, which needs a GPU: it runs only where
fastinit finds one. A failure names the page, the block's number and its first line.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import checkout_env

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
TIMEOUT = 300   # seconds per block (the slowest builds two small transformers models)


def _pages():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _blocks():
    params = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            info, code = match.group(1).split(), match.group(2)
            line = text.count("\n", 0, match.start()) + 1
            name = f"{page.relative_to(ROOT)}:{line}"
            marks = []
            if info == ["gpu"]:
                marks.append(pytest.mark.skipif(not _gpu(), reason="a ```python gpu block"))
            elif info:
                raise ValueError(f"{name}: unknown fence ```python {' '.join(info)}; "
                                 "```python gpu is the only exemption")
            params.append(pytest.param(page, number, line, code, marks=marks, id=name))
    return params


def _gpu():
    from fastinit import gpu
    return gpu.is_available()


def test_the_pages_have_python_blocks():
    names = {p.id.split(":")[0] for p in _blocks()}
    assert {"README.md", "docs/getting-started.md", "docs/initializers.md"} <= names


@pytest.mark.parametrize("page, number, line, code", _blocks())
def test_python_block_runs_as_written(page, number, line, code, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    where = f"{page.relative_to(ROOT)}, python block {number} (line {line})"
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=TIMEOUT,
                              env=checkout_env({"KERAS_BACKEND": None}))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where} ran for more than {TIMEOUT} s")
    assert proc.returncode == 0, (
        f"{where} fails as written (it starts: {code.splitlines()[0]!r}):\n"
        f"{proc.stderr[-3000:]}")
    big = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 64 << 20]
    assert not big, f"{where} writes large files into the working directory: {big}"
