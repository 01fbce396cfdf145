"""Real transformers models (Llama, tied Llama, GPT-2, BERT; initializer_range 0.05):
fast_init and init_module_ run each model's own init on fastinit, and give the same bits
whatever the construction (meta or CPU), the torch seed, the thread count, the process."""

import json
import math
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from scipy import stats  # noqa: E402

import fastinit.torch as ft  # noqa: E402
from fastinit.sharding import name_stream  # noqa: E402
from helpers import hf_models as hm, run_python  # noqa: E402

nn = torch.nn
KEYS = list(hm.MODELS)
SEED = 1234


@pytest.fixture(scope="module")
def built():
    """Per model: A = built inside fast_init, B = meta + to_empty + init_module_,
    C = a normal (torch-seeded) build re-initialised by init_module_, N = a normal build."""
    out = {}
    for key in KEYS:
        with ft.fast_init(SEED):
            a = hm.build(key)
        torch.manual_seed(0)
        c = ft.init_module_(hm.build(key), SEED)
        torch.manual_seed(1)
        out[key] = {"A": a, "B": hm.meta_init(key, SEED), "C": c, "N": hm.build(key)}
    return out


@pytest.mark.parametrize("key", KEYS)
def test_same_bits_however_built(built, key):
    models = built[key]
    ta = hm.tensors(models["A"])
    assert hm.differ(ta, hm.tensors(models["B"])) == []
    assert hm.differ(ta, hm.tensors(models["C"])) == []
    assert all(hm.tied(m) for m in (models["A"], models["B"], models["C"]))
    if key in ("llama_tied", "gpt2", "bert"):
        assert models["B"].all_tied_weights_keys  # and so tied weights are one tensor


@pytest.mark.parametrize("key", KEYS)
def test_buffers_equal_a_normal_build(built, key):
    ours, normal = built[key]["B"], built[key]["N"]
    want = dict(normal.named_buffers())
    got = dict(ours.named_buffers())
    assert set(got) == set(want)
    assert [n for n in want if not torch.equal(got[n], want[n])] == []
    if key.startswith("llama"):
        assert "model.rotary_emb.inv_freq" in got
    if key == "bert":
        assert {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"} <= set(got)


def _ks_same(a, b, alpha=1e-3):
    a = a.detach().double().reshape(-1).numpy()
    b = b.detach().double().reshape(-1).numpy()
    return stats.ks_2samp(a, b).pvalue > alpha


@pytest.mark.parametrize("key", KEYS)
def test_statistics_match_the_models_own_init(built, key):
    ours, normal = built[key]["B"], built[key]["N"]
    theirs = dict(normal.named_parameters())
    for name, p in ours.named_parameters():
        q = theirs[name].detach()
        p = p.detach()
        if float(q.std()) == 0 or q.numel() == 1:  # constants: norms one, biases zero
            assert torch.equal(p, q), name
            continue
        rows = [i for i in range(q.shape[0]) if q.ndim == 2 and not q[i].any()]
        for i in rows:  # padding rows
            assert not p[i].any(), (name, i)
        if rows:
            keep = [i for i in range(q.shape[0]) if i not in rows]
            p, q = p[keep], q[keep]
        assert _ks_same(p, q), name
        assert float(p.std()) == pytest.approx(float(q.std()), rel=0.08), name


def test_the_recipe(built):
    r = hm.RANGE
    gpt2 = built["gpt2"]["B"]
    n_layer = gpt2.config.n_layer
    for name, p in gpt2.named_parameters():
        p = p.detach()
        if name.endswith("c_proj.weight"):  # GPT-2's scaled residual projections
            assert float(p.std()) == pytest.approx(r / math.sqrt(2 * n_layer), rel=0.05), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert float(p.std()) == pytest.approx(r, rel=0.05), name
        elif name.endswith("bias"):
            assert not p.any(), name
        elif ".ln_" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name
    bert = built["bert"]["B"]
    emb = bert.bert.embeddings.word_embeddings.weight.detach()
    assert not emb[bert.config.pad_token_id].any()
    assert bert.cls.predictions.decoder.weight is bert.bert.embeddings.word_embeddings.weight
    llama = built["llama"]["B"]
    for name, p in llama.named_parameters():
        p = p.detach()
        if name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        else:
            assert float(p.std()) == pytest.approx(r, rel=0.05), name


@pytest.mark.parametrize("key", KEYS)
def test_each_tensor_draws_from_its_name(built, key):
    model, name = built[key]["B"], hm.EMBEDDING[key]
    weight = model.get_parameter(name).detach()
    want = ft.normal_(torch.empty(weight.shape), std=hm.RANGE, seed=SEED,
                      stream=name_stream(name))
    if key == "bert":
        want[model.config.pad_token_id] = 0
    assert torch.equal(weight, want)
    # the same model inside a larger one: prefix= gives the larger model's names
    prefixed = hm.build(key, "meta")
    prefixed.to_empty(device="cpu")
    ft.init_module_(prefixed, SEED, prefix="outer.")
    want = ft.normal_(torch.empty(weight.shape), std=hm.RANGE, seed=SEED,
                      stream=name_stream("outer." + name))
    if key == "bert":
        want[model.config.pad_token_id] = 0
    assert torch.equal(prefixed.get_parameter(name).detach(), want)


def test_thread_counts(cpu_threads):
    cpu_threads(1)
    one = hm.tensors(hm.meta_init("gpt2", SEED))
    cpu_threads(2)
    two = hm.tensors(hm.meta_init("gpt2", SEED))
    assert hm.differ(one, two) == []
    two = hm.tensors(hm.meta_init("gpt2", SEED, backend="numpy"))
    assert hm.differ(one, two) == []


def test_two_processes(built):
    code = textwrap.dedent("""
        import json, torch
        from helpers import hf_models as hm
        import fastinit.torch as ft
        torch.set_num_threads(1)
        out = {k: hm.digest(hm.meta_init(k, %d)) for k in hm.MODELS}
        print(json.dumps(out))
    """ % SEED)
    other = json.loads(run_python(code, timeout=300).strip().splitlines()[-1])
    assert other == {k: hm.digest(built[k]["B"]) for k in KEYS}


def test_rules_override_the_model_init():
    ruled = hm.meta_init("llama", SEED, rules={"lm_head.weight": "zeros",
                                               "*.q_proj.weight": ("normal_", {"std": 1.0})})
    plain = hm.meta_init("llama", SEED)
    assert not ruled.lm_head.weight.any()
    q = ruled.model.layers[0].self_attn.q_proj.weight.detach()
    want = ft.normal_(torch.empty(q.shape), std=1.0, seed=SEED,
                      stream=name_stream("model.layers.0.self_attn.q_proj.weight"))
    assert torch.equal(q, want)
    assert sorted(hm.differ(hm.tensors(ruled), hm.tensors(plain))) == sorted(
        ["lm_head.weight"] + [f"model.layers.{i}.self_attn.q_proj.weight" for i in range(2)])


def test_construction_covers_what_the_init_does_not():
    """A parameter no init function sees takes what the model's construction gave it: a
    draw by the stream of its name, a value computed in __init__ (fast_init and
    init_module_ alike); one construction left unwritten is an error naming it."""
    from transformers import PretrainedConfig, PreTrainedModel

    class TinyConfig(PretrainedConfig):
        model_type = "fastinit-tiny"

    class Tiny(PreTrainedModel):
        config_class = TinyConfig

        def __init__(self, config):
            super().__init__(config)
            self.lin = nn.Linear(4, 4)
            self.extra = nn.Parameter(torch.randn(3))  # no init function ever sees them
            self.extra.data[1] = 0.0                   # after the (deferred) draw
            self.scale = nn.Parameter(torch.ones(2) / 4)
            self.post_init()

    class Holed(Tiny):
        def __init__(self, config):
            super().__init__(config)
            self.hole = nn.Parameter(torch.empty(2))  # construction writes nothing

    config = TinyConfig(initializer_range=0.1)
    with torch.device("meta"):
        model = Tiny(config)
    model.to_empty(device="cpu")
    ft.init_module_(model, 0)
    want = ft.normal_(torch.empty(3), seed=0, stream=name_stream("extra"))
    want[1] = 0.0
    assert torch.equal(model.extra.detach(), want)
    assert torch.equal(model.scale.detach(), torch.full((2,), 0.25))
    want = ft.normal_(torch.empty(4, 4), std=0.1, seed=0, stream=name_stream("lin.weight"))
    assert torch.equal(model.lin.weight.detach(), want) and not model.lin.bias.any()
    with ft.fast_init(0):
        built = Tiny(config)
    assert hm.differ(hm.tensors(built), hm.tensors(model)) == []
    ft.init_module_(model, 0, rules={"extra": "ones"})
    assert torch.equal(model.extra.detach(), torch.ones(3))
    with torch.device("meta"):
        holed = Holed(config)
    holed.to_empty(device="cpu")
    with pytest.raises(ValueError, match=r"No rule .* hole \(Holed\)$"):
        ft.init_module_(holed, 0)
    # a plain module holding GPT-2's Conv1D (no reset_parameters, no rule): listed
    conv = nn.Sequential(hm.build("gpt2").transformer.h[0].attn.c_attn)
    with pytest.raises(ValueError, match=r"0.weight \(Conv1D\), 0.bias \(Conv1D\)"):
        ft.init_module_(conv, 0)


def test_a_deep_copy_made_in_the_block_initialises_itself():
    """The hooks that route a model's init to the block are bound to that model: a deep
    copy's ``initialize_weights`` initialises the copy, not the original."""
    import copy
    with ft.fast_init(SEED):
        model = hm.build("gpt2")
        clone = copy.deepcopy(model)
        with torch.no_grad():
            clone.transformer.wte.weight.zero_()
            model.transformer.wpe.weight.zero_()
        for m in clone.modules():
            m.__dict__.pop("_is_hf_initialized", None)
        clone.initialize_weights()
    assert clone.transformer.wte.weight.any() and not model.transformer.wpe.weight.any()
    assert torch.equal(clone.transformer.wte.weight, model.transformer.wte.weight)
    assert all("initialize_weights" not in m.__dict__ for m in (model, clone))


def test_nested_and_discarded_models():
    """A model built inside fast_init but not kept by its parent is initialised under its
    own names; one built on its own draws the same values as inside fast_init."""
    from transformers import LlamaModel
    with ft.fast_init(SEED):
        alone = LlamaModel(hm.llama_config())
    with torch.device("meta"):
        meta = LlamaModel(hm.llama_config())
    meta.to_empty(device="cpu")
    ft.init_module_(meta, SEED)
    assert hm.differ(hm.tensors(alone), hm.tensors(meta)) == []
    assert torch.equal(alone.embed_tokens.weight.detach(), ft.normal_(
        torch.empty(1001, 64), std=hm.RANGE, seed=SEED, stream=name_stream("embed_tokens.weight")))


def test_transformers_imported_inside_the_block():
    code = textwrap.dedent("""
        import torch, fastinit.torch as ft
        originals = {n: getattr(torch.nn.init, n) for n in ("normal_", "zeros_")}
        with ft.fast_init(0):
            import transformers.initialization as hf
            from transformers import GPT2LMHeadModel, GPT2Config
            model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50,
                                               n_positions=16))
        assert all(hf.TORCH_INIT_FUNCTIONS[n] is f for n, f in originals.items())
        assert all(getattr(torch.nn.init, n) is f for n, f in originals.items())
        print("ok")
    """)
    assert run_python(code, timeout=300).strip().endswith("ok")
