"""A model's own init code reaches fastinit however it writes: torch.nn.init functions,
``weight.data.normal_()``, tensor methods under ``no_grad``, ``copy_``, ``fill_``/``zero_``,
``uniform_`` and a timm-style truncated normal built from tensor methods. For every style
fast_init (the model built in the block), init_module_ (built on meta) and
materialize_module (recorded, or live where the init cannot be recorded) give the same
bits, and those are fastinit's draws from the stream of each tensor's name, not the
construction defaults."""

import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import fastinit.torch as ft  # noqa: E402
from fastinit.materialize import materialize_module  # noqa: E402
from fastinit.sharding import name_stream  # noqa: E402
from helpers import hf_models as hm  # noqa: E402
from transformers import PretrainedConfig, PreTrainedModel  # noqa: E402

nn = torch.nn
SEED = 21
STD = 0.02


def _trunc_normal(tensor, mean, std, a, b):
    """timm's trunc_normal_: an inverse-CDF transform of a uniform draw, in place."""
    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0
    low, up = cdf((a - mean) / std), cdf((b - mean) / std)
    tensor.uniform_(2 * low - 1, 2 * up - 1)
    tensor.erfinv_()
    tensor.mul_(std * math.sqrt(2.0))
    tensor.add_(mean)
    tensor.clamp_(min=a, max=b)
    return tensor


def _style_init(style, module):
    """One ``_init_weights`` per style (what trust_remote_code models write)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        w = module.weight
        if style == "nn_init":
            nn.init.normal_(w, std=STD)
        elif style == "data":
            w.data.normal_(mean=0.0, std=STD)
        elif style == "no_grad":
            with torch.no_grad():
                w.normal_(0.0, STD)
        elif style == "uniform":
            w.data.uniform_(-0.1, 0.1)
        elif style == "fill":
            w.data.fill_(0.5)
        elif style == "copy":
            with torch.no_grad():
                w.copy_(torch.full(tuple(w.shape), 0.25))
        elif style == "trunc":
            with torch.no_grad():
                _trunc_normal(w, 0.0, STD, -2 * STD, 2 * STD)
        elif style == "setitem":
            w.data.normal_(0.0, STD)
            w.data[2] = 0.5
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()


class StyledConfig(PretrainedConfig):
    model_type = "fastinit-styled"

    def __init__(self, style="nn_init", **kwargs):
        self.style = style
        super().__init__(**kwargs)


class Styled(PreTrainedModel):
    config_class = StyledConfig

    def __init__(self, config):
        super().__init__(config)
        self.emb = nn.Embedding(50, 8, padding_idx=1)
        self.lin = nn.Linear(8, 6)
        self.norm = nn.LayerNorm(6)
        self.post_init()

    def _init_weights(self, module):
        _style_init(self.config.style, module)


STYLES = ("nn_init", "data", "no_grad", "uniform", "fill", "copy", "trunc", "setitem")


def _expected(style, shape, name):
    """What a tensor of ``shape`` called ``name`` holds after ``style``'s init."""
    empty = torch.empty(shape)
    if style in ("nn_init", "data", "no_grad", "setitem"):
        out = ft.normal_(empty, std=STD, seed=SEED, stream=name_stream(name))
        if style == "setitem":
            out[2] = 0.5
        return out
    if style == "uniform":
        return ft.uniform_(empty, -0.1, 0.1, seed=SEED, stream=name_stream(name))
    if style == "fill":
        return torch.full(shape, 0.5)
    if style == "copy":
        return torch.full(shape, 0.25)
    low_up = [(1.0 + math.erf(x / math.sqrt(2.0))) / 2.0 for x in (-2.0, 2.0)]
    out = ft.uniform_(empty, 2 * low_up[0] - 1, 2 * low_up[1] - 1, seed=SEED,
                      stream=name_stream(name))
    return out.erfinv_().mul_(STD * math.sqrt(2.0)).add_(0.0).clamp_(min=-2 * STD,
                                                                     max=2 * STD)


def _meta_init(style):
    with torch.device("meta"):
        model = Styled(StyledConfig(style=style))
    model.to_empty(device="cpu")
    return ft.init_module_(model, SEED)


@pytest.mark.parametrize("style", STYLES)
def test_every_style_gives_fastinit_values_by_name_however_built(style, tmp_path):
    with ft.fast_init(SEED):
        built = Styled(StyledConfig(style=style))
    meta = _meta_init(style)
    assert hm.differ(hm.tensors(built), hm.tensors(meta)) == []
    for name in ("lin.weight", "emb.weight"):
        want = _expected(style, tuple(meta.get_parameter(name).shape), name)
        if name == "emb.weight":
            want[1] = 0  # the padding row, zeroed through .data[padding_idx]
        assert torch.equal(meta.get_parameter(name).detach(), want), name
    assert not meta.lin.bias.any() and torch.equal(meta.norm.weight.detach(), torch.ones(6))
    with torch.device("meta"):
        model = Styled(StyledConfig(style=style))
    materialize_module(model, tmp_path, SEED, progress=False, write_config=False)
    files = safetensors_torch.load_file(os.path.join(tmp_path, "model.safetensors"))
    assert all(torch.equal(files[k], v) for k, v in meta.state_dict().items())


def test_styles_that_draw_alike_give_the_same_bits():
    """``nn.init.normal_(w)``, ``w.data.normal_()`` and ``w.normal_()`` under no_grad are
    one draw: a model does not change by how its init code is spelled."""
    models = [_meta_init(style) for style in ("nn_init", "data", "no_grad")]
    assert hm.differ(hm.tensors(models[0]), hm.tensors(models[1])) == []
    assert hm.differ(hm.tensors(models[0]), hm.tensors(models[2])) == []


def test_recordable_styles_are_written_from_their_plan(tmp_path):
    """Written through ``.data`` on the meta device, the init is still recorded (plan mode),
    not initialised live; an in-place transform of a draw (timm's trunc_normal_) is not."""
    for style in ("data", "no_grad", "fill", "copy", "uniform", "setitem"):
        with torch.device("meta"):
            model = Styled(StyledConfig(style=style))
        materialize_module(model, tmp_path / style, SEED, mode="plan", progress=False,
                           write_config=False)
    with torch.device("meta"):
        model = Styled(StyledConfig(style="trunc"))
    with pytest.raises(ValueError, match=r"lin.weight \(written in place outside"):
        materialize_module(model, tmp_path / "trunc", SEED, mode="plan", progress=False)


class Scaled(nn.Module):
    """A plain module whose reset_parameters writes through ``.data`` and methods."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(5, 4))
        self.gain = nn.Parameter(torch.empty(5))
        self.reset_parameters()

    def reset_parameters(self):
        self.weight.data.normal_(0.0, STD)
        with torch.no_grad():
            self.gain.uniform_(0.5, 1.5)


def test_plain_module_reset_parameters_in_any_style():
    model = ft.init_module_(nn.Sequential(Scaled()), SEED)
    want = ft.normal_(torch.empty(5, 4), std=STD, seed=SEED, stream=name_stream("0.weight"))
    assert torch.equal(model[0].weight.detach(), want)
    want = ft.uniform_(torch.empty(5), 0.5, 1.5, seed=SEED, stream=name_stream("0.gain"))
    assert torch.equal(model[0].gain.detach(), want)
    other = nn.Sequential(Scaled())
    with ft.fast_init(SEED, module=other):
        other[0].reset_parameters()
    assert hm.differ(hm.tensors(other), hm.tensors(model)) == []
