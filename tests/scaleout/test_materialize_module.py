"""Random-weight checkpoints of torch models (fastinit.materialize.materialize_module and
``fastinit materialize CONFIG.json``): from_pretrained loads them with no missing or
unexpected key, and they hold exactly init_module_'s values."""

import json
import os
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import fastinit.torch as ft  # noqa: E402
from fastinit import cli  # noqa: E402
from fastinit.materialize import INDEX_NAME, materialize_module  # noqa: E402
from fastinit.torch._plan import Copy, Fill, Planned  # noqa: E402
from helpers import hf_models as hm, run_in_threads, run_python  # noqa: E402

SEED = 7


def load_dir(out_dir):
    out = {}
    for f in os.listdir(out_dir):
        if f.endswith(".safetensors"):
            out.update(safetensors_torch.load_file(os.path.join(out_dir, f)))
    return out


@pytest.mark.parametrize("bad", [{"chunk_bytes": 1}, {"chunk_bytes": "big"},
                                 {"lock_timeout": -1}, {"lock_timeout": float("nan")},
                                 {"backend": "bogus"}, {"backend": 3}, {"out_dir": "a file"},
                                 {"max_shard_size": "zz"}, {"progress": "no"},
                                 {"check_space": "yes"}, {"write_config": 1},
                                 {"dry_run": "False"}])
def test_bad_arguments_fail_before_the_model_is_initialised(tmp_path, bad):
    """A live model (real weights) with one bad argument: a clear error, its weights as
    they were, nothing on disk. Before, chunk_bytes and lock_timeout were checked only
    after init_module_ had re-initialised the weights."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    (tmp_path / "a file").write_text("x")
    kwargs = {"progress": False, **bad}
    out_dir = tmp_path / kwargs.pop("out_dir", "out")
    with pytest.raises((ValueError, TypeError, NotADirectoryError), match="Received|directory"):
        materialize_module(model, out_dir, SEED, **kwargs)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(os.listdir(tmp_path)) == ["a file"]
    assert (tmp_path / "a file").read_text() == "x"


@pytest.mark.parametrize("key", list(hm.MODELS))
def test_from_pretrained_loads_init_module_values(tmp_path, key):
    cls, _ = hm.MODELS[key]
    meta = hm.build(key, "meta")
    # 4 KiB chunks: BERT's zero padding row and every tensor cross chunk boundaries
    paths = materialize_module(meta, tmp_path, SEED, max_shard_size="100KB", chunk_bytes=4096,
                               mode="plan", progress=False)
    names = sorted(os.path.basename(p) for p in paths)
    assert os.path.basename(paths[-1]) == INDEX_NAME and "config.json" in names
    assert ("generation_config.json" in names) == (key != "bert")
    assert all(t.is_meta for t in meta.parameters())  # never allocated
    loaded, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    want = hm.meta_init(key, SEED)
    assert hm.differ(hm.tensors(loaded), hm.tensors(want)) == []
    assert hm.tied(loaded)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert set(index["weight_map"]) == set(load_dir(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == [cls.__name__] and config["initializer_range"] == hm.RANGE


def test_plain_torch_module(tmp_path):
    nn = torch.nn

    def build():
        model = nn.ModuleDict({"emb": nn.Embedding(50, 8, padding_idx=1),
                               "lin": nn.Linear(8, 50), "bn": nn.BatchNorm1d(8)})
        model["lin"].weight = model["emb"].weight  # tied: written once, under "emb.weight"
        return model

    with torch.device("meta"):
        meta = build()
    materialize_module(meta, tmp_path, 3, progress=False)
    files = load_dir(tmp_path)
    want = ft.init_module_(build(), 3).state_dict()
    assert set(files) == set(want) - {"lin.weight"}
    assert all(torch.equal(files[k], want[k]) for k in files)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_rules_and_keras_layout(tmp_path):
    import fastinit.initializers as fi
    rules = {"lm_head.weight": fi.GlorotUniform(seed=5), "*.q_proj.weight": "orthogonal"}
    materialize_module(hm.build("llama", "meta"), tmp_path, SEED, rules=rules, chunk_bytes=4096,
                       progress=False)
    files = load_dir(tmp_path)
    want = hm.meta_init("llama", SEED, rules=rules).state_dict()
    assert all(torch.equal(files[k], want[k]) for k in files)


def test_unrecordable_init_falls_back_to_live(tmp_path):
    from transformers import Mamba2Config, Mamba2ForCausalLM
    config = Mamba2Config(hidden_size=32, num_hidden_layers=1, vocab_size=100, num_heads=4,
                          head_dim=16, state_size=8, n_groups=1, expand=2)
    with torch.device("meta"):
        meta = Mamba2ForCausalLM(config)
    # A_log is copied from a value computed from the model's own (meta) tensors
    with pytest.raises(ValueError, match=r"backbone.layers.0.mixer.A_log"):
        materialize_module(meta, tmp_path / "plan", 0, mode="plan", progress=False)
    assert not (tmp_path / "plan").exists() or not os.listdir(tmp_path / "plan")
    materialize_module(meta, tmp_path / "auto", 0, progress=False)
    with torch.device("meta"):
        again = Mamba2ForCausalLM(config)
    again.to_empty(device="cpu")
    want = ft.init_module_(again, 0).state_dict()
    files = load_dir(tmp_path / "auto")
    assert set(files) <= set(want) and all(torch.equal(files[k], want[k]) for k in files)
    header = safetensors_torch.safe_open(str(tmp_path / "auto" / "model.safetensors"), "pt")
    assert header.metadata()["fastinit_mode"] == "live"


def test_config_json_cli_bfloat16(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM
    config = hm.llama_config()
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(tmp_path / "cfg")
    out = tmp_path / "out"
    status = cli.main(["materialize", str(tmp_path / "cfg" / "config.json"), str(out),
                       "--seed", "3", "--dtype", "bfloat16", "--max-shard-size", "50KB",
                       "--no-progress"])
    assert status == 0, capsys.readouterr().err
    loaded, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert loaded.dtype == torch.bfloat16 and {k: v for k, v in info.items() if v} == {}
    config.dtype = "bfloat16"
    with torch.device("meta"):
        model = LlamaForCausalLM._from_config(config)
    model.to_empty(device="cpu")
    ft.init_module_(model, 3)
    assert hm.differ(hm.tensors(loaded), hm.tensors(model)) == []
    # the same command again replaces the checkpoint whole (other shard count)
    status = cli.main(["materialize", str(tmp_path / "cfg"), str(out), "--seed", "3",
                       "--no-progress"])
    assert status == 0
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json",
                                       "model.safetensors"]
    assert cli.main(["materialize", str(tmp_path / "cfg"), str(tmp_path / "o2"),
                     "--format", "npy"]) == 2


def test_planned_regions_equal_the_whole():
    import numpy as np
    import fastinit.initializers as fi
    ops = [Fill(fi.RandomNormal(seed=1)), Fill(fi.Zeros(), (5,)),
           Copy(torch.arange(7.0).expand(2, 7).clone(), (slice(2, 4), slice(None)))]
    whole = Planned(ops)((9, 7), stream=11)
    assert not whole[5].any() and np.array_equal(whole[2:4], np.tile(np.arange(7.0), (2, 1)))
    assert np.array_equal(whole[6:], fi.RandomNormal(seed=1)((9, 7), stream=11)[6:])
    for index in [(slice(1, 6),), (3, slice(2, 6)), (slice(0, 9), slice(5, 7)), (5, 4)]:
        assert np.array_equal(Planned(ops)((9, 7), index=index, stream=11), whole[index])
    keras = Planned([Fill(fi.GlorotUniform(seed=2), layout="keras")])
    assert np.array_equal(keras((4, 3), stream=5), fi.GlorotUniform(seed=2)((3, 4), stream=5).T)
    assert np.array_equal(keras((4, 3), index=(slice(1, 3),), stream=5),
                          fi.GlorotUniform(seed=2)((3, 4), stream=5).T[1:3])


def test_progress_bar(tmp_path, capsys):
    materialize_module(hm.build("gpt2", "meta"), tmp_path, 0, progress=True)
    assert "fastinit materialize" in capsys.readouterr().err


def test_peak_rss_of_a_1gib_checkpoint(tmp_path):
    """The model is never allocated: memory stays a few buffers whatever its size."""
    code = textwrap.dedent("""
        import os, sys, tempfile, torch
        from helpers import hf_models as hm
        from transformers import LlamaForCausalLM
        from fastinit.materialize import materialize_module
        small = hm.llama_config(vocab_size=100)
        materialize_module(hm.build("llama", "meta"), tempfile.mkdtemp(), 0, progress=False)
        config = hm.llama_config(vocab_size=65536, hidden_size=2048, intermediate_size=256,
                                 num_hidden_layers=1, num_attention_heads=16,
                                 num_key_value_heads=16)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        rss = lambda key: int([l for l in open("/proc/self/status")
                               if l.startswith(key)][0].split()[1])
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss("VmRSS")
        materialize_module(model, sys.argv[1], 0, chunk_bytes=8 << 20, progress=False)
        print(before, rss("VmHWM"))
    """)
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's peak-RSS reset")
    before, peak = map(int, run_python(code, tmp_path / "out").split()[-2:])
    size = os.path.getsize(tmp_path / "out" / "model.safetensors")
    assert size > 1 << 30
    assert (peak - before) / 1024 < 256, (before, peak)


def test_live_materialisation_in_two_threads_keeps_tied_weights_tied(monkeypatch):
    """Two threads materialise tied meta models live at once. Each to_empty is held so
    that, without a lock, the first thread restores torch's process-wide swap flag
    (False) while the second converts: the second's tied weights came out untied,
    and the flag was left True. With the lock the two conversions take turns."""
    import threading
    import time

    from fastinit.materialize import _module as mm

    real = torch.nn.Module.to_empty
    swap = torch.__future__.get_swap_module_params_on_conversion
    both_in = threading.Barrier(2)
    entered = []

    def to_empty(self, *args, **kwargs):
        entered.append(threading.current_thread())
        second = len(entered) == 2
        try:
            both_in.wait(timeout=2)  # with the lock, the other thread cannot be here
        except threading.BrokenBarrierError:
            pass
        if second:  # wait until the first has restored the flag (never, with the lock)
            deadline = time.monotonic() + 2
            while swap() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to_empty", to_empty)

    def tied_meta():
        with torch.device("meta"):
            model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False),
                                        torch.nn.Linear(4, 4, bias=False))
        model[1].weight = model[0].weight
        return model

    assert swap() is False
    results = [None, None]

    def body(t):
        results[t] = mm._live(tied_meta(), SEED, None, "keras", "numpy")

    run_in_threads(2, body)
    assert len(entered) == 2
    for model in results:
        assert model[0].weight is model[1].weight and not model[0].weight.is_meta
    assert swap() is False
