"""Where ``fastinit.torch`` sees a model's init write, in the calling thread only.

- A ``TorchFunctionMode`` (``InitMode``) is on the calling thread's mode stack
  while a session (a ``fast_init`` block, an ``init_module_`` run) is open in it;
  torch keeps mode stacks per thread. It sees the four ``torch.nn.init`` functions
  that dispatch to modes (:data:`HOOKED`) and every tensor operation: in-place fills
  however they are reached (``weight.data.normal_()``, ``weight.normal_()`` under
  ``no_grad``, ``copy_``, ``fill_``, ``zero_``, ``uniform_``, ``__setitem__``,
  ``torch.eye(out=)``), the random factories of a model's construction, and the
  reads of a draw still deferred.
- The ten other functions (:data:`TRAMPOLINED`) go through steps fastinit cannot
  follow (a rejection loop, a QR, ``randperm``), so while any session is open in
  any thread their function objects run a trampoline as ``__code__``: it hands the
  call to the calling thread's session, or runs torch's own code (kept in a copy
  of the function) in every other thread and inside fastinit. The code objects
  are swapped under a lock when the first session opens and swapped back when the
  last closes (:func:`patched` says whether any is swapped); nothing else assigns
  them, while module attributes, which transformers' ``guard_torch_init_functions``
  swaps, are never touched.

The session (``fastinit.torch._session``) decides what each write does.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
import types
import warnings
from typing import TYPE_CHECKING, Any, Optional, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from torch.overrides import TorchFunctionMode

__all__ = ["HOOKED", "TRAMPOLINED", "Handler", "Kind", "current", "activated", "original",
           "signature", "patched", "warn_no_op"]

HOOKED = ("uniform_", "normal_", "constant_", "kaiming_uniform_")
TRAMPOLINED = ("trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_normal_",
               "orthogonal_", "sparse_", "ones_", "zeros_", "eye_", "dirac_")
_FILENAME = "<fastinit.torch trampoline>"
_SOURCE = '''def {name}({params}):
    return __import__("sys").modules["{module}"].call("{name}", {params})
'''

#: What the mode does with a torch function: ``(what, name)``, e.g. ``("method", "normal_")``
#: or ``("copy", None)`` (:func:`_kind`); None for any other function.
Kind = Optional[tuple[str, Optional[str]]]


class Handler(Protocol):
    """What this module hands a thread's calls to: a session (``fastinit.torch._session``)."""

    def init_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def torch_function(self, kind: Kind, func: Callable[..., Any], args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any: ...

    def close(self) -> None: ...


_H = TypeVar("_H", bound=Handler)

_local = threading.local()   # .sessions: open sessions, innermost last; .busy
_lock = threading.Lock()
_prepare_lock = threading.Lock()
_state = {"users": 0}
# name -> (function, torch's code, trampoline code)
_SWAPS: dict[str, tuple[types.FunctionType, types.CodeType, types.CodeType]] = {}
# name -> torch's function (a copy for trampolined ones), signature
_IMPL: dict[str, Callable[..., Any]] = {}
_SIG: dict[str, inspect.Signature] = {}
_KINDS: dict[object, tuple[str, Optional[str]]] = {}   # torch function -> what the mode does


def current() -> Handler | None:
    """The innermost session open in this thread, or None."""
    sessions = getattr(_local, "sessions", None)
    return sessions[-1] if sessions else None


def _prepare() -> None:
    """Torch's functions and the trampolines (built once; nothing is swapped here)."""
    if _KINDS:
        return
    with _prepare_lock:  # two threads opening their first blocks at once
        if not _KINDS:
            _build()


def _build() -> None:
    import torch
    import torch.nn.init as init
    for name in HOOKED + TRAMPOLINED:
        fn = getattr(init, name)
        if getattr(fn, "__module__", None) != "torch.nn.init":  # pragma: no cover
            raise RuntimeError(f"torch.nn.init.{name} is not torch's own function (replaced "
                               f"by {fn!r}): fastinit.torch cannot intercept it")
        _SIG[name] = inspect.signature(fn)
        if name in HOOKED:
            _IMPL[name] = fn
            continue
        code = fn.__code__
        if code.co_freevars or code.co_kwonlyargcount or code.co_posonlyargcount:
            raise RuntimeError(f"torch.nn.init.{name} has a signature fastinit.torch does "
                               f"not support (torch {torch.__version__})")
        impl = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
        impl.__kwdefaults__, impl.__doc__ = fn.__kwdefaults__, fn.__doc__
        params = ", ".join(code.co_varnames[:code.co_argcount])
        scope: dict[str, Any] = {}
        exec(compile(_SOURCE.format(name=name, params=params, module=__name__), _FILENAME,
                     "exec"), {}, scope)
        trampoline = scope[name].__code__.replace(co_qualname=code.co_qualname) \
            if hasattr(code, "co_qualname") else scope[name].__code__
        _IMPL[name] = impl
        _SWAPS[name] = (fn, code, trampoline)
    tensor = torch.Tensor
    kinds: dict[object, tuple[str, Optional[str]]] = {getattr(init, n): ("init", n)
                                                      for n in HOOKED}
    kinds.update({tensor.normal_: ("method", "normal_"), tensor.uniform_: ("method", "uniform_"),
                  tensor.fill_: ("method", "fill_"), tensor.zero_: ("method", "zero_"),
                  tensor.copy_: ("copy", None), tensor.__setitem__: ("setitem", None),
                  torch.eye: ("eye", None), torch.randn: ("factory", "randn"),
                  torch.rand: ("factory", "rand"), torch.randn_like: ("factory", "randn_like"),
                  torch.rand_like: ("factory", "rand_like")})
    _KINDS.update(kinds)  # last: a non-empty _KINDS means everything is built


def _kind(func: Callable[..., Any]) -> Kind:
    """What the mode does with ``func``. torch's hooked functions hand the mode the
    function their module's global names at the time: transformers' guarded wrapper
    while its ``guard_torch_init_functions`` is active (it has checked its flag)."""
    try:
        kind = _KINDS.get(func)
    except TypeError:  # an unhashable callable: none of torch's
        return None
    if kind is None and getattr(func, "__module__", None) == "transformers.initialization" \
            and getattr(func, "__name__", None) in HOOKED:
        kind = ("init", func.__name__)
    return kind


def original(name: str) -> Callable[..., Any]:
    """Torch's own ``torch.nn.init.<name>`` (never the trampoline)."""
    _prepare()
    return _IMPL[name]


def signature(name: str) -> inspect.Signature:
    _prepare()
    return _SIG[name]


def patched() -> list[str]:
    """The names whose ``__code__`` is the trampoline right now (empty when no session is open)."""
    return [n for n, (fn, _, tramp) in _SWAPS.items() if fn.__code__ is tramp]


def _swap(install: bool, count: int = 1) -> None:
    """``count`` sessions open (``install``) or close: the trampolines go in when the first
    opens and out when the last closes."""
    with _lock:
        _state["users"] += count if install else -count
        if _state["users"] == 0 or (install and _state["users"] == count):
            for fn, code, trampoline in _SWAPS.values():
                if _state["users"]:
                    fn.__code__ = trampoline
                elif fn.__code__ is trampoline:  # never anyone else's code
                    fn.__code__ = code


def _after_fork_in_child() -> None:
    """A forked child has one thread: the lock is free, and only its sessions count."""
    global _lock
    _lock = threading.Lock()
    _state["users"] = 0
    _swap(True, len(getattr(_local, "sessions", None) or ()))  # 0: torch's code back


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def call(name: str, *args: Any) -> Any:
    """The trampoline's target: this thread's session, else torch's own function."""
    session = current()
    if session is None or getattr(_local, "busy", False):
        return _IMPL[name](*args)
    with _busy():
        return session.init_call(name, args, {})


@contextlib.contextmanager
def _busy() -> Iterator[None]:
    """fastinit's own torch calls pass through the mode and the trampolines."""
    previous, _local.busy = getattr(_local, "busy", False), True
    try:
        yield
    finally:
        _local.busy = previous


def _new_mode() -> TorchFunctionMode:
    """A ``TorchFunctionMode`` handing this thread's torch calls to its innermost session."""
    if not _MODE:
        from torch.overrides import TorchFunctionMode

        class InitMode(TorchFunctionMode):
            def __torch_function__(self, func: Callable[..., Any], types: Any,
                                   args: tuple[Any, ...] = (),
                                   kwargs: dict[str, Any] | None = None) -> Any:
                kwargs = kwargs or {}
                session = current()
                if session is None or getattr(_local, "busy", False):
                    return func(*args, **kwargs)
                with _busy():
                    return session.torch_function(_kind(func), func, args, kwargs)

        _MODE.append(InitMode)
    return _MODE[0]()


_MODE: list[type[TorchFunctionMode]] = []


@contextlib.contextmanager
def activated(session: _H) -> Iterator[_H]:
    """Open ``session`` in this thread: the mode on its stack, the trampolines installed."""
    _prepare()
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = []
    mode = _new_mode() if not sessions else None
    _swap(True)
    try:
        if mode is not None:
            mode.__enter__()
        sessions.append(session)
        try:
            yield session
        finally:
            sessions.pop()
            try:
                session.close()
            finally:  # the mode leaves the thread's stack even if closing failed
                if mode is not None:
                    mode.__exit__(None, None, None)
    finally:
        _swap(False)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INNER = (os.path.join("torch", "nn", "init.py"), os.path.join("torch", "overrides.py"),
          os.path.join("transformers", "initialization.py"), "contextlib.py", _FILENAME)


def warn_no_op() -> None:
    """torch's warning for ``kaiming_*_`` on a zero-element tensor, at the caller's line
    (the first frame outside fastinit.torch, torch.nn.init and transformers' wrappers)."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and (frame.f_code.co_filename.startswith(_PACKAGE)
                                 or frame.f_code.co_filename.endswith(_INNER)):
        frame, level = frame.f_back, level + 1
    warnings.warn("Initializing zero-element tensors is a no-op", UserWarning,
                  stacklevel=level)
