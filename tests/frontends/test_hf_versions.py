"""The transformers releases fastinit.torch supports (``fastinit.torch._hf.SUPPORTED``):
the newest is the one the test extra pins (every other HF test runs on it); the oldest is
installed into a temporary directory and checked in a fresh interpreter (skipped when the
package registry cannot be reached); a release outside the range is refused by name."""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import fastinit.torch as ft  # noqa: E402
from fastinit.torch import _hf  # noqa: E402
from helpers import ROOT, hf_models as hm, run_python  # noqa: E402

OLDEST = ".".join(map(str, _hf.SUPPORTED[0]))
#: What the oldest release needs beside the test extra's packages (its pins of
#: huggingface-hub and tokenizers, and what that huggingface-hub imports).
OLDEST_REQUIREMENTS = [f"transformers=={OLDEST}", "huggingface-hub>=1.3,<2",
                       "tokenizers>=0.22,<=0.23.0", "httpx<1", "httpcore<2"]

CHECK = """
    import json, tempfile
    import torch, transformers
    from helpers import hf_models as hm
    import fastinit.torch as ft
    from fastinit.materialize import materialize_module
    out = {"version": transformers.__version__, "differ": {}}
    for key in hm.MODELS:
        with ft.fast_init(3):
            built = hm.build(key)
        ours = hm.meta_init(key, 3)
        d = tempfile.mkdtemp()
        materialize_module(hm.build(key, "meta"), d, 3, mode="plan", progress=False)
        loaded = hm.MODELS[key][0].from_pretrained(d)
        out["differ"][key] = hm.differ(hm.tensors(built), hm.tensors(ours)) + \\
            hm.differ(hm.tensors(loaded), hm.tensors(ours))
    print(json.dumps(out))
"""


def test_the_newest_supported_release_is_the_one_tested():
    low, high = _hf.SUPPORTED
    installed = tuple(int(p) for p in transformers.__version__.split(".")[:3])
    assert low <= installed < high


def test_a_release_outside_the_range_is_refused_by_name(monkeypatch):
    model = hm.build("gpt2", "meta")
    model.to_empty(device="cpu")
    # transformers' lazy module may have been replaced in sys.modules since this file imported it
    monkeypatch.setattr(sys.modules["transformers"], "__version__", "4.57.1")
    monkeypatch.setattr(_hf, "_CHECKED", [])
    with pytest.raises(RuntimeError, match=rf"transformers {OLDEST} up to .* 4\.57\.1"):
        ft.init_module_(model, 0)
    with pytest.raises(RuntimeError, match="4.57.1"):
        with ft.fast_init(0):
            hm.build("gpt2")


def test_the_oldest_supported_release(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--disable-pip-version-check", "--target", str(target),
                          *OLDEST_REQUIREMENTS], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"transformers {OLDEST} could not be installed (no package registry?): "
                    f"{pip.stderr.strip().splitlines()[-1:]}")
    env = {"PYTHONPATH": os.pathsep.join([str(target), str(ROOT), str(ROOT / "tests")]),
           "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HF_HUB_OFFLINE": "1"}
    out = json.loads(run_python(CHECK, env=env, timeout=600).strip().splitlines()[-1])
    assert out["version"] == OLDEST
    assert out["differ"] == {key: [] for key in hm.MODELS}
