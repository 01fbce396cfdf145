"""Models whose construction sets parameters no init function sees (CLIP's and BLIP's
``logit_scale``, BLIP's and Longformer's LM-head bias, Reformer's, Wav2Vec2's weighted
layer sum and ``weight_norm`` originals): init_module_ and materialize_module take what the
construction gave them, equal to fast_init's model, with no uninitialised memory left."""

import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import fastinit.torch as ft  # noqa: E402
from fastinit.materialize import materialize_module  # noqa: E402
from helpers import hf_models as hm  # noqa: E402

SEED = 5
TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
            vocab_size=99, max_position_embeddings=16)
VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
              image_size=30, patch_size=15)
REFORMER = dict(hidden_size=32, num_attention_heads=2, attention_head_size=16,
                feed_forward_size=37, vocab_size=99, axial_pos_shape=(4, 8),
                axial_pos_embds_dim=(16, 16), max_position_embeddings=32, is_decoder=True,
                attn_layers=["local", "lsh"], num_hashes=1, lsh_attn_chunk_length=4,
                local_attn_chunk_length=4, num_buckets=4)
WAV2VEC2 = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, conv_dim=(8, 8), conv_stride=(2, 2), conv_kernel=(3, 3),
                num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
                use_weighted_layer_sum=True)
#: name -> (model class, config); what construction sets that no init function sees
MODELS = {
    "clip": ("CLIPModel", lambda t: t.CLIPConfig(text_config=TEXT, vision_config=VISION,
                                                 projection_dim=16)),
    "blip": ("BlipForConditionalGeneration",
             lambda t: t.BlipConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)),
    "longformer": ("LongformerForMaskedLM",
                   lambda t: t.LongformerConfig(**{**TEXT, "max_position_embeddings": 64},
                                                attention_window=4)),
    "reformer": ("ReformerModelWithLMHead", lambda t: t.ReformerConfig(**REFORMER)),
    "wav2vec2": ("Wav2Vec2ForSequenceClassification",
                 lambda t: t.Wav2Vec2Config(**WAV2VEC2)),
}
CONSTRUCTED = {"clip": ["logit_scale"], "blip": ["text_decoder.cls.predictions.bias"],
               "longformer": ["lm_head.bias"], "reformer": ["lm_head.bias"],
               "wav2vec2": ["layer_weights",
                            "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight"
                            ".original0",
                            "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight"
                            ".original1"]}


def build(key, device=None):
    cls_name, config = MODELS[key]
    cls = getattr(transformers, cls_name)
    if device is None:
        return cls(config(transformers))
    with torch.device(device):
        return cls(config(transformers))


def meta_init(key, **kw):
    model = build(key, "meta")
    model.to_empty(device="cpu")
    return ft.init_module_(model, SEED, **kw)


def finite(tensors):
    return [n for n, t in tensors.items() if t.is_floating_point() and
            not torch.isfinite(t).all()]


@pytest.mark.parametrize("key", list(MODELS))
def test_construction_values_however_built(key):
    with ft.fast_init(SEED):
        built = build(key)
    ours = meta_init(key)
    assert hm.differ(hm.tensors(built), hm.tensors(ours)) == []
    assert finite(hm.tensors(ours)) == []
    kept = meta_init(key, missing="keep")  # nothing is left to keep
    assert hm.differ(hm.tensors(kept), hm.tensors(ours)) == []


def test_what_each_construction_computed():
    torch.manual_seed(0)
    for key, names in CONSTRUCTED.items():
        ours, normal = hm.tensors(meta_init(key)), hm.tensors(build(key))
        for name in names:
            a, b = ours[name], normal[name]
            if name.endswith("original1"):  # a draw: torch's distribution, fastinit's values
                assert not torch.equal(a, b) and a.abs().max() <= b.abs().max() * 1.5
            elif name.endswith("original0"):  # weight_norm's g = |v| of the same draw
                v = ours[name.replace("original0", "original1")]
                assert torch.equal(a, torch.norm_except_dim(v, 2, 2)), name
            else:
                assert torch.equal(a, b), (key, name)
    assert torch.equal(ours["layer_weights"], torch.full((3,), 1 / 3))
    logit = hm.tensors(meta_init("clip"))["logit_scale"]
    assert torch.equal(logit, torch.tensor(MODELS["clip"][1](transformers).logit_scale_init_value))


@pytest.mark.parametrize("key", ["clip", "wav2vec2"])
def test_materialize_module_writes_what_construction_gave(key, tmp_path):
    materialize_module(build(key, "meta"), tmp_path, SEED, progress=False)
    files = {}
    for f in os.listdir(tmp_path):
        if f.endswith(".safetensors"):
            files.update(safetensors_torch.load_file(os.path.join(tmp_path, f)))
    want = meta_init(key).state_dict()
    assert set(files) <= set(want) and set(CONSTRUCTED[key]) <= set(files)
    assert [k for k in files if not torch.equal(files[k], want[k])] == []
