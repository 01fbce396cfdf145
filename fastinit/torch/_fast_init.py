"""``fast_init``: a model's own init code, drawing with fastinit (``fastinit.torch.fast_init``).

Inside the context the 14 ``torch.nn.init`` functions (and, when transformers
is imported, the functions ``transformers.initialization`` calls, through
which Hugging Face's ``_init_weights`` runs) keep their formulas and in-place
semantics but draw from fastinit's streams. A tensor of the model being
initialised draws from the stream of its fully-qualified name. The rules
(naming, tied weights, construction-time draws, threads) are in
``docs/models.md``; :class:`State` is the per-thread state the patched
functions consult, also used by ``init_module_`` and ``materialize_module``.
"""

import contextlib
import inspect
import sys
import threading
import weakref

from .. import sharding
from .._checks import check_uint64
from . import _hf, _regions, _tensor
from ._names import Names
from ._rules import torch_rule

__all__ = ["fast_init", "State", "activated", "paused", "RANDOM", "CONSTANT", "TORCH_MODULES"]

RANDOM = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
          "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
CONSTANT = ("constant_", "ones_", "zeros_", "eye_", "dirac_")
#: The modules holding the functions by name (transformers' TORCH_MODULES_TO_PATCH).
TORCH_MODULES = ("torch.nn.init", "torch.nn.modules.activation", "torch.nn.modules.transformer",
                 "torch.nn.modules.linear", "torch.nn.modules.loss",
                 "torch.nn.modules.batchnorm", "torch.nn.modules.conv",
                 "torch.nn.modules.normalization", "torch.nn.modules.rnn",
                 "torch.nn.modules.sparse")
ANONYMOUS = "<fastinit.anonymous>/{}"
TORCH_RNG = "<torch-rng>/{}/{}"

_local = threading.local()
_lock = threading.Lock()
_patches = {"count": 0, "saved": [], "hf": False}
_ORIG, _SIG, PRIMITIVES = {}, {}, {}


def current():
    """This thread's active :class:`State`, or None."""
    return getattr(_local, "state", None)


# -- the patched functions ---------------------------------------------------------------


def _make(name):
    def primitive(tensor, *args, **kwargs):
        state = getattr(_local, "state", None)
        if state is None:
            return _ORIG[name](tensor, *args, **kwargs)
        return state.call(name, tensor, args, kwargs)
    primitive.__name__ = primitive.__qualname__ = name
    primitive.__doc__ = (f"torch.nn.init.{name}; inside fastinit.torch.fast_init it draws "
                         "with fastinit (the original runs everywhere else).")
    primitive.__module__ = __name__
    return primitive


def _originals():
    """The torch functions themselves (not a wrapper that is installed right now)."""
    if _ORIG:
        return
    import torch.nn.init as torch_init
    hf = sys.modules.get(_hf.INIT_MODULE)
    for name in RANDOM + CONSTANT:
        candidates = [getattr(torch_init, name)]
        if hf is not None:
            candidates.append(hf.TORCH_INIT_FUNCTIONS.get(name))
        fn = next((f for f in candidates if getattr(f, "__module__", None) == "torch.nn.init"),
                  candidates[0])
        _ORIG[name], _SIG[name] = fn, inspect.signature(fn)
        PRIMITIVES[name] = _make(name)


def _set(obj, key, value):
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


def _put(obj, key, value):
    old = obj[key] if isinstance(obj, dict) else getattr(obj, key)
    _patches["saved"].append((obj, key, old))
    _set(obj, key, value)


def _install_hf():
    """Patch transformers (called under the lock) if it is imported and not patched yet."""
    if not _patches["hf"] and _patches["count"] and _hf.loaded():
        for obj, key, value in _hf.patches(current, PRIMITIVES):
            _put(obj, key, value)
        _patches["hf"] = True


def _install():
    with _lock:
        _originals()
        _patches["count"] += 1
        if _patches["count"] > 1:
            _install_hf()
            return
        for modname in TORCH_MODULES:
            mod = sys.modules.get(modname)
            for name in RANDOM + CONSTANT:
                if mod is not None and hasattr(mod, name):
                    _put(mod, name, PRIMITIVES[name])
        _install_hf()


def _uninstall():
    with _lock:
        _patches["count"] -= 1
        if _patches["count"]:
            return
        for obj, key, value in reversed(_patches["saved"]):
            _set(obj, key, value)
        _patches["saved"], _patches["hf"] = [], False
        # Modules imported inside the context captured fastinit's functions by name.
        ours = {id(f): name for name, f in PRIMITIVES.items()}
        hf = sys.modules.get(_hf.INIT_MODULE)
        tables = [vars(sys.modules[m]) for m in TORCH_MODULES if m in sys.modules]
        tables += [hf.TORCH_INIT_FUNCTIONS] if hf is not None else []
        for table in tables:
            for key, fn in list(table.items()):
                if id(fn) in ours:
                    table[key] = _ORIG[ours[id(fn)]]


@contextlib.contextmanager
def activated(state):
    """Make ``state`` this thread's state (the functions are patched while any is active)."""
    previous = current()
    _install()
    _local.state = state
    try:
        yield state
        state.finish()
    finally:
        _local.state = previous
        _uninstall()


@contextlib.contextmanager
def paused():
    """torch's own functions in this thread for the block (a rebuilt model, say)."""
    previous, _local.state = current(), None
    try:
        yield
    finally:
        _local.state = previous


# -- the state of one context --------------------------------------------------------------


class State:
    """What the patched functions do in one thread: seed, names, the managed init.

    ``mode="record"`` (used by ``materialize_module`` on a meta model) writes
    nothing: each fill of a named tensor is recorded in :attr:`plan` as
    ``("init", initializer, index)`` or ``("value", tensor, index)``.
    """

    def __init__(self, seed, *, backend="auto", prefix="", module=None, regions=None,
                 mode="live", torch_rng=True):
        self.seed, self.backend, self.prefix, self.mode = seed, backend, prefix, mode
        self.regions, self.torch_rng, self.fixed = regions, torch_rng, module
        self.names = Names(module, prefix, regions) if module is not None else None
        self.in_init = False
        self.call_site = None       # name of the module whose _init_weights runs
        self.anonymous = 0
        self.pending = {}           # id -> (weakref, fn, kwargs): construction-time draws
        self.deferred = []          # (model, run): nested models the outermost one covers
        self.touched = set()        # ids of the named tensors a fill or copy_ reached
        self.skip = set()           # ids filled by something else (init_module_'s rules)
        self.plan = {}              # record mode: id -> [op, ...]
        self.unrecordable = {}      # record mode: id or text -> why

    # -- entry points of the patched functions

    def call(self, fn, tensor, args, kwargs):
        if not _patches["hf"] and _hf.loaded():
            with _lock:
                _install_hf()
        try:
            bound = _SIG[fn].bind(tensor, *args, **kwargs)
        except TypeError:
            return _ORIG[fn](tensor, *args, **kwargs)  # torch's own error
        bound.apply_defaults()
        kw = dict(bound.arguments)
        del kw[next(iter(_SIG[fn].parameters))]
        if kw.pop("generator", None) is not None:  # the caller's own generator: respected
            return _ORIG[fn](tensor, *args, **kwargs)
        return self.fill(fn, tensor, kw)

    def fill(self, fn, tensor, kw):
        import torch
        if fn in RANDOM and not self.in_init and isinstance(tensor, torch.nn.Parameter) \
                and _hf.outer_under_construction(None) is not None:
            # A transformers model is being built: its init decides (after construction).
            if not tensor.is_meta and self.mode == "live":
                self.pending[id(tensor)] = (weakref.ref(tensor), fn, kw)
            return tensor
        target = self._target(tensor)
        if target is not None:
            key = id(target.base)
            if key in self.skip or self._tied_target(target):
                return tensor
            self.touched.add(key)
            self.pending.pop(key, None)
        if self.mode == "record":
            self._record(fn, tensor, kw, target)
        elif not tensor.is_meta:
            self._write(fn, tensor, kw, target)
        return tensor

    def copy(self, tensor, other, orig):
        """transformers' ``initialization.copy_`` (buffers and computed parameters)."""
        import torch
        target = self._target(tensor) if self.in_init else None
        if target is not None:
            key = id(target.base)
            if key in self.skip or self._tied_target(target):
                return tensor
            self.touched.add(key)
            if self.mode == "record":
                if not isinstance(other, torch.Tensor):
                    other = torch.as_tensor(other)
                if other.is_meta:
                    self.unrecordable[key] = "copy_ of a value computed from meta tensors"
                else:
                    value = other.detach().to("cpu", tensor.dtype).expand(tensor.shape).clone()
                    self.plan.setdefault(key, []).append(("value", value, target.index))
                return tensor
        if tensor.is_meta:
            return tensor
        return orig(tensor, other)

    def managed(self, root, run):
        """Run ``run`` (HF's ``initialize_weights`` of ``root``) with root-relative names."""
        saved = (self.names, self.in_init, self.call_site)
        names = self.names = Names(root, self.prefix, self.regions)
        self.in_init, self.call_site = True, None
        try:
            result = run()
            for key, (ref, fn, kw) in list(self.pending.items()):
                tensor = ref()
                if tensor is None:
                    del self.pending[key]
                elif names.tensors.get(key) is tensor:  # drawn at construction, untouched
                    del self.pending[key]
                    self.fill(fn, tensor, kw)
        finally:
            self.names, self.in_init, self.call_site = saved
        for model, model_run in [d for d in self.deferred if id(d[0]) in names.modules]:
            self.deferred.remove((model, model_run))
        return result

    def defer(self, model, run):
        self.deferred.append((model, run))

    def visit(self, module, run, flagged=False):
        """HF's ``_initialize_weights(module)``: ``module`` is the call site; torch's own
        generator is seeded from (seed, module name) for code that calls it directly."""
        saved = self.call_site
        if self.names is not None:
            self.call_site = self.names.modules.get(id(module))
        try:
            if self.torch_rng and not flagged and self.call_site is not None \
                    and self.mode == "live":
                with _torch_rng(self.seed, self.prefix + self.call_site, module):
                    return run()
            return run()
        finally:
            self.call_site = saved

    def finish(self):
        """At the end of the context: models whose outermost model never initialised them,
        then parameters drawn at construction that no init reached (anonymous rule)."""
        while self.deferred:
            model, run = self.deferred.pop(0)
            self.managed(model, run)
        pending, self.pending = self.pending, {}
        for ref, fn, kw in pending.values():
            tensor = ref()
            if tensor is not None:
                self.fill(fn, tensor, kw)

    # -- helpers

    def _target(self, tensor):
        names = self.names
        if names is None:
            return None
        target = names.resolve(tensor)
        if target is None and self.fixed is not None and not self.in_init \
                and type(tensor).__name__ == "Parameter":
            self.names = Names(self.fixed, self.prefix, self.regions)  # new parameters
            target = self.names.resolve(tensor)
        return target

    def _tied_target(self, target):
        """A fill through a tied *target* name (``lm_head.weight``): HF discards it when
        tying, and it would overwrite the source (and BERT's zero padding row)."""
        targets = self.names.targets
        if self.call_site is None or not targets:
            return False
        pre = self.call_site + "." if self.call_site else ""
        local = [a for a in target.aliases if a.startswith(pre)]
        return bool(local) and all(a in targets for a in local)

    def _anonymous_stream(self):
        self.anonymous += 1
        return sharding.name_stream(ANONYMOUS.format(self.anonymous - 1))

    def _write(self, fn, tensor, kw, target):
        if fn in CONSTANT:
            structured = fn in ("eye_", "dirac_") and target is not None and target.sharded
            view_of_dtensor = target is not None and target.index is not None \
                and _regions.is_dtensor(target.base)
            if not (structured or view_of_dtensor):
                _ORIG[fn](tensor, **kw)  # exact, for every dtype
                return
        _check_dims(fn, tensor)
        if target is None:
            init = torch_rule(fn, tuple(tensor.shape), self.seed, **kw)
            _regions.fill_tensor(tensor, init, self._anonymous_stream(), self.backend)
            return
        init = torch_rule(fn, target.shape, self.seed, **kw)
        stream = sharding.name_stream(target.name)
        if target.index is None:
            _regions.fill_tensor(target.base, init, stream, self.backend, target.region)
        elif sharding.is_elementwise(init):
            _regions.fill_region(target.base, init, target.index, stream, self.backend,
                                 target.region)
        elif not target.sharded:  # a global initializer on a view: the view on its own
            _tensor.fill(tensor, init, stream=sharding.name_stream(
                f"{target.name}{list(target.index)}"), backend=self.backend)
        else:
            raise NotImplementedError(f"fastinit cannot fill a view of the sharded tensor "
                                      f"{target.name} with {fn}")

    def _record(self, fn, tensor, kw, target):
        if target is None:
            if tensor.is_meta and self.in_init:  # e.g. a .data view: its values are unknown
                site = self.prefix + (self.call_site or "")
                self.unrecordable[f"<unnamed {fn} at {site!r}>"] = \
                    "a fill of a meta tensor that is not a named tensor or a view of one"
            return
        _check_dims(fn, tensor)
        init = torch_rule(fn, target.shape, self.seed, **kw)
        key = id(target.base)
        if target.index is not None and not sharding.is_elementwise(init):
            self.unrecordable[key] = f"{fn} on a view"
            return
        self.plan.setdefault(key, []).append(("init", init, target.index))


def _check_dims(fn, tensor):
    """torch's own errors for shapes its functions refuse."""
    if fn == "orthogonal_" and tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if fn == "sparse_" and tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")


@contextlib.contextmanager
def _torch_rng(seed, name, module):
    import torch
    devices = sorted({t.device.index or 0 for t in module.parameters(recurse=False)
                      if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        value = sharding.name_stream(TORCH_RNG.format(seed, name)) >> 1
        torch.default_generator.manual_seed(value)
        for d in devices:  # pragma: no cover - needs a GPU
            torch.cuda.default_generators[d].manual_seed(value)
        yield


@contextlib.contextmanager
def fast_init(seed=0, *, module=None, prefix="", backend="auto", torch_rng=True):
    """Run a model's own init code (``torch.nn.init``, transformers' ``_init_weights``)
    on fastinit's kernels, in this thread.

    Parameters
    ----------
    seed : int
        In ``[0, 2**64)``; one seed for everything the block initialises.
    module : torch.nn.Module, optional
        Name the tensors of this module (as in ``init_module_``): a fill of one
        of them draws from the stream of its name.
    prefix : str
        Prepended to the names.
    backend : {"auto", "numba", "numpy"}
    torch_rng : bool
        Seed torch's own generator from (seed, module name) while a transformers
        ``_init_weights`` runs, for code that draws with ``torch.rand`` directly.

    Notes
    -----
    Inside the block, a tensor of a transformers model being built, or of
    ``module``, draws from the stream of its fully-qualified name, the one
    ``save_pretrained`` keeps. So a model built in the block equals the same
    model built on the meta device and filled by ``init_module_`` with the
    same seed. Any other random fill draws from the stream of the name
    ``<fastinit.anonymous>/k`` for the k-th such fill of the block (k from 0,
    in program order). A ``generator=`` argument gets torch's function. The functions are patched
    for the whole process while a block is open, but act only in the thread
    that opened it (other threads get torch's functions); blocks do not nest.
    Everything is restored on exit, also on an exception. See ``docs/models.md``.

    Examples
    --------
    >>> import torch
    >>> from fastinit.sharding import name_stream
    >>> import fastinit.torch as ft
    >>> model = torch.nn.Linear(4, 3)
    >>> with fast_init(seed=0, module=model):
    ...     _ = torch.nn.init.normal_(model.weight, std=0.02)
    >>> w = ft.normal_(torch.empty(3, 4), std=0.02, seed=0, stream=name_stream("weight"))
    >>> torch.equal(model.weight.detach(), w)
    True
    """
    seed = check_uint64(seed, "seed", TypeError)
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'. Received: {backend!r}")
    if current() is not None:
        raise RuntimeError("fast_init blocks do not nest (one is already open in this thread)")
    with activated(State(seed, backend=backend, prefix=prefix, module=module,
                         torch_rng=torch_rng)):
        yield
