"""``fastinit materialize CONFIG.json`` on bad and absurd configs: one line and exit
status 2, before a model is built (fastinit.materialize._config)."""

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from fastinit.materialize import _config  # noqa: E402
from helpers import checkout_env  # noqa: E402

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
         "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "vocab_size": 1000}


def _materialize(tmp_path, config, *options, timeout=120):
    (tmp_path / "cfg").mkdir(exist_ok=True)
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(config))
    return subprocess.run([sys.executable, "-m", "fastinit", "materialize",
                           str(tmp_path / "cfg" / "config.json"), str(tmp_path / "out"),
                           "--no-progress", *options],
                          capture_output=True, text=True, timeout=timeout, env=checkout_env())


@pytest.mark.parametrize("change, match", [
    ({"hidden_size": "big"}, "hidden_size"),                       # a field of the wrong type
    ({"model_type": "no_such_model"}, "no_such_model"),              # an unknown model type
    ({"hidden_size": 63}, "multiple of the number of attention heads"),  # a failed validation
    ({"architectures": ["NoSuchModel"], "vocab_size": -5}, "vocab_size|negative|-5"),
])
def test_a_bad_config_is_one_line_and_status_2(tmp_path, capsys, change, match):
    import re

    from fastinit import cli
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({**LLAMA, **change}))
    status = cli.main(["materialize", str(tmp_path / "cfg" / "config.json"),
                       str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("fastinit materialize: error: ") and re.search(match, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, match", [
    ({"num_hidden_layers": 10**12}, r"num_hidden_layers=1,000,000,000,000.*GiB"),
    ({"vocab_size": 10**11}, r"would write about [0-9,.]+ GiB"),
])
def test_absurd_sizes_are_refused_before_the_model_is_built(tmp_path, change, match):
    start = time.monotonic()
    result = _materialize(tmp_path, {**LLAMA, **change}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    import re
    assert re.search(match, result.stderr) and "Nothing was built" in result.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "out").exists()


def test_the_estimate_is_exact_for_decoder_models():
    import torch
    import transformers
    config = transformers.AutoConfig.for_model(**{k: v for k, v in LLAMA.items()
                                                  if k != "architectures"},
                                               tie_word_embeddings=False)
    config.num_hidden_layers = 7
    config.layer_types = ["full_attention"] * 7  # a per-layer list follows the count

    def build(cfg):
        with torch.device("meta"):
            return transformers.LlamaForCausalLM(cfg)
    est = _config.estimate(config, build)
    model = build(config)
    tensors = list(model.parameters()) + list(model.buffers())
    assert est.nbytes == sum(t.numel() * t.element_size() for t in tensors)
    assert est.modules == sum(1 for _ in model.modules())
    assert est.layers == {"num_hidden_layers": 7}
