"""The Numba options of every compiled function, and the kernels' disk cache.

Every compiled function of the Numba backend goes through :func:`kernel` (a
kernel called from Python) or :func:`jitable` (a function that kernels call);
their options are :data:`OPTIONS` (numba-stats' ``_util._jit`` is the model):
``nogil`` so that fastinit's own threads run kernels side by side,
``error_model="numpy"`` (a division by zero gives inf/nan as in NumPy, with no
exception check in the loops), no ``fastmath`` (the stream is exact IEEE
arithmetic in the order written), and a disk cache. Jitables
(:data:`JITABLE_OPTIONS`) are inlined into their callers, where the loops
vectorise, and get no CPython or C wrapper (Numba would compile both for
every jitable and signature, only to throw them away).

The cache
---------
Numba's own cache checks only the source file of the cached function, but
the kernels compile the element math of :mod:`fastinit.stream` too. Kernels
are therefore cached by :class:`KernelCache` (Numba's cache files and
formats) in the place :class:`Locator` gives: a directory named after
:func:`source_stamp`, a hash of ``stream.py``, every source file of this
package and the Numba version, so machine code compiled from other sources
is in another directory and never found. The directory's root is, in order:

1. ``NUMBA_CACHE_DIR`` when set (``numba.config.CACHE_DIR``);
2. ``__pycache__`` beside this file, when writable (Numba's default);
3. the user cache directory (``$XDG_CACHE_HOME/fastinit/numba``, else
   ``~/.cache/fastinit/numba``; the platform's equivalent elsewhere);

and when none of them is writable, kernels are compiled in every process and
not cached. The cache is attached to each kernel's dispatcher: neither
Numba's global list of locators nor ``numba.config.CACHE_DIR`` changes, so
the user's own ``cache=True`` functions are cached as before.

Each kernel has its own index file, named with a hash of the target CPU too,
and one signature: an index only ever holds one entry (Numba rewrites an
index without a lock; two processes adding different entries could lose one
or cross them). Processes that need one kernel at once take turns (a lock
file beside it): one compiles, the others load what it wrote. Files are
replaced atomically (``os.replace``); a reader that finds the index before
the data compiles the kernel itself.
"""

import contextlib
import hashlib
import os
import pathlib
import sys
import tempfile
import threading
import time

import numba
from numba.core import caching, compiler_lock, config
from numba.extending import register_jitable

from ... import stream

OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}
# Jitables are inlined into their callers: the hot loops vectorise only when no
# call is left in them.
JITABLE_OPTIONS = {"nogil": True, "error_model": "numpy", "forceinline": True,
                   "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
CACHE_SUBDIR = "fastinit"  # under NUMBA_CACHE_DIR

_HERE = pathlib.Path(__file__).resolve().parent
IN_TREE_ROOT = os.path.join(_HERE, "__pycache__")  # Numba's default place, beside the sources


def jitable(fn=None, **options):
    """``numba.extending.register_jitable`` with :data:`OPTIONS` (no cache of its own:
    a jitable is compiled into the kernels that call it, and cached with them)."""
    opts = dict(JITABLE_OPTIONS, **options)
    if fn is None:
        return lambda f: register_jitable(**opts)(f)
    return register_jitable(**opts)(fn)


# -- the cache -------------------------------------------------------------------

_lock = threading.Lock()
_state = {}


def source_stamp():
    """sha256 of ``stream.py``, this package's sources and the Numba version."""
    if "stamp" not in _state:
        h = hashlib.sha256(f"numba {numba.__version__}\n".encode())
        files = [pathlib.Path(stream.__file__)] + sorted(_HERE.glob("*.py"))
        for path in files:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _state["stamp"] = h.hexdigest()
    return _state["stamp"]


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _user_cache_root():
    from numba.misc.appdirs import AppDirs
    return os.path.join(AppDirs(appname="fastinit", appauthor=False).user_cache_dir, "numba")


def cache_roots():
    """The candidate cache roots, in order of preference (see the module docstring)."""
    roots = []
    if config.CACHE_DIR:
        roots.append(os.path.join(config.CACHE_DIR, CACHE_SUBDIR))
    roots.append(IN_TREE_ROOT)
    roots.append(_user_cache_root())
    return roots


def cache_dir():
    """This process's kernel cache directory, or None when nothing is writable.

    Decided once per process (and again in a forked child only if it was
    never decided).
    """
    with _lock:
        if "dir" not in _state:
            _state["dir"] = None
            try:
                stamp = source_stamp()
            except OSError:  # sources not readable as files (a zip, frozen): no cache
                return None
            for root in cache_roots():
                path = os.path.join(root, f"stamp-{stamp[:24]}")
                if _writable(path):
                    _state["dir"] = path
                    break
        return _state["dir"]


def _cpu_tag():
    """A short hash of the target (triple, CPU name, features): Numba's magic tuple."""
    if "cpu" not in _state:
        from numba.core.registry import cpu_target
        magic = cpu_target.target_context.codegen().magic_tuple()
        _state["cpu"] = hashlib.sha256(repr(magic).encode()).hexdigest()[:12]
    return _state["cpu"]


class Locator(caching._CacheLocator):
    """Where the kernels are cached: :func:`cache_dir`, stamped by :func:`source_stamp`."""

    def __init__(self, path):
        self._path = path

    def ensure_cache_path(self):
        os.makedirs(self._path, exist_ok=True)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return source_stamp()

    def get_disambiguator(self):
        return _cpu_tag()

    @classmethod
    def from_function(cls, py_func, py_file):
        path = cache_dir()
        return None if path is None else cls(path)


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    """Numba's cache of compile results, located by :class:`Locator` alone.

    Numba's own locators (and ``NUMBA_CACHE_LOCATOR_CLASSES``) are not consulted:
    they know nothing of ``stream.py``.
    """

    def __init__(self, py_func):
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = Locator.from_function(py_func, None)
        # One index file per kernel name and CPU (the disambiguator).
        self._filename_base = self.get_filename_base(f"fastinit.{py_func.__qualname__}",
                                                     getattr(sys, "abiflags", ""))


class KernelCache(caching.FunctionCache):
    """A kernel's disk cache: Numba's format and file handling, :class:`Locator`'s place.

    Loading skips the full refresh of Numba's target context (the import of
    all of Numba's typing and lowering registries, SciPy's BLAS included, about
    0.3 s): a cached kernel needs only Numba's runtime, which is initialised
    here. Numba still refreshes the context itself before it compiles anything.
    """

    _impl_class = _KernelCacheImpl

    def load_overload(self, sig, target_context):
        from numba.core.runtime import nrt
        try:
            nrt.rtsys.initialize(target_context)
            return self._load_overload(sig, target_context)
        except Exception:  # an unusual Numba: the full path
            return super().load_overload(sig, target_context)


def kernel(py_func, name, signature, **options):
    """Compile ``py_func`` (a kernel called from Python) for ``signature`` alone.

    ``name`` is the kernel's identity in the disk cache: one index file per
    name (and CPU), holding the one signature. Cached (:class:`KernelCache`)
    when a cache directory is writable (:func:`cache_dir`).
    """
    py_func.__name__ = py_func.__qualname__ = name
    opts = dict(OPTIONS, **options)
    where = cache_dir() if opts.pop("cache") else None
    dispatcher = numba.njit(**opts)(py_func)
    if where is not None:
        dispatcher._cache = KernelCache(py_func)
        # One process compiles, the others wait and load what it wrote: several cold
        # workers starting at once on a small machine do not compile side by side.
        with _compile_lock(os.path.join(where, f"{name}-{_cpu_tag()}.lock")):
            dispatcher.compile(signature)  # loads from the cache when it is there
    else:
        dispatcher.compile(signature)
    dispatcher.disable_compile()
    return dispatcher


COMPILE_LOCK_WAIT = 120.0  # seconds; then compile anyway (a lock holder that hangs)
_held_fds = set()  # lock files this process holds, closed in a forked child


@contextlib.contextmanager
def _compile_lock(path):
    """An exclusive ``flock`` on ``path`` while the body runs, where the OS has it; after
    :data:`COMPILE_LOCK_WAIT` seconds of waiting, the body runs without it."""
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        deadline = time.monotonic() + COMPILE_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            except OSError:  # a file system without locks
                break
        _held_fds.add(fd)
        yield
    finally:
        _held_fds.discard(fd)
        os.close(fd)  # releases the lock


# A fork never lands in the middle of a compile: the forking thread takes Numba's compiler
# lock first (waiting for a compile in another thread to end). Forked while another
# thread held it, a child would find it held forever and could neither compile nor
# load a kernel.
def _before_fork():
    compiler_lock.global_compiler_lock.acquire()


def _after_fork_in_parent():
    compiler_lock.global_compiler_lock.release()


def _reset_after_fork():
    global _lock
    compiler_lock.global_compiler_lock.release()
    _lock = threading.Lock()
    # A fork during a compile: the child's copy of the lock file would keep the lock
    # held for as long as the child lives (and block its own compiles).
    for fd in list(_held_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_reset_after_fork)

__all__ = ["OPTIONS", "JITABLE_OPTIONS", "jitable", "kernel", "cache_dir", "cache_roots",
           "source_stamp", "Locator", "KernelCache"]
