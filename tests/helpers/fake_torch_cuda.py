"""CUDA tensors for the stand-in CuPy: CPU torch tensors whose memory the stand-in calls a GPU's.

``install(monkeypatch, cupy)`` makes ``Tensor.is_cuda`` true for tensors made
by :meth:`FakeCuda.empty` (so torch's own ``__cuda_array_interface__``
property runs, ``requires_grad`` check included), gives torch a current
stream (:meth:`FakeCuda.set_stream`), and a caching allocator
(``caching_allocator_alloc`` / ``_delete``) that records the stream each
allocation was made for. Nothing else of torch changes.
"""

import types

import numpy as np
import pytest


class FakeStream:
    def __init__(self, ptr):
        self.cuda_stream = int(ptr)

    def __cuda_stream__(self):
        return (0, self.cuda_stream)


class FakeCuda:
    def __init__(self, torch, cupy):
        self.torch, self.state = torch, cupy.state
        self.stream = FakeStream(0)
        self.allocations = []  # (size, device, stream) of caching_allocator_alloc
        self.live = {}         # ptr -> host buffer

    def empty(self, shape, dtype=None, device=0, requires_grad=False):
        """A "CUDA" tensor on ``device`` (host memory registered as that GPU's)."""
        torch = self.torch
        tensor = torch.empty(shape, dtype=dtype or torch.float32)
        if tensor.numel():
            storage = tensor.untyped_storage()
            self.state.register(storage.data_ptr(), storage.nbytes(), device, "torch",
                                owner=tensor)
        return tensor.requires_grad_(requires_grad)

    def set_stream(self, ptr):
        self.stream = FakeStream(ptr)

    def is_cuda(self, tensor):
        if tensor.numel() == 0:
            return False
        found = self.state.block(tensor.data_ptr())
        return found is not None and found[3] == "torch"

    def alloc(self, size, device=None, stream=None):
        if not isinstance(stream, int):
            raise TypeError("Invalid type for stream argument, must be `torch.cuda.Stream` "
                            "or `int` representing a pointer to an existing stream")
        buffer = np.empty(max(int(size), 1), np.uint8)
        ptr = buffer.ctypes.data
        self.live[ptr] = buffer
        self.state.register(ptr, int(size), int(device), "torch")
        self.allocations.append((int(size), int(device), stream))
        return ptr

    def delete(self, ptr):
        self.state.release(ptr)
        del self.live[ptr]


def install(monkeypatch, cupy):
    """Give torch fake CUDA tensors, streams and a caching allocator (see the module doc)."""
    torch = pytest.importorskip("torch")
    fake = FakeCuda(torch, cupy)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(fake.is_cuda))
    cuda = types.SimpleNamespace(
        is_available=lambda: True, current_stream=lambda device=None: fake.stream,
        caching_allocator_alloc=fake.alloc, caching_allocator_delete=fake.delete)
    for name, value in vars(cuda).items():
        monkeypatch.setattr(torch.cuda, name, value)
    return fake
