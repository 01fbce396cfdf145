"""The Numba options of every compiled function, and how a kernel is made.

Every compiled function of the Numba backend goes through :func:`kernel` (a
kernel called from Python) or :func:`jitable` (a function that kernels call);
their options are :data:`OPTIONS` (numba-stats' ``_util._jit`` is the model):
``nogil`` so that fastinit's own threads run kernels side by side,
``error_model="numpy"`` (a division by zero gives inf/nan as in NumPy, with no
exception check in the loops), no ``fastmath`` (the stream is exact IEEE
arithmetic in the order written), and a disk cache (:mod:`._cache`). Jitables
(:data:`JITABLE_OPTIONS`) are inlined into their callers, where the loops
vectorise, and get no CPython or C wrapper (Numba would compile both for
every jitable and signature, only to throw them away).

Making a kernel: a valid cached kernel is loaded at once, without any lock;
otherwise the process takes the kernel's lock file (:mod:`._lock`), then
loads what another process wrote meanwhile, or compiles the kernel and
writes the cache. So a warm cache never waits for another process, and
processes starting cold at once do not compile one kernel side by side; a
stopped process that holds a lock delays the others by ``_lock.STALLED``
seconds. Under ``NUMBA_DISABLE_JIT=1`` no kernel is made (:func:`kernel`
returns None) and the backend computes with NumPy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numba
from numba.core import config
from numba.extending import register_jitable

from . import _cache, _lock

if TYPE_CHECKING:
    from collections.abc import Callable

    #: A compiled kernel (a Numba dispatcher), called from Python with arrays and scalars.
    Kernel = Callable[..., None]

#: A function made a jitable: registered with Numba, and returned unchanged.
_F = TypeVar("_F", bound="Callable[..., Any]")

OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}
# Jitables are inlined into their callers: the hot loops vectorise only when no
# call is left in them.
JITABLE_OPTIONS = {"nogil": True, "error_model": "numpy", "forceinline": True,
                   "no_cpython_wrapper": True, "no_cfunc_wrapper": True}


@overload
def jitable(fn: _F, **options: Any) -> _F: ...


@overload
def jitable(fn: None = None, **options: Any) -> Callable[[_F], _F]: ...


def jitable(fn: _F | None = None, **options: Any) -> _F | Callable[[_F], _F]:
    """``numba.extending.register_jitable`` with :data:`OPTIONS` (no cache of its own:
    a jitable is compiled into the kernels that call it, and cached with them)."""
    opts = dict(JITABLE_OPTIONS, **options)
    if fn is None:
        return lambda f: register_jitable(**opts)(f)
    return register_jitable(**opts)(fn)


def kernel(py_func: Callable[..., Any], name: str, signature: Any,
           **options: Any) -> Kernel | None:
    """Compile ``py_func`` (a kernel called from Python) for ``signature`` alone.

    ``name`` is the kernel's identity in the disk cache: one index file per
    name (and CPU), holding the one signature. Cached (:class:`._cache.KernelCache`)
    when a cache directory is writable. None under ``NUMBA_DISABLE_JIT``.
    """
    if config.DISABLE_JIT:
        return None
    py_func.__name__ = py_func.__qualname__ = name
    opts = dict(OPTIONS, **options)
    where = _cache.cache_dir() if opts.pop("cache") else None
    dispatcher = numba.njit(**opts)(py_func)
    if where is not None:
        cache = dispatcher._cache = _cache.KernelCache(py_func)
        cache.load_only = True
        try:
            dispatcher.compile(signature)  # a valid cached kernel: loaded, no lock taken
        except _cache.NotCached:
            cache.load_only = False
            with _lock.hold(os.path.join(where, f"{name}-{_cache.cpu_tag()}.lock")):
                dispatcher.compile(signature)  # loads what another process wrote meanwhile
        finally:
            cache.load_only = False
    else:
        dispatcher.compile(signature)
    dispatcher.disable_compile()
    return dispatcher


__all__ = ["OPTIONS", "JITABLE_OPTIONS", "jitable", "kernel"]
