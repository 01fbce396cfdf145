"""fastinit.torch.fast_init on plain PyTorch: names, the anonymous rule, seeds from torch's
generator, torch's warnings, nothing replaced for other threads (a transformers model built
in another thread included), and init_module_ running a custom module's own
reset_parameters."""

import json
import math
import os
import subprocess
import sys
import threading

import pytest

torch = pytest.importorskip("torch")

import fastinit.torch as ft  # noqa: E402
from fastinit.sharding import name_stream  # noqa: E402
from fastinit.torch import _intercept  # noqa: E402
from fastinit.torch._streams import seed_from  # noqa: E402
from helpers import run_in_threads, run_python  # noqa: E402

nn = torch.nn
INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
              "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
              "kaiming_normal_", "orthogonal_", "sparse_")


def _torch_functions():
    return {n: getattr(nn.init, n) for n in INIT_NAMES}


def test_named_fills_follow_the_name_streams():
    model = nn.Sequential(nn.Linear(6, 5), nn.Conv1d(2, 3, 3))
    with ft.fast_init(seed=4, module=model, prefix="net."):
        nn.init.xavier_uniform_(model[0].weight, gain=2.0)
        nn.init.kaiming_normal_(model[1].weight, 0, "fan_out", "relu")  # positional form
        nn.init.trunc_normal_(model[0].bias, std=0.5, a=-0.3, b=0.3)
        nn.init.constant_(model[1].bias, 0.25)
    want = ft.xavier_uniform_(torch.empty(5, 6), gain=2.0, seed=4,
                              stream=name_stream("net.0.weight"))
    assert torch.equal(model[0].weight.detach(), want)
    want = ft.kaiming_normal_(torch.empty(3, 2, 3), mode="fan_out", nonlinearity="relu",
                              seed=4, stream=name_stream("net.1.weight"))
    assert torch.equal(model[1].weight.detach(), want)
    want = ft.trunc_normal_(torch.empty(5), std=0.5, a=-0.3, b=0.3, seed=4,
                            stream=name_stream("net.0.bias"))
    assert torch.equal(model[0].bias.detach(), want)
    assert torch.equal(model[1].bias.detach(), torch.full((3,), 0.25))


def test_values_do_not_depend_on_order_or_torch_seed():
    def run(order, torch_seed):
        torch.manual_seed(torch_seed)
        model = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)})
        with ft.fast_init(seed=1, module=model):
            for key in order:
                nn.init.normal_(model[key].weight, std=0.1)
        return {k: v.clone() for k, v in model.state_dict().items() if k.endswith("weight")}

    one, two = run("ab", 0), run("ba", 1)
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_anonymous_rule_is_program_order():
    def run():
        with ft.fast_init(seed=2):
            x = nn.init.normal_(torch.empty(3, 4))
            y = nn.init.uniform_(torch.empty(5), -1, 1)
        return x, y

    x, y = run()
    x2, y2 = run()
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert torch.equal(x, ft.normal_(torch.empty(3, 4), seed=2,
                                     stream=name_stream("<fastinit.anonymous>/0")))
    assert torch.equal(y, ft.uniform_(torch.empty(5), -1, 1, seed=2,
                                      stream=name_stream("<fastinit.anonymous>/1")))


def test_every_random_init_function_draws_with_fastinit_in_the_block():
    """Whether torch hands the call to the mode (uniform_, normal_, kaiming_uniform_) or
    fastinit's trampoline takes it (the others), each draws fastinit's values."""
    cases = {"uniform_": {"a": -2.0}, "normal_": {"std": 3.0}, "trunc_normal_": {"b": 1.0},
             "xavier_uniform_": {"gain": 2.0}, "xavier_normal_": {},
             "kaiming_uniform_": {"a": 0.5}, "kaiming_normal_": {"mode": "fan_out"},
             "orthogonal_": {"gain": 0.5}, "sparse_": {"sparsity": 0.5}}
    with ft.fast_init(seed=3):
        got = {n: getattr(nn.init, n)(torch.empty(6, 4), **kw) for n, kw in cases.items()}
    for k, (name, kw) in enumerate(cases.items()):
        want = getattr(ft, name)(torch.empty(6, 4), **kw, seed=3,
                                 stream=name_stream(f"<fastinit.anonymous>/{k}"))
        assert torch.equal(got[name], want), name


def test_generator_seeds_the_draw_and_meta_and_integer_buffers():
    gen = torch.Generator().manual_seed(3)
    with ft.fast_init(seed=0):
        a = nn.init.normal_(torch.empty(4), generator=gen)
        meta = nn.init.normal_(torch.empty(4, device="meta"))
        ints = nn.init.zeros_(torch.full((3,), 7, dtype=torch.int64))
        with pytest.raises(ValueError, match="2 or more dimensions"):
            nn.init.orthogonal_(torch.empty(3))
        with pytest.raises(TypeError):
            nn.init.normal_(torch.empty(2), 0.0, 1.0, None, "extra")
    # generator= gives the seed (one draw of it), as it decides torch's values
    seed = seed_from(torch.Generator().manual_seed(3))
    assert torch.equal(a, ft.normal_(torch.empty(4), seed=seed, stream=0))
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(3).get_state()) is False
    assert meta.is_meta and torch.equal(ints, torch.zeros(3, dtype=torch.int64))


def test_nothing_replaced_and_torch_code_back_on_exit_and_on_error():
    before = _torch_functions()
    codes = {n: f.__code__ for n, f in before.items()}
    with pytest.raises(RuntimeError, match="boom"):
        with ft.fast_init(seed=0):
            assert _torch_functions() == before  # no module attribute is replaced
            assert nn.init.trunc_normal_.__code__ is not codes["trunc_normal_"]
            raise RuntimeError("boom")
    assert _torch_functions() == before
    assert {n: f.__code__ for n, f in before.items()} == codes and _intercept.patched() == []
    with ft.fast_init(seed=0):
        with pytest.raises(RuntimeError, match="do not nest"):
            with ft.fast_init(seed=1):
                pass
    assert _torch_functions() == before and _intercept.patched() == []
    from torch.nn.modules import activation
    assert activation.xavier_uniform_ is before["xavier_uniform_"]
    with pytest.raises(ValueError, match="seed"):
        with ft.fast_init(seed=-1):
            pass
    with pytest.raises(TypeError):
        with ft.fast_init(seed=1.5):
            pass


def test_a_session_whose_close_fails_still_leaves_torchs_mode_stack(monkeypatch):
    """Closing the session raises: the error comes out, and fastinit's mode is off the
    thread's stack and torch's code back. Before, the mode stayed on the stack."""
    from fastinit.torch import _session

    def close(self):
        raise RuntimeError("close failed")

    monkeypatch.setattr(_session.Session, "close", close)
    before = _torch_functions()
    codes = {n: f.__code__ for n, f in before.items()}
    assert torch._C._len_torch_function_stack() == 0
    with pytest.raises(RuntimeError, match="close failed"):
        with ft.fast_init(seed=0):
            pass
    assert torch._C._len_torch_function_stack() == 0
    assert {n: f.__code__ for n, f in before.items()} == codes and _intercept.patched() == []
    monkeypatch.undo()
    with ft.fast_init(seed=0):  # a block opens and closes as usual afterwards
        w = nn.init.normal_(torch.empty(3, 4), std=0.02)
    assert torch._C._len_torch_function_stack() == 0 and w.std() > 0


def test_other_threads_keep_torch():
    started, release, out = threading.Event(), threading.Event(), {}

    def other():
        started.wait()
        torch.manual_seed(5)
        out["other"] = nn.init.normal_(torch.empty(100))
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with ft.fast_init(seed=0):
        started.set()
        release.wait(30)
        mine = nn.init.normal_(torch.empty(100))
    thread.join()
    torch.manual_seed(5)
    assert torch.equal(out["other"], torch.empty(100).normal_())
    assert torch.equal(mine, ft.normal_(torch.empty(100), seed=0,
                                        stream=name_stream("<fastinit.anonymous>/0")))


def test_bad_arguments_are_refused_before_the_block_opens():
    for kwargs, error in (({"seed": -1}, ValueError), ({"seed": 2 ** 64}, ValueError),
                          ({"seed": True}, TypeError), ({"seed": 1.5}, TypeError),
                          ({"module": torch.empty(3)}, TypeError), ({"prefix": 3}, TypeError),
                          ({"backend": "cuda"}, ValueError)):
        with pytest.raises(error, match="Received"):
            with ft.fast_init(**kwargs):
                pass
        assert _intercept.current() is None and _intercept.patched() == []
    model = nn.ParameterDict({"extra": nn.Parameter(torch.full((3,), 7.0))})
    for rebuild in (3, lambda: 3):
        with pytest.raises(TypeError, match="rebuild"):
            ft.init_module_(model, 0, rebuild=rebuild)
    assert torch.equal(model["extra"].detach(), torch.full((3,), 7.0))


def test_unseeded_block_follows_torch_manual_seed():
    """``fast_init()`` takes its seed from torch's generator when it opens, and an unnamed
    draw takes one at its call: ``torch.manual_seed`` makes a block reproducible."""
    def run(torch_seed):
        torch.manual_seed(torch_seed)
        model = nn.Linear(6, 5)
        with ft.fast_init(module=model):
            nn.init.normal_(model.weight)
            torch.manual_seed(torch_seed + 10)  # decides the next unnamed draw, as for torch
            x = nn.init.uniform_(torch.empty(4))
        return model.weight.detach().clone(), x

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not any(torch.equal(p, q) for p, q in zip(a, c))
    torch.manual_seed(0)
    nn.Linear(6, 5)
    want = ft.normal_(torch.empty(5, 6), seed=seed_from(), stream=name_stream("weight"))
    assert torch.equal(a[0], want)
    torch.manual_seed(10)
    assert torch.equal(a[1], ft.uniform_(torch.empty(4), seed=seed_from(), stream=0))


def test_zero_element_kaiming_warns_as_torch_does():
    with ft.fast_init(seed=0):
        for fn in (nn.init.kaiming_uniform_, nn.init.kaiming_normal_):
            with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op") \
                    as caught:
                empty = torch.empty(0, 3)
                assert fn(empty) is empty
            assert caught[0].filename == __file__  # at the caller's line, as torch's


def test_torch_functions_stay_torch_in_other_threads_while_a_block_is_open():
    names = ("trunc_normal_", "xavier_uniform_", "kaiming_normal_", "orthogonal_",
             "sparse_", "normal_", "kaiming_uniform_")

    def torch_draws():
        torch.manual_seed(5)
        return [getattr(nn.init, n)(torch.empty(6, 4), *([0.5] if n == "sparse_" else []))
                for n in names]

    want = torch_draws()
    started, release, out = threading.Event(), threading.Event(), {}

    def other():
        started.wait()
        out["got"] = torch_draws()
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with ft.fast_init(seed=0):
        started.set()
        assert release.wait(60)
        mine = nn.init.trunc_normal_(torch.empty(6, 4))
    thread.join()
    assert all(torch.equal(a, b) for a, b in zip(out["got"], want))
    assert torch.equal(mine, ft.trunc_normal_(torch.empty(6, 4), seed=0,
                                              stream=name_stream("<fastinit.anonymous>/0")))


def test_blocks_in_many_threads_leave_torch_as_it_was():
    before = _torch_functions()
    codes = {n: f.__code__ for n, f in before.items()}

    def body(t):
        for k in range(20):
            model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
            with ft.fast_init(seed=t, module=model):
                nn.init.trunc_normal_(model[0].weight, std=0.02)
                with torch.no_grad():
                    model[0].bias.data.zero_()
            want = ft.trunc_normal_(torch.empty(8, 8), std=0.02, seed=t,
                                    stream=name_stream("0.weight"))
            assert torch.equal(model[0].weight.detach(), want)

    run_in_threads(8, body)
    assert _torch_functions() == before and _intercept.patched() == []
    assert {n: f.__code__ for n, f in before.items()} == codes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_another_thread_has_a_block_open():
    """The child has only the forking thread: no block of another thread counts there, so
    torch's code is back in the child, and its own blocks open and close normally."""
    out = run_python("""
        import os, threading, torch
        import fastinit.torch as ft
        from fastinit.torch import _intercept
        from fastinit.sharding import name_stream
        opened, release = threading.Event(), threading.Event()

        def holder():
            with ft.fast_init(0):
                opened.set()
                release.wait(60)

        thread = threading.Thread(target=holder)
        thread.start()
        opened.wait(60)
        parent = _intercept.patched() != []
        pid = os.fork()
        if pid == 0:
            ok = _intercept.patched() == []
            with ft.fast_init(1):
                ok = ok and _intercept.patched() != []
                x = torch.nn.init.trunc_normal_(torch.empty(5))
            want = ft.trunc_normal_(torch.empty(5), seed=1,
                                    stream=name_stream("<fastinit.anonymous>/0"))
            os._exit(0 if ok and _intercept.patched() == [] and torch.equal(x, want) else 3)
        _, status = os.waitpid(pid, 0)
        release.set()
        thread.join()
        print(parent, os.waitstatus_to_exitcode(status), _intercept.patched())
    """)
    assert out.split() == ["True", "0", "[]"]


def test_a_block_closing_while_another_thread_builds_a_transformers_model():
    """transformers swaps torch.nn.init's attributes while it initialises a model
    (``guard_torch_init_functions``); a fast_init block that opens and closes meanwhile in
    another thread must leave torch's functions in place, not transformers' guarded
    ones (with which a plain ``normal_`` skips flagged tensors)."""
    hf_init = pytest.importorskip("transformers.initialization")
    before = _torch_functions()
    entered, opened, left = threading.Event(), threading.Event(), threading.Event()

    def builder():
        with hf_init.guard_torch_init_functions():
            entered.set()
            opened.wait(60)
        left.set()

    thread = threading.Thread(target=builder)
    thread.start()
    assert entered.wait(60)
    with ft.fast_init(seed=0):
        opened.set()
        assert left.wait(60)
    thread.join()
    assert _torch_functions() == before
    flagged = torch.zeros(8)
    flagged._is_hf_initialized = True
    nn.init.normal_(flagged)
    assert flagged.any()


class Scaled(nn.Module):
    """A module with its own reset_parameters (a custom parameter and a child it re-inits)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.empty(4))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.uniform_(self.scale, 0.5, 1.5)
        nn.init.xavier_normal_(self.lin.weight)


def test_init_module_runs_custom_reset_parameters():
    model = nn.Sequential(Scaled(), nn.LayerNorm(4))
    ft.init_module_(model, seed=3)
    want = ft.uniform_(torch.empty(4), 0.5, 1.5, seed=3, stream=name_stream("0.scale"))
    assert torch.equal(model[0].scale.detach(), want)
    want = ft.xavier_normal_(torch.empty(4, 8), seed=3, stream=name_stream("0.lin.weight"))
    assert torch.equal(model[0].lin.weight.detach(), want)  # the module's own init wins
    bound = 1 / math.sqrt(8)
    want = ft.uniform_(torch.empty(4), -bound, bound, seed=3, stream=name_stream("0.lin.bias"))
    assert torch.equal(model[0].lin.bias.detach(), want)   # torch's rule for the rest
    # meta build + to_empty gives the same; so does fast_init around the construction
    with torch.device("meta"):
        meta = nn.Sequential(Scaled(), nn.LayerNorm(4))
    meta.to_empty(device="cpu")
    ft.init_module_(meta, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 meta.state_dict().values()))


def test_rebuild_restores_buffers():
    class Positions(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.register_buffer("pos", torch.arange(6.0), persistent=False)

    with torch.device("meta"):
        model = Positions()
    model.to_empty(device="cpu")
    with pytest.raises(ValueError, match=r"pos \(Positions\)"):
        ft.init_module_(model, seed=0)
    ft.init_module_(model, seed=0, rebuild=Positions)
    assert torch.equal(model.pos, torch.arange(6.0))


def test_import_fastinit_torch_does_not_import_transformers_or_keras():
    code = ("import sys, json, fastinit, fastinit.torch, fastinit.initializers, "
            "fastinit.materialize\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def _rng_model_class():
    """A transformers model whose ``_init_weights`` draws from torch's generator directly
    (as Mamba2's does), slowly: the draws of two threads would interleave."""
    import time

    transformers = pytest.importorskip("transformers")

    class RngConfig(transformers.PretrainedConfig):
        model_type = "fastinit-test-torch-rng"

    class RngModel(transformers.PreTrainedModel):
        config_class = RngConfig

        def __init__(self, config):
            super().__init__(config)
            self.inner = nn.Linear(4, 8)
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                parts = []
                for _ in range(4):
                    parts.append(torch.rand(2))
                    time.sleep(0.002)
                with torch.no_grad():
                    module.bias.copy_(torch.cat(parts))

    return RngConfig, RngModel


def test_torch_rng_blocks_in_two_threads_draw_what_they_draw_alone():
    """Two threads build, with torch_rng, models whose _init_weights calls torch.rand:
    each gets the values it gets alone, every time. Before, both seeded and restored
    torch's process-wide generator at the same time and drew from each other's state."""
    config_cls, model_cls = _rng_model_class()

    def build(seed):
        with ft.fast_init(seed=seed):
            model = model_cls(config_cls())
        return model.inner.bias.detach().clone(), model.inner.weight.detach().clone()

    alone = {seed: build(seed) for seed in (1, 2)}
    assert not torch.equal(alone[1][0], alone[2][0])
    results = {1: [], 2: []}
    run_in_threads(2, lambda t: results[t + 1].extend(build(t + 1) for _ in range(10)))
    for seed, got in results.items():
        assert len(got) == 10
        for bias, weight in got:
            assert torch.equal(bias, alone[seed][0]) and torch.equal(weight, alone[seed][1])
