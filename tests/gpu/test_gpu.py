"""The CUDA backend on a real GPU: what the contract suite does not cover.

``tests/backends/test_contract.py`` holds the CUDA kernels to the NumPy
backend (its ``cuda-gpu`` backend). Here: KAT and raw words, launch-geometry
invariance, unaligned outputs, statistics, bad input and out-of-memory, and
the GPU front door (``device=``, ``out=`` CuPy arrays and torch CUDA tensors,
zero-copy hand-off, initializers, orthogonal, ``fastinit.torch``).
Skipped cleanly without CuPy or a GPU.
"""

import inspect
import math

import numpy as np
import pytest

import fastinit.backends as backends
import fastinit.gpu
from fastinit import random as fr, stream

from helpers import DTYPES, KAT, assert_bits_equal, draw, exact_initializers, raw_words
from helpers.backends import GpuCopyBackend

cupy = pytest.importorskip("cupy")
try:
    N_GPUS = cupy.cuda.runtime.getDeviceCount()
except Exception:  # no driver or no device
    N_GPUS = 0
pytestmark = pytest.mark.skipif(N_GPUS == 0, reason="no CUDA GPU")

from fastinit.backends import cuda as cupy_backend  # noqa: E402  (after the skip)

HAS_DEVICE_API = "device" in inspect.signature(fr.normal).parameters


@pytest.fixture
def gpu():
    backend = GpuCopyBackend()
    backends.register("gpucopy", backend)
    yield backend
    backends.register("gpucopy", None)




# -- Philox --------------------------------------------------------------------------------


def test_kat():
    counters = np.array([c for c, _, _ in KAT], dtype=np.uint32)
    keys = np.array([k for _, k, _ in KAT], dtype=np.uint32)
    out = cupy.asnumpy(cupy_backend.philox4x32_10(counters, keys))
    assert [tuple(int(w) for w in row) for row in out] == [e for _, _, e in KAT]


def test_raw_words_match_philox():
    key = stream.derive_key(12345, 7)
    for start, n in [(0, 64), (3, 61), (2**34 - 6, 13), (2**62 - 9, 9), (1, 100_003)]:
        got = cupy_backend.raw_words(key, cupy.empty(n, dtype=cupy.uint32), start, 5)
        np.testing.assert_array_equal(cupy.asnumpy(got), raw_words(key, start, n, 5))


# -- invariance ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_launch_geometry_invariance(gpu, dtype):
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    geometries = [(None, None), (1, 32), (3, 64), (7, 96), (sms, 1024), (sms * 64, 128),
                  (100_000, 256)]
    for name, params in [("uniform", {}), ("normal", {}),
                         ("truncated_normal", dict(alpha=-1.0, beta=1.0)),
                         ("truncated_normal", dict(alpha=2.0, beta=3.0)),
                         ("truncated_normal", dict(alpha=0.25, beta=0.5))]:
        results = []
        for grid, block in geometries:
            gpu.grid, gpu.block = grid, block
            results.append(draw(name, (300_001,), seed=9, offset=3, dtype=dtype,
                                backend="gpucopy", **params))
            results.append(draw(name, (301, 999), seed=9, index=(slice(1, None, 3), slice(5, 990)),
                                dtype=dtype, backend="gpucopy", **params))
        for i in range(2, len(results)):  # flat and region results alternate
            assert_bits_equal(results[i], results[i % 2])
        assert_bits_equal(results[0], draw(name, (300_001,), seed=9, offset=3, dtype=dtype,
                                           backend="numpy", **params))


def test_unaligned_outputs():
    """Outputs starting at any element (not 16-byte aligned) take the scalar store path."""
    key = stream.derive_key(3, 0)
    dist = backends.Distribution(stream.NORMAL, False, 0.0, 1.0, -math.inf, math.inf)
    expected = np.empty(1001, np.float32)
    backends.get("numpy").fill(dist, key, expected, np.array([5]), 1001)
    for shift in range(4):
        base = cupy.zeros(1001 + 4, dtype=cupy.float32)
        view = base[shift:shift + 1001]
        cupy_backend.fill(dist, key, view, np.array([5]), 1001)
        assert_bits_equal(cupy.asnumpy(view), expected)
        assert not cupy.any(base[:shift]) and not cupy.any(base[shift + 1001:])


# -- statistics (fixed seeds) ------------------------------------------------------------------


def test_statistics(gpu):
    scipy_stats = pytest.importorskip("scipy.stats")
    x = fr.normal(1 << 20, seed=1, backend="gpucopy").astype(np.float64)
    assert scipy_stats.kstest(x[:200_000], "norm").pvalue > 1e-3
    u = fr.uniform(1 << 20, seed=2, backend="gpucopy").astype(np.float64)
    assert scipy_stats.kstest(u[:200_000], "uniform").pvalue > 1e-3
    t = fr.truncated_normal(200_000, a=2.0, b=3.0, seed=3, backend="gpucopy").astype(np.float64)
    assert scipy_stats.kstest(t, scipy_stats.truncnorm(2.0, 3.0).cdf).pvalue > 1e-3
    assert t.min() >= 2.0 and t.max() <= 3.0


# -- bad input and errors --------------------------------------------------------------------


def test_bad_outputs():
    key = stream.derive_key(0, 0)
    dist = backends.Distribution(stream.NORMAL, False, 0.0, 1.0, -math.inf, math.inf)
    with pytest.raises(ValueError, match="Received"):
        cupy_backend.fill(dist, key, np.empty(4, np.float32), np.array([0]), 4)
    with pytest.raises(TypeError):
        cupy_backend.fill(dist, key, cupy.empty(4, cupy.int32), np.array([0]), 4)
    with pytest.raises(ValueError):
        cupy_backend.fill(dist, key, cupy.empty((2, 2), cupy.float32), np.array([0]), 4)
    with pytest.raises(ValueError):
        cupy_backend.fill(dist, key, cupy.empty(5, cupy.float32), np.array([0]), 4)


def test_out_of_memory_is_clear_and_leaks_nothing():
    pool = cupy.get_default_memory_pool()
    before = pool.used_bytes()
    with pytest.raises(MemoryError, match="out of GPU memory"):
        cupy_backend.allocate((1 << 48,), "float32")
    assert pool.used_bytes() == before


# -- the GPU front door (device= / out=) -------------------------------------------------------

needs_device_api = pytest.mark.skipif(not HAS_DEVICE_API,
                                      reason="fastinit.random has no device= argument yet")


@needs_device_api
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_device_returns_cupy(dtype):
    x = fr.truncated_normal((513, 77), std=0.02, a=-0.04, b=0.04, seed=0, dtype=dtype,
                            device="cuda")
    assert isinstance(x, cupy.ndarray) and x.device.id == cupy.cuda.Device().id
    expected = fr.truncated_normal((513, 77), std=0.02, a=-0.04, b=0.04, seed=0, dtype=dtype,
                                   backend="numpy")
    assert_bits_equal(cupy.asnumpy(x), expected)


@needs_device_api
def test_device_index_and_errors():
    x = fr.normal(10, seed=0, device="cuda:0")
    assert x.device.id == 0
    with pytest.raises((ValueError, RuntimeError)):
        fr.normal(10, seed=0, device=f"cuda:{N_GPUS + 5}")
    with pytest.raises(ValueError, match="Received"):
        fr.normal(10, seed=0, device="cuda", backend="numba")
    with pytest.raises(MemoryError, match="out of GPU memory"):
        fr.normal(1 << 48, seed=0, device="cuda")


@needs_device_api
def test_out_cupy_in_place_any_layout():
    expected = fr.uniform((300, 200), -1.0, 1.0, seed=8, backend="numpy")
    out = cupy.empty((300, 200), cupy.float32)
    ptr = out.data.ptr
    assert fr.uniform(low=-1.0, high=1.0, seed=8, out=out) is out and out.data.ptr == ptr
    assert_bits_equal(cupy.asnumpy(out), expected)
    fortran = cupy.empty((300, 200), cupy.float32, order="F")
    fr.uniform(low=-1.0, high=1.0, seed=8, out=fortran)
    assert_bits_equal(cupy.asnumpy(fortran), expected)
    strided = cupy.zeros((300, 400), cupy.float32)[:, ::2]
    fr.uniform(low=-1.0, high=1.0, seed=8, out=strided)
    assert_bits_equal(cupy.asnumpy(strided), expected)


@needs_device_api
def test_memory_peak_is_the_output():
    pool = cupy.get_default_memory_pool()
    peak = [0]

    def malloc(size):
        mem = pool.malloc(size)
        peak[0] = max(peak[0], pool.used_bytes())
        return mem

    pool.free_all_blocks()
    base = pool.used_bytes()
    cupy.cuda.set_allocator(malloc)
    previous = fastinit.gpu.set_allocator("cupy")
    try:
        x = fr.truncated_normal(10_000_000, seed=0, device="cuda")
        cupy.cuda.Device().synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
        fastinit.gpu.set_allocator(previous)
    assert peak[0] - base == x.nbytes


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


@needs_device_api
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_out_torch_cuda_tensor_in_place(dtype):
    torch = _torch_cuda()
    t = torch.empty(257, 129, device="cuda", dtype=getattr(torch, dtype))
    ptr = t.data_ptr()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):  # filled on torch's current stream
        fr.normal(std=0.5, seed=1, out=t)
    s.synchronize()
    assert t.data_ptr() == ptr
    expected = fr.normal((257, 129), std=0.5, seed=1, dtype=dtype, backend="numpy")
    got = t.cpu()
    got = got.view(torch.int16).numpy().view(expected.dtype) if dtype == "bfloat16" \
        else got.numpy()
    assert_bits_equal(got, expected)
    tt = torch.empty(129, 257, device="cuda", dtype=getattr(torch, dtype)).t()  # strided
    fr.normal(std=0.5, seed=1, out=tt)
    got = tt.cpu().contiguous()
    got = got.view(torch.int16).numpy().view(expected.dtype) if dtype == "bfloat16" \
        else got.numpy()
    assert_bits_equal(got, expected)


@needs_device_api
def test_zero_copy_hand_off():
    from fastinit.gpu import to_jax, to_torch
    x = fr.normal((64, 32), seed=2, device="cuda")
    torch = _torch_cuda()
    t = to_torch(x)
    assert t.data_ptr() == x.data.ptr and t.is_cuda
    b = fr.normal((64, 32), seed=2, dtype="bfloat16", device="cuda")  # CuPy 13: uint16 bits
    tb = to_torch(b, dtype="bfloat16")
    assert tb.dtype == torch.bfloat16 and tb.data_ptr() == b.data.ptr
    expected = fr.normal((64, 32), seed=2, dtype="bfloat16", backend="numpy")
    assert_bits_equal(tb.cpu().view(torch.int16).numpy().view(expected.dtype), expected)
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("jax without GPU")
    j = to_jax(x)
    np.testing.assert_array_equal(np.asarray(j), cupy.asnumpy(x))


@needs_device_api
def test_fastinit_torch_on_cuda_tensors():
    torch = _torch_cuda()
    import fastinit.torch as ft
    w = torch.empty(64, 128, device="cuda")
    ft.trunc_normal_(w, std=0.02, a=-0.04, b=0.04, seed=0)
    expected = fr.truncated_normal((64, 128), std=0.02, a=-0.04, b=0.04, seed=0,
                                   backend="numpy")
    assert_bits_equal(w.cpu().numpy(), expected)


# -- initializers and front ends on the GPU ------------------------------------------------------

def _to_numpy(x, dtype):
    if isinstance(x, cupy.ndarray):
        host = cupy.asnumpy(x)
    else:  # torch
        host = x.detach().cpu()
        if dtype == "bfloat16":
            import torch
            host = host.view(torch.int16)
        host = host.numpy()
    return host.view(np.uint16) if dtype == "bfloat16" else host


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name, init", exact_initializers(),
                         ids=[name for name, _ in exact_initializers()])
def test_initializers_on_the_gpu_equal_the_cpu(name, init, dtype):
    shape = (96, 40)
    expected = init(shape, dtype, backend="numpy")
    expected_bits = expected.view(np.uint16) if dtype == "bfloat16" else expected
    got = init(shape, dtype, device="cuda")
    assert isinstance(got, cupy.ndarray) and got.shape == shape
    assert_bits_equal(_to_numpy(got, dtype), expected_bits)
    region = (slice(10, 50), slice(3, 30, 2))
    part = init(shape, dtype, device="cuda", index=region)
    assert_bits_equal(_to_numpy(part, dtype), expected_bits[region])
    if dtype != "bfloat16":
        out = cupy.empty(shape, dtype, order="F")
        assert init(shape, out=out) is out
        assert_bits_equal(cupy.asnumpy(out), expected)
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        t = torch.empty(shape, dtype=getattr(torch, dtype), device="cuda")
        assert init(out=t) is t
        assert_bits_equal(_to_numpy(t, dtype), expected_bits)


@pytest.mark.parametrize("method", ["auto", "stewart", "cholqr2", "qr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, column_axis", [
    ((64, 64), -1), ((300, 40), -1), ((40, 300), -1), ((3, 3, 8, 16), -1), ((16, 8, 3, 3), 0),
    ((700, 100), -1)])
def test_orthogonal_on_the_gpu(shape, column_axis, dtype, method):
    import fastinit.initializers as fi
    init = fi.Orthogonal(gain=1.5, seed=5, column_axis=column_axis, method=method)
    got = init(shape, dtype, device="cuda")
    assert isinstance(got, cupy.ndarray)
    host = cupy.asnumpy(got)
    m = np.moveaxis(host, column_axis, -1).reshape(-1, shape[column_axis]).astype(np.float64)
    if m.shape[0] < m.shape[1]:
        m = m.T
    error = np.abs(m.T @ m / 1.5 ** 2 - np.eye(m.shape[1])).max()
    assert error <= (1e-5 if dtype == "float32" else 1e-12)
    # The same Gaussian matrix and, for every method, the same Q up to rounding.
    expected = init(shape, dtype, backend="numpy")
    np.testing.assert_allclose(host, expected, atol=2e-4 if dtype == "float32" else 1e-9)
    # In place into CuPy and torch CUDA buffers.
    out = cupy.empty(shape, dtype)
    assert init(out=out) is out
    np.testing.assert_array_equal(cupy.asnumpy(out), host)
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        t = torch.empty(shape, dtype=getattr(torch, dtype), device="cuda")
        assert init(out=t) is t
        np.testing.assert_array_equal(t.cpu().numpy(), host)


def test_delta_orthogonal_and_dirac_on_the_gpu():
    import fastinit.initializers as fi
    for init, shape in [(fi.DeltaOrthogonal(seed=1), (3, 3, 4, 8)), (fi.Dirac(groups=2),
                                                                      (8, 4, 3, 3))]:
        got = cupy.asnumpy(init(shape, device="cuda"))
        np.testing.assert_allclose(got, init(shape, backend="numpy"), atol=2e-5)


def test_fastinit_torch_fills_cuda_tensors_in_place():
    torch = _torch_cuda()
    import fastinit.initializers as fi
    import fastinit.torch as ft
    cases = [
        (lambda t: ft.normal_(t, 0.1, 0.5, seed=1), (64, 33)),
        (lambda t: ft.uniform_(t, -1, 1, seed=1), (64, 33)),
        (lambda t: ft.kaiming_uniform_(t, a=5 ** 0.5, seed=1), (64, 33, 3)),
        (lambda t: ft.xavier_normal_(t, seed=1), (64, 33)),
        (lambda t: ft.constant_(t, 0.3), (5, 7)),
        (lambda t: ft.zeros_(t), (5, 7)),
        (lambda t: ft.eye_(t), (5, 7)),
        (lambda t: ft.dirac_(t, groups=2), (4, 2, 3)),
        (lambda t: ft.sparse_(t, 0.5, seed=1), (20, 7)),
        (lambda t: ft.fill_(t, fi.GlorotUniform(seed=1)), (16, 8, 3, 3)),
    ]
    for fill, shape in cases:
        for dtype in (torch.float32, torch.bfloat16):
            gpu = torch.empty(shape, dtype=dtype, device="cuda")
            cpu = torch.empty(shape, dtype=dtype)
            ptr = gpu.data_ptr()
            assert fill(gpu) is gpu and gpu.data_ptr() == ptr
            fill(cpu)
            assert torch.equal(gpu.cpu(), cpu), (fill, shape, dtype)
    w = torch.empty(128, 64, device="cuda")
    ft.orthogonal_(w, seed=0)
    gram = (w.T @ w).cpu().double().numpy()
    assert np.abs(gram - np.eye(64)).max() <= 1e-5


def test_init_module_on_cuda_equals_cpu():
    torch = _torch_cuda()
    from fastinit.torch import init_module_

    def model():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                   torch.nn.Flatten(), torch.nn.Linear(8, 4),
                                   torch.nn.Embedding(10, 6))

    gpu, cpu = model().cuda(), model()
    init_module_(gpu, seed=7)
    init_module_(cpu, seed=7)
    for (name, a), (_, b) in zip(gpu.state_dict().items(), cpu.state_dict().items()):
        assert a.is_cuda
        assert torch.equal(a.cpu(), b), name


# -- issue 14: flush-to-zero, bfloat16 hand-off, parameters, streams, allocators -----------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_subnormals_are_not_flushed(dtype):
    """Scales and products below float32's normal range: flushed to zero under -ftz=true."""
    for kw in (dict(std=1e-39), dict(mean=1e-39, std=1e-40)):
        x = fr.normal(1 << 16, seed=0, dtype=dtype, device="cuda", **kw)
        expected = fr.normal(1 << 16, seed=0, dtype=dtype, backend="numpy", **kw)
        host = cupy.asnumpy(x.view(cupy.uint16) if dtype == "bfloat16" else x)
        assert_bits_equal(host.view(expected.dtype), expected)
    t = fr.uniform(1 << 16, low=0.0, high=1e-38, seed=1, device="cuda")
    assert_bits_equal(cupy.asnumpy(t), fr.uniform(1 << 16, low=0.0, high=1e-38, seed=1,
                                                  backend="numpy"))
    assert np.count_nonzero(cupy.asnumpy(t)) > (1 << 15)


def test_out_parameter_on_cuda():
    torch = _torch_cuda()
    p = torch.nn.Parameter(torch.empty(64, 32, device="cuda"))
    assert fr.normal(std=0.5, seed=1, out=p) is p and p.requires_grad
    assert_bits_equal(p.detach().cpu().numpy(), fr.normal((64, 32), std=0.5, seed=1,
                                                          backend="numpy"))


class _DlpackOnly:
    """A producer that exports DLPack only (as JAX does), here over a torch tensor."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, **kwargs):
        return self.tensor.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


@pytest.mark.skipif(int(cupy.__version__.split(".")[0]) < 14, reason="CuPy 13 imports no "
                    "bfloat16 from DLPack")
def test_dlpack_bfloat16_outputs_get_bits():
    torch = _torch_cuda()
    import fastinit.initializers as fi
    whole = torch.empty(64, 80, dtype=torch.bfloat16, device="cuda")
    for tensor in (whole, whole[:, ::2]):
        for init in (fi.RandomNormal(seed=3), fi.Constant(0.25), fi.Identity(gain=3.0)):
            init(out=_DlpackOnly(tensor))
            expected = init(tuple(tensor.shape), "bfloat16", backend="numpy")
            got = tensor.cpu().contiguous().view(torch.int16).numpy().view(expected.dtype)
            assert_bits_equal(got, expected)


def test_orthogonal_on_a_side_stream():
    torch = _torch_cuda()
    import fastinit.initializers as fi
    s = torch.cuda.Stream()
    t = torch.empty(3, 64, 200, device="cuda")
    with torch.cuda.stream(s):
        for _ in range(3):  # a pending kernel on s before the fill, then the fill
            t.fill_(float("nan"))
            fi.Orthogonal(seed=4, column_axis=1)(out=t)
    s.synchronize()
    expected = fi.Orthogonal(seed=4, column_axis=1)((3, 64, 200), backend="numpy")
    np.testing.assert_allclose(t.cpu().numpy(), expected, atol=2e-4)


@pytest.mark.skipif(N_GPUS < 2, reason="needs two GPUs")
def test_device_other_than_the_current_one():
    import fastinit.initializers as fi
    with cupy.cuda.Device(0):
        x = fi.Orthogonal(seed=4, column_axis=1)((3, 64, 200), device="cuda:1")
    assert x.device.id == 1
    expected = fi.Orthogonal(seed=4, column_axis=1)((3, 64, 200), backend="numpy")
    np.testing.assert_allclose(cupy.asnumpy(x), expected, atol=2e-4)


def test_is_available():
    assert fastinit.gpu.is_available() and fastinit.gpu.is_available(linalg=False)


def test_torch_allocator_owns_device_results():
    torch = _torch_cuda()
    from fastinit.gpu import to_torch
    pool = cupy.get_default_memory_pool()
    previous = fastinit.gpu.set_allocator("torch")
    try:
        import gc
        gc.collect()  # nothing of earlier tests is freed while this one counts
        torch.cuda.synchronize()
        before, pool_before = torch.cuda.memory_allocated(), pool.used_bytes()
        x = fr.normal(1 << 20, seed=0, device="cuda")
        assert torch.cuda.memory_allocated() - before >= x.nbytes
        assert pool.used_bytes() == pool_before
        t = to_torch(x)
        assert t.data_ptr() == x.data.ptr
        assert_bits_equal(t.cpu().numpy(), fr.normal(1 << 20, seed=0, backend="numpy"))
        del x, t
        assert torch.cuda.memory_allocated() == before
    finally:
        fastinit.gpu.set_allocator(previous)
