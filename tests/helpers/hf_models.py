"""Tiny transformers models for the real-model tests (no downloads), with
``initializer_range`` 0.05 (not transformers' default 0.02), and the helpers that compare
them. Import only after ``pytest.importorskip("transformers")``."""

import hashlib
import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
)

RANGE = 0.05


def llama_config(**kw):
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, vocab_size=1001,
                initializer_range=RANGE)
    return LlamaConfig(**{**base, **kw})


def gpt2_config(**kw):
    base = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=1001, n_positions=128,
                initializer_range=RANGE)
    return GPT2Config(**{**base, **kw})


def bert_config(**kw):
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, vocab_size=1001, max_position_embeddings=128,
                initializer_range=RANGE, pad_token_id=3)
    return BertConfig(**{**base, **kw})


#: name -> (model class, config factory); the embedding's name.
MODELS = {
    "llama": (LlamaForCausalLM, llama_config),
    "llama_tied": (LlamaForCausalLM, lambda: llama_config(tie_word_embeddings=True)),
    "gpt2": (GPT2LMHeadModel, gpt2_config),
    "bert": (BertForMaskedLM, bert_config),
}
EMBEDDING = {"llama": "model.embed_tokens.weight", "llama_tied": "model.embed_tokens.weight",
             "gpt2": "transformer.wte.weight", "bert": "bert.embeddings.word_embeddings.weight"}


def build(key, device=None):
    cls, config = MODELS[key]
    if device is None:
        return cls(config())
    with torch.device(device):
        return cls(config())


def meta_init(key, seed, **kw):
    """Built on the meta device, ``to_empty`` on the CPU, ``init_module_``."""
    import fastinit.torch as ft
    model = build(key, "meta")
    model.to_empty(device="cpu")
    return ft.init_module_(model, seed, **kw)


def tensors(model):
    """Every parameter and buffer (non-persistent ones too) by name, detached copies."""
    out = {k: v.detach().clone() for k, v in model.named_parameters(remove_duplicate=False)}
    out.update({k: v.clone() for k, v in model.named_buffers(remove_duplicate=False)})
    return out


def differ(a, b):
    """Names whose tensors are not bit-identical (or missing on one side)."""
    return sorted(set(a) ^ set(b)) + [k for k in a if k in b and not torch.equal(a[k], b[k])]


def digest(model):
    """sha256 over every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, value in sorted(tensors(model).items()):
        h.update(f"{name}{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tied(model):
    return all(model.get_parameter(k) is model.get_parameter(v)
               for k, v in model.all_tied_weights_keys.items())
