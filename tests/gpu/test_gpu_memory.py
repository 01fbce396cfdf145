"""GPU memory on the stand-in CuPy: what a call allocates, and which allocator owns it.

Orthogonal tests in-place-ness with ``may_share_memory`` (CuPy's
``shares_memory`` would build an address array per element: about eight
times a float32 tensor). Where the program uses PyTorch, CuPy's allocations
inside fastinit come from torch's caching allocator, on CuPy's current
stream, so one allocator owns the memory (``fastinit.gpu.set_allocator``).
"""

import numpy as np
import pytest

import fastinit.gpu
import fastinit.initializers as fi
from fastinit import random as fr

from helpers import assert_bits_equal


@pytest.mark.parametrize("method", ["auto", "stewart", "cholqr2", "qr"])
def test_orthogonal_in_place_costs_no_copy_of_the_tensor(cupy, method):
    out = cupy.empty((64, 4096), np.float32)  # computed in place (as Q.T, F-ordered)
    fi.Orthogonal(seed=0, method=method)(out=out)  # compiles and loads outside the count
    cupy.state.peak = cupy.state.used["cupy"]
    fi.Orthogonal(seed=0, method=method)(out=out)
    assert cupy.state.peak - out.nbytes <= out.nbytes // 4 + (1 << 16)
    np.testing.assert_allclose(cupy.asnumpy(out), fi.Orthogonal(seed=0, method=method)(
        (64, 4096), backend="numpy"), atol=2e-5)


def test_set_allocator_checks_its_argument():
    with pytest.raises(ValueError, match=r"Received: allocator='jax'"):
        fastinit.gpu.set_allocator("jax")
    assert fastinit.gpu.set_allocator("auto") in ("auto", "torch", "cupy")


def test_device_results_come_from_torch_where_torch_is_used(cupy, torch_cuda):
    before = cupy.state.used.get("cupy", 0)
    with cupy.cuda.Stream() as stream:
        x = fr.normal((1000,), seed=1, device="cuda")
    assert cupy.state.used.get("cupy", 0) == before
    assert torch_cuda.allocations == [(4000, 0, stream.ptr)]  # on CuPy's stream of the call
    assert_bits_equal(cupy.asnumpy(x), fr.normal((1000,), seed=1, backend="numpy"))
    del x
    assert not torch_cuda.live  # given back to torch's allocator
    assert fastinit.gpu.set_allocator("cupy") == "auto"
    y = fr.normal((1000,), seed=1, device="cuda")
    assert cupy.state.used["cupy"] == before + y.nbytes and len(torch_cuda.allocations) == 1


def test_temporaries_of_torch_outputs_come_from_torch(cupy, torch_cuda):
    torch_cuda.set_stream(0xABC)
    wide = torch_cuda.empty((8, 64)).t()            # strided: filled through a scratch buffer
    fr.normal(seed=2, out=wide)
    kernel = torch_cuda.empty((3, 16, 40))
    fi.Orthogonal(seed=2, column_axis=1)(out=kernel)  # a temporary and solver workspaces
    assert cupy.state.peak == 0                       # nothing went through CuPy's pool
    assert torch_cuda.allocations and {s for _, _, s in torch_cuda.allocations} == {0xABC}
    assert_bits_equal(wide.numpy(), fr.normal((64, 8), seed=2, backend="numpy"))


def test_out_of_memory_through_either_allocator(cupy, torch_cuda, monkeypatch):
    with pytest.raises(MemoryError, match="out of GPU memory"):
        fr.normal(1 << 48, seed=0, device="cuda")
    import torch

    def full(size, device=None, stream=None):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch.cuda, "caching_allocator_alloc", full)
    with pytest.raises(MemoryError, match=r"out of GPU memory: a float32 array of shape \(10,\)"):
        fr.normal(10, seed=0, device="cuda")
