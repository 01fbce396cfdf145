"""Which allocator owns fastinit's GPU memory: PyTorch's caching allocator or CuPy's pool.

CuPy allocates from its own memory pool. A ``device=`` result handed to torch
(``fastinit.gpu.to_torch``) would stay in that pool beside torch's caching
allocator: two caches competing for one GPU, and torch's ``memory_allocated``
would not count it. So where the program uses PyTorch, CuPy's allocations
inside fastinit (outputs, scratch buffers, solver workspaces) are made by
torch's caching allocator (``cupy.cuda.using_allocator`` with
``torch.cuda.caching_allocator_alloc``, on CuPy's current stream, which is
torch's current stream for torch outputs).

:func:`set_allocator`: ``"auto"`` (the default) uses torch's allocator when
``torch`` is already imported and sees a GPU, else CuPy's pool; ``"torch"``
and ``"cupy"`` force one.
"""

from __future__ import annotations

import contextlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ..._typing import Allocator

NAMES = ("auto", "torch", "cupy")
_choice: list[Allocator] = ["auto"]
# (cupy, torch) modules -> PythonFunctionAllocator
_allocators: dict[tuple[ModuleType, ModuleType], Any] = {}


def set_allocator(name: object) -> Allocator:
    """Choose the allocator of fastinit's GPU memory; returns the previous choice."""
    if name not in NAMES:
        raise ValueError(f"allocator must be one of {', '.join(map(repr, NAMES))}. "
                         f"Received: allocator={name!r}")
    previous, _choice[0] = _choice[0], cast("Allocator", name)
    return previous


def get_allocator() -> Allocator:
    """The current choice: "auto", "torch" or "cupy"."""
    return _choice[0]


def _torch() -> ModuleType | None:
    """torch when its allocator is to be used, else None."""
    choice = _choice[0]
    if choice == "cupy":
        return None
    if choice == "torch":
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("fastinit.gpu.set_allocator('torch'): this PyTorch sees no "
                               "CUDA device. Received: allocator='torch'")
        return torch
    loaded = sys.modules.get("torch")  # "auto": only a program that already uses torch
    if loaded is None or not hasattr(loaded, "cuda") or not loaded.cuda.is_available():
        return None
    return loaded


def _torch_allocator(cupy: ModuleType, torch: ModuleType) -> Any:
    allocator = _allocators.get((cupy, torch))
    if allocator is None:
        def malloc(size: int, device_id: int) -> int:
            stream = cupy.cuda.get_current_stream().ptr
            return torch.cuda.caching_allocator_alloc(size, device_id, stream)

        def free(ptr: int, device_id: int) -> None:
            try:
                torch.cuda.caching_allocator_delete(ptr)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

        allocator = cupy.cuda.memory.PythonFunctionAllocator(malloc, free)
        _allocators[(cupy, torch)] = allocator
    return allocator


def allocations(cupy: ModuleType) -> AbstractContextManager[Any]:
    """A ``with`` block whose CuPy allocations come from the chosen allocator."""
    torch = _torch()
    if torch is None:
        return contextlib.nullcontext()
    return cupy.cuda.using_allocator(_torch_allocator(cupy, torch).malloc)


def out_of_memory_errors(cupy: ModuleType) -> tuple[type[BaseException], ...]:
    """The exceptions an allocation raises when the GPU is full."""
    errors = [cupy.cuda.memory.OutOfMemoryError]
    torch = sys.modules.get("torch")
    if torch is not None:  # torch.OutOfMemoryError since 2.5, torch.cuda's before
        error = getattr(torch, "OutOfMemoryError", None) or getattr(
            getattr(torch, "cuda", None), "OutOfMemoryError", None)
        if error is not None:
            errors.append(error)
    return tuple(errors)
