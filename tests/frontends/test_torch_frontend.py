"""fastinit.torch: torch.nn.init's functions fill tensors in place, for every float dtype
and layout, with fastinit's values."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastinit.initializers as fi  # noqa: E402
import fastinit.random as fr  # noqa: E402
import fastinit.torch as ft  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
NP_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
            torch.float64: "float64"}


def _layouts(shape, dtype):
    """The same logical shape as a contiguous tensor, a transposed view and a strided slice."""
    yield "contiguous", torch.empty(shape, dtype=dtype)
    yield "transposed", torch.empty(tuple(reversed(shape)), dtype=dtype).permute(
        *reversed(range(len(shape))))
    wide = torch.empty(shape[:-1] + (2 * shape[-1],), dtype=dtype)
    yield "strided", wide[..., ::2]


def _as_np(t):
    if t.dtype == torch.bfloat16:
        return t.float().numpy()
    return t.numpy()


# Every random function with arguments: (name, kwargs, fastinit equivalent).
RANDOM = {
    "uniform_": ({"a": -0.5, "b": 0.25}, lambda s, dt, seed: fr.uniform(s, -0.5, 0.25, dtype=dt,
                                                                        seed=seed)),
    "normal_": ({"mean": 0.1, "std": 0.3}, lambda s, dt, seed: fr.normal(s, 0.1, 0.3, dtype=dt,
                                                                         seed=seed)),
    "trunc_normal_": ({"std": 0.02, "a": -0.04, "b": 0.04},
                      lambda s, dt, seed: fr.truncated_normal(s, 0.0, 0.02, -0.04, 0.04,
                                                              dtype=dt, seed=seed)),
    "xavier_uniform_": ({"gain": 1.5}, None),
    "xavier_normal_": ({}, None),
    "kaiming_uniform_": ({"a": math.sqrt(5)}, None),
    "kaiming_normal_": ({"mode": "fan_out", "nonlinearity": "relu"}, None),
    "orthogonal_": ({"gain": 2.0}, None),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: NP_NAMES[d])
@pytest.mark.parametrize("name", list(RANDOM))
def test_fills_in_place_every_dtype_and_layout(name, dtype):
    kwargs, reference = RANDOM[name]
    shape = (6, 4, 3)
    results = {}
    for layout, t in _layouts(shape, dtype):
        ptr, strides = t.data_ptr(), t.stride()
        out = getattr(ft, name)(t, **kwargs, seed=11)
        assert out is t
        assert t.data_ptr() == ptr and t.stride() == strides and t.dtype == dtype
        assert torch.isfinite(t.float()).all()
        results[layout] = _as_np(t).copy()
    # The values do not depend on the memory layout.
    np.testing.assert_array_equal(results["transposed"], results["contiguous"])
    np.testing.assert_array_equal(results["strided"], results["contiguous"])
    if reference is not None:
        expected = reference(shape, NP_NAMES[dtype], 11).astype(np.float32)
        np.testing.assert_array_equal(results["contiguous"].astype(np.float32), expected)


def test_same_seed_same_values_new_seed_new_values():
    a = ft.normal_(torch.empty(100), seed=1)
    assert torch.equal(ft.normal_(torch.empty(100), seed=1), a)
    assert not torch.equal(ft.normal_(torch.empty(100), seed=1, stream=1), a)
    assert not torch.equal(ft.normal_(torch.empty(100)), ft.normal_(torch.empty(100)))


def test_matches_the_keras_style_initializers():
    w = ft.kaiming_uniform_(torch.empty(32, 16, 3, 3), a=math.sqrt(5), seed=2)
    bound = ft.parameters("kaiming_uniform_", (32, 16, 3, 3), a=math.sqrt(5))["bound"]
    np.testing.assert_array_equal(w.numpy(),
                                  fi.RandomUniform(-bound, bound, seed=2)((32, 16, 3, 3)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: NP_NAMES[d])
def test_deterministic_fills(dtype):
    for layout, t in _layouts((4, 6), dtype):
        ptr = t.data_ptr()
        ft.constant_(t, 0.5)
        assert (t == 0.5).all() and t.data_ptr() == ptr
        ft.ones_(t)
        assert (t == 1).all()
        ft.zeros_(t)
        assert (t == 0).all()
        ft.eye_(t)
        assert torch.equal(t.float(), torch.eye(4, 6))
    d = torch.empty(6, 4, 3, 3, dtype=dtype)
    ref = torch.empty(6, 4, 3, 3, dtype=dtype)
    torch.nn.init.dirac_(ref, groups=2)
    assert torch.equal(ft.dirac_(d, groups=2), ref)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3), (6, 2, 2, 2)])
def test_orthogonal_semantics(shape):
    w = ft.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=1.5, seed=0)
    m = w.reshape(shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    assert torch.allclose(gram, 2.25 * torch.eye(min(rows, cols), dtype=torch.float64))


def test_sparse():
    w = ft.sparse_(torch.empty(20, 7), sparsity=0.25, std=0.5, seed=0)
    assert ((w == 0).sum(dim=0) == math.ceil(0.25 * 20)).all()
    nonzero = w[w != 0]
    assert 0.3 < float(nonzero.std()) < 0.7
    assert torch.equal(ft.sparse_(torch.empty(20, 7), sparsity=0.25, std=0.5, seed=0), w)


def test_without_a_seed_calls_follow_torchs_generators():
    """As torch.nn.init's functions: torch.manual_seed (or generator=) makes a call
    without seed= reproducible; the seed is one draw, so the generator advances."""
    torch.manual_seed(4)
    a = [ft.normal_(torch.empty(6)), ft.kaiming_uniform_(torch.empty(3, 4))]
    torch.manual_seed(4)
    b = [ft.normal_(torch.empty(6)), ft.kaiming_uniform_(torch.empty(3, 4))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], ft.normal_(torch.empty(6)))
    from fastinit.torch._streams import seed_from
    g = torch.Generator().manual_seed(9)
    c = ft.trunc_normal_(torch.empty(5), generator=g)
    assert torch.equal(c, ft.trunc_normal_(torch.empty(5),
                                           seed=seed_from(torch.Generator().manual_seed(9))))
    assert not torch.equal(c, ft.trunc_normal_(torch.empty(5), generator=g))  # advanced


def test_errors():
    with pytest.raises(TypeError, match="not both. Received: seed=1"):
        ft.normal_(torch.empty(3), seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="Received: generator=3"):
        ft.normal_(torch.empty(3), generator=3)
    with pytest.raises(TypeError, match="Received: tensor with dtype torch.int32"):
        ft.normal_(torch.empty(3, dtype=torch.int32))
    with pytest.raises(ValueError, match="Received: shape="):
        ft.xavier_uniform_(torch.empty(3))
    with pytest.raises(ValueError, match="Received: mode="):
        ft.kaiming_normal_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="Received: nonlinearity="):
        ft.calculate_gain("gelu")
    with pytest.raises(ValueError, match="Received: tensor with shape"):
        ft.eye_(torch.empty(2, 2, 2))


def test_other_devices_are_filled_through_a_copy(monkeypatch):
    """A tensor on another device (MPS, XLA...) gets the CPU's values by Tensor.copy_."""
    expected = ft.normal_(torch.empty(2, 3), seed=0)
    t = torch.empty(2, 3)
    copies = []
    original = torch.Tensor.copy_
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("xla:0")))
    monkeypatch.setattr(torch.Tensor, "copy_",
                        lambda self, src, *a, **k: copies.append(1) or original(self, src, *a, **k))
    ft.normal_(t, seed=0)
    monkeypatch.undo()
    assert copies and torch.equal(t, expected)


def test_cuda_tensor_without_a_gpu_is_a_clear_error(monkeypatch):
    import fastinit.gpu
    if fastinit.gpu.is_available():
        pytest.skip("a GPU is available: tests/test_gpu.py fills CUDA tensors")
    from fastinit.backends.cuda import GpuUnavailableError
    t = torch.empty(2, 2)
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda:0")))
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    for fill in (lambda: ft.normal_(t, seed=0), lambda: ft.eye_(t),
                 lambda: ft.orthogonal_(t, seed=0), lambda: ft.fill_(t, "glorot_uniform")):
        # Without CuPy, or with CuPy but no driver (CI installs CuPy for its API checks).
        with pytest.raises(GpuUnavailableError, match="needs CuPy|needs an NVIDIA GPU"):
            fill()


def test_meta_and_empty_tensors_are_no_ops():
    m = torch.empty(3, 3, device="meta")
    assert ft.normal_(m, seed=0) is m
    e = torch.empty(0, 3)
    for kaiming in (ft.kaiming_uniform_, ft.kaiming_normal_):
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op") \
                as caught:
            assert kaiming(e, seed=0) is e  # torch's warning, at the caller's line
        assert caught[0].filename == __file__
    assert ft.uniform_(e, seed=0) is e


def test_requires_grad_parameters():
    p = torch.nn.Parameter(torch.empty(4, 4))
    ft.xavier_uniform_(p, seed=0)
    assert p.requires_grad and p.grad is None
    (p.sum()).backward()
    assert p.grad is not None


def test_fill_with_any_initializer_in_keras_layout():
    conv = torch.nn.Conv2d(3, 8, (5, 4))
    ptr = conv.weight.data_ptr()
    ft.fill_(conv.weight, fi.HeNormal(seed=4))
    assert conv.weight.data_ptr() == ptr
    keras_kernel = fi.HeNormal(seed=4)((5, 4, 3, 8))
    np.testing.assert_array_equal(conv.weight.detach().permute(2, 3, 1, 0).numpy(),
                                  keras_kernel)
    ft.fill_(conv.bias, "zeros")
    assert (conv.bias == 0).all()
    ft.fill_(conv.bias, lambda shape, dtype=None: np.full(shape, 2.0), layout="torch")
    assert (conv.bias == 2).all()


def test_fills_bump_the_autograd_version_counter():
    # As torch's in-place fills do: autograd then sees the modification.
    for fill in (lambda t: ft.normal_(t, seed=0), lambda t: ft.zeros_(t),
                 lambda t: ft.orthogonal_(t, seed=0), lambda t: ft.fill_(t, "he_normal")):
        t = torch.empty(4, 3)
        before = t._version
        fill(t)
        assert t._version > before
    w = torch.nn.Parameter(torch.ones(3))
    y = (w * w).sum()            # saves w for backward
    with torch.no_grad():
        ft.uniform_(w, seed=0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
