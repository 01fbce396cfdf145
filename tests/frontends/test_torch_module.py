"""Whole-model init for PyTorch: fastinit.torch.init_module_."""

import datetime
import math
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

import fastinit.initializers as fi  # noqa: E402
import fastinit.torch as ft  # noqa: E402
from fastinit.sharding import ShardSpec, name_stream  # noqa: E402

from helpers import exit_distributed_worker, spawn_and_join  # noqa: E402

nn = torch.nn


def ks_same(a, b, alpha=1e-3):
    a = a.detach().double().reshape(-1).numpy()
    b = b.detach().double().reshape(-1).numpy()
    return stats.ks_2samp(a, b).pvalue > alpha


MODULES = [
    ("linear", lambda: nn.Linear(400, 300)),
    ("conv2d", lambda: nn.Conv2d(32, 64, 3)),
    ("conv_transpose1d", lambda: nn.ConvTranspose1d(48, 40, 5, groups=2)),
    ("lstm", lambda: nn.LSTM(40, 50)),
    ("bilinear", lambda: nn.Bilinear(30, 20, 40)),
]


@pytest.mark.parametrize("name, make", MODULES, ids=[m[0] for m in MODULES])
def test_default_rules_match_pytorch_statistics(name, make):
    torch.manual_seed(0)
    ref = make()
    ours = ft.init_module_(make(), seed=1)
    for (n, p), (n2, q) in zip(ref.named_parameters(), ours.named_parameters()):
        assert n == n2 and p.shape == q.shape
        assert ks_same(p, q), n
        assert float(q.detach().abs().max()) <= float(p.detach().abs().max()) * 1.05 + 1e-3


def test_embedding_norms_batchnorm_mha():
    torch.manual_seed(0)
    ref = nn.ModuleDict({"emb": nn.Embedding(500, 64, padding_idx=3),
                         "ln": nn.LayerNorm(64), "rms": nn.RMSNorm(64), "gn": nn.GroupNorm(4, 64),
                         "bn": nn.BatchNorm1d(64),
                         "mha": nn.MultiheadAttention(64, 4, add_bias_kv=True),
                         "mha2": nn.MultiheadAttention(64, 4, kdim=32, vdim=16),
                         "prelu": nn.PReLU(8)})
    torch.manual_seed(1)
    fresh = nn.ModuleDict({"emb": nn.Embedding(500, 64, padding_idx=3),
                           "ln": nn.LayerNorm(64), "rms": nn.RMSNorm(64),
                           "gn": nn.GroupNorm(4, 64), "bn": nn.BatchNorm1d(64),
                           "mha": nn.MultiheadAttention(64, 4, add_bias_kv=True),
                           "mha2": nn.MultiheadAttention(64, 4, kdim=32, vdim=16),
                           "prelu": nn.PReLU(8)})
    with torch.no_grad():
        for p in list(fresh.parameters()) + list(fresh.buffers()):
            p.fill_(7)
    ours = ft.init_module_(fresh, seed=0)
    ref_state, our_state = ref.state_dict(), ours.state_dict()
    assert set(ref_state) == set(our_state)
    for key in ref_state:
        a, b = ref_state[key], our_state[key]
        if key.startswith(("ln.", "rms.", "gn.", "bn.", "prelu.")) or key.endswith(
                ("in_proj_bias", "out_proj.bias")):
            assert torch.equal(a, b), key
        else:
            assert ks_same(a, b), key
    assert torch.equal(ours["emb"].weight[3], torch.zeros(64))
    bound = math.sqrt(6 / (64 + 192))
    assert float(ours["mha"].in_proj_weight.detach().abs().max()) <= bound
    w = ft.xavier_uniform_(torch.empty(192, 64), seed=0, stream=name_stream("mha.in_proj_weight"))
    assert torch.equal(ours["mha"].in_proj_weight.detach(), w)


def test_values_follow_the_name_streams():
    model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3))
    ft.init_module_(model, seed=5)
    w = ft.kaiming_uniform_(torch.empty(10, 20), a=math.sqrt(5), seed=5,
                            stream=name_stream("0.weight"))
    b = ft.uniform_(torch.empty(3), -1 / math.sqrt(10), 1 / math.sqrt(10), seed=5,
                    stream=name_stream("2.bias"))
    assert torch.equal(model[0].weight.detach(), w)
    assert torch.equal(model[2].bias.detach(), b)
    # a bigger model with the same names gives the same values for them
    other = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3), nn.Linear(3, 3))
    ft.init_module_(other, seed=5)
    assert torch.equal(other[0].weight, model[0].weight)
    assert torch.equal(other[2].bias, model[2].bias)
    ft.init_module_(other, seed=5, prefix="model.")
    assert not torch.equal(other[0].weight, model[0].weight)


def test_meta_device_then_to_empty():
    with torch.device("meta"):
        meta = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64)
    with pytest.raises(ValueError, match="meta"):
        ft.init_module_(meta, seed=0)
    meta.to_empty(device="cpu")
    ft.init_module_(meta, seed=0)
    eager = ft.init_module_(nn.TransformerEncoderLayer(32, 4, dim_feedforward=64), seed=0)
    for (n, p), (_, q) in zip(meta.named_parameters(), eager.named_parameters()):
        assert torch.equal(p, q), n
    assert torch.equal(meta.norm1.weight, torch.ones(32))


def test_rules_patterns_types_layouts():
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2, bias=False), nn.LayerNorm(2))
    rules = {"0.bias": "ones_",
             "1.weight": ("normal_", {"std": 0.5}),
             nn.LayerNorm: {"weight": ("constant_", {"val": 2.0})},
             "0.weight": fi.HeNormal()}
    ft.init_module_(model, seed=9, rules=rules)
    assert torch.equal(model[0].bias, torch.ones(4))
    assert torch.equal(model[1].weight.detach(),
                       ft.normal_(torch.empty(2, 4), std=0.5, seed=9, stream=name_stream("1.weight")))
    assert torch.equal(model[2].weight, torch.full((2,), 2.0))
    assert torch.equal(model[2].bias, torch.zeros(2))  # default for the rest
    # a Keras-style initializer sees the transposed (in, out) kernel, like fill_
    he = fi.HeNormal(seed=9)
    want = he((6, 4), stream=name_stream("0.weight")).T
    model2 = nn.Sequential(nn.Linear(6, 4))
    ft.init_module_(model2, seed=9, rules={"*.weight": "he_normal"})
    assert np.array_equal(model2[0].weight.detach().numpy(), want)
    import re
    ft.init_module_(model2, seed=9, rules=[(re.compile(r"bias$"), "zeros")])
    assert torch.equal(model2[0].bias, torch.zeros(4))


def test_missing_rules_and_bad_input():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((3,), 5.0))
            self.lin = nn.Linear(2, 2)
    m = Custom()
    with pytest.raises(ValueError, match=r"scale \(Custom\)"):
        ft.init_module_(m, seed=0)
    assert torch.equal(m.scale, torch.full((3,), 5.0))  # nothing filled
    ft.init_module_(m, seed=0, missing="keep")
    assert torch.equal(m.scale, torch.full((3,), 5.0))
    with pytest.raises(ValueError, match="bad rule"):
        ft.init_module_(m, seed=0, rules={"scale": ("kaiming_weird_", {})})
    with pytest.raises(TypeError):
        ft.init_module_(m, seed=0, rules={3: "zeros"})
    with pytest.raises(TypeError):
        ft.init_module_(torch.empty(3), seed=0)


@pytest.mark.parametrize("rule, bad", [
    (("normal_", {"stdd": 0.02}), "'stdd'"),          # misspelled: not std=1.0 silently
    (("kaiming_uniform_", {"mode": "fan_in", "slope": 0.1}), "'slope'"),
    ("constant_", "'val'"),                            # required argument left out
    (("sparse_", {}), "'sparsity'"),
    (("constant_", {"value": 1.0}), "'value'"),
    (("normal_", {"std": "0.02"}), "std"),             # a bad value, found before writing
])
def test_rule_arguments_are_checked_before_anything_is_written(rule, bad, tmp_path):
    from fastinit.materialize import materialize_module
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    before = [t.detach().clone() for t in model.state_dict().values()]
    for call in (lambda: ft.init_module_(model, seed=0, rules={"0.weight": rule}),
                 lambda: ft.init_module_(model, seed=0, rules={nn.Linear: {"weight": rule}}),
                 lambda: materialize_module(model, tmp_path / "out", seed=0,
                                            rules={"0.weight": rule})):
        with pytest.raises((TypeError, ValueError), match=f"{bad}.*Received"):
            call()
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values()))
    assert not (tmp_path / "out").exists()


def test_rebuild_replaces_nothing_for_other_threads():
    """The construction replayed for init_module_'s rebuild= is seen in its own thread
    only: a module another thread builds meanwhile gets real parameters, and
    nn.Module.register_parameter is torch's before, during and after."""
    import threading
    register = nn.Module.register_parameter
    inside, built, seen = threading.Event(), threading.Event(), {}

    class Positions(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.register_buffer("pos", torch.arange(6.0), persistent=False)

    def rebuild():
        model = Positions()
        inside.set()
        assert built.wait(60)
        return model

    def other():
        assert inside.wait(60)
        seen["register"] = nn.Module.register_parameter
        seen["weight"] = nn.Linear(5, 5).weight
        built.set()

    thread = threading.Thread(target=other)
    thread.start()
    with torch.device("meta"):
        model = Positions()
    model.to_empty(device="cpu")
    ft.init_module_(model, seed=0, rebuild=rebuild)
    thread.join()
    assert not seen["weight"].is_meta and seen["register"] is register
    assert nn.Module.register_parameter is register
    assert torch.equal(model.pos, torch.arange(6.0))


def test_tied_weights_filled_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    ft.init_module_(model, seed=0)
    want = ft.normal_(torch.empty(10, 4), seed=0, stream=name_stream("emb.weight"))
    assert torch.equal(model["emb"].weight.detach(), want)


def test_regions_of_plain_tensors():
    full = nn.Linear(7, 9)
    ft.init_module_(full, seed=3)
    for k in range(3):
        spec = ShardSpec(axis=0, num_shards=3, index=k)
        part = nn.Linear(7, 3, bias=False)
        ft.init_module_(part, seed=3, regions={"weight": ((9, 7), spec)})
        assert torch.equal(part.weight, full.weight[3 * k:3 * k + 3])


def test_a_region_of_none_is_the_whole_tensor():
    whole, given = nn.Linear(7, 9), nn.Linear(7, 9)
    ft.init_module_(whole, seed=3)
    ft.init_module_(given, seed=3, regions={"weight": ((9, 7), None)})
    assert torch.equal(given.weight, whole.weight) and torch.equal(given.bias, whole.bias)


@pytest.mark.parametrize("regions, error, match", [
    ({"weight": 5}, ValueError, r"weight: a region of a module tensor is \(global_shape, "
                                r"region\)\. Received: 5"),
    ({"weight": ((9, 7), None, 1)}, ValueError, r"weight: .*Received: \(\(9, 7\), None, 1\)"),
    ({"weight": ("ab", None)}, TypeError, r"weight: global_shape must be a tuple of integers"),
    ({"weight": ((9, -7), None)}, ValueError, r"weight: global_shape must not contain negative"),
    ({"weight": ((9, 7), "rows")}, TypeError, r"weight: A region is a tuple of slices"),
    ({"weight": ((9, 7), (slice(0, 3), slice(None), slice(None)))}, ValueError,
     r"weight: the region has 3 items for a global shape of 2 dimensions"),
    ([("weight", ((9, 7), None))], TypeError, r"regions is a mapping.*Received: regions=\["),
    # a misspelt name would fill the tensor whole, as if it were not sharded
    ({"weigth": ((9, 7), None)}, ValueError, r"name no parameter or buffer.*\['weigth'\]"),
])
def test_bad_regions_are_refused_before_anything_is_written(regions, error, match):
    part = nn.Linear(7, 3, bias=False)
    before = part.weight.detach().clone()
    with pytest.raises(error, match=match):
        ft.init_module_(part, seed=3, regions=regions)
    assert torch.equal(part.weight, before)


def test_dtypes_and_integer_buffers():
    model = nn.Sequential(nn.Linear(5, 5), nn.BatchNorm1d(5)).to(torch.bfloat16)
    ft.init_module_(model, seed=0)
    assert model[1].num_batches_tracked.item() == 0
    w = ft.kaiming_uniform_(torch.empty(5, 5, dtype=torch.bfloat16), a=math.sqrt(5), seed=0,
                            stream=name_stream("0.weight"))
    assert torch.equal(model[0].weight.detach(), w)


# -- torch.distributed with gloo: DTensor Shard(0) / Shard(1) --------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build():
    return nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 5), nn.Embedding(9, 6),
                         nn.LayerNorm(6))


def _dist_worker(rank, world, port, result_dir):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        mesh = init_device_mesh("cpu", (world,))
        reference = ft.init_module_(_build(), seed=42)
        for dim in (0, 1):
            model = _build()
            for mod in model.modules():
                for pname, p in list(mod._parameters.items()):
                    d = dim if p.ndim > dim else None
                    placement = [Shard(d)] if d is not None else [Replicate()]
                    mod._parameters[pname] = nn.Parameter(
                        distribute_tensor(torch.full(p.shape, float("nan")), mesh, placement))
            ft.init_module_(model, seed=42)
            for (n, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
                assert isinstance(p, DTensor)
                assert torch.equal(p.full_tensor(), q.detach()), (dim, n)
        with open(os.path.join(result_dir, f"ok{rank}"), "w") as f:
            f.write("ok")
        # Neither rank tears gloo down while the other still has collectives in
        # flight (that aborts the process: "terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
    exit_distributed_worker()


def test_dtensor_shards_gloo(tmp_path):
    spawn_and_join(_dist_worker, (2, _free_port(), str(tmp_path)), timeout=120)
    assert sorted(os.listdir(tmp_path)) == ["ok0", "ok1"]
