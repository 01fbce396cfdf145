"""FSDP2 (fully_shard, gloo, 2 CPU processes) on transformers models: init_module_ on the
sharded model, gathered, equals the single-process init, tied weights stay tied.

Llama with an odd vocabulary (uneven shards), GPT-2 (its scaled c_proj is lost by HF's own
init under FSDP2: is_custom_code() is evaluated on the FSDP class) and BERT (its zero
padding row goes through a DTensor view, which is a copy)."""

import datetime
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("needs torch.distributed with gloo", allow_module_level=True)

from helpers import exit_distributed_worker, hf_models as hm, spawn_and_join  # noqa: E402

SEED = 11
KEYS = ("llama", "gpt2", "bert")
BLOCKS = ("LlamaDecoderLayer", "GPT2Block", "BertLayer")


def _worker(rank, world, init_file, ref_path, result_dir):
    import fastinit.torch as ft
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=120))
    try:
        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        reference = torch.load(ref_path)
        report = []
        for key in KEYS:
            model = hm.build(key, "meta")
            for module in model.modules():
                if type(module).__name__ in BLOCKS:
                    fully_shard(module, mesh=mesh)
            fully_shard(model, mesh=mesh)
            model.to_empty(device="cpu")
            ft.init_module_(model, SEED)
            sharded = [n for n, p in model.named_parameters() if isinstance(p, DTensor)]
            got = {n: (p.full_tensor() if isinstance(p, DTensor) else p.detach())
                   for n, p in model.named_parameters(remove_duplicate=False)}
            got.update(dict(model.named_buffers(remove_duplicate=False)))
            bad = hm.differ(got, reference[key])
            report.append(f"{key}: sharded={len(sharded)} differ={bad} tied={hm.tied(model)}")
        with open(os.path.join(result_dir, f"rank{rank}"), "w") as f:
            f.write("\n".join(report))
        dist.barrier()  # neither rank tears gloo down while the other still needs it
    finally:
        dist.destroy_process_group()
    exit_distributed_worker()


def test_fsdp2_sharded_init_equals_single_process(tmp_path):
    reference = {key: hm.tensors(hm.meta_init(key, SEED)) for key in KEYS}
    ref_path = tmp_path / "reference.pt"
    torch.save(reference, ref_path)
    spawn_and_join(_worker, (2, str(tmp_path / "init"), str(ref_path), str(tmp_path)),
                   timeout=300)
    for rank in range(2):
        lines = (tmp_path / f"rank{rank}").read_text().splitlines()
        assert len(lines) == len(KEYS)
        for line in lines:
            assert "differ=[]" in line and "tied=True" in line and "sharded=0" not in line, line
