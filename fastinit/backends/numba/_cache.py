"""The kernels' disk cache: where it is, and files that detect their own damage.

Numba's own cache checks only the source file of the cached function, but
the kernels compile the element math of :mod:`fastinit.stream` too. Kernels
are therefore cached by :class:`KernelCache` (Numba's cache, its index and
data files) in the place :class:`Locator` gives: a directory named after
:func:`source_stamp`, a hash of ``stream.py``, every source file of this
package and the Numba version, so machine code compiled from other sources
is in another directory and never found. The directory's root is, in order:

1. ``NUMBA_CACHE_DIR`` when set (``numba.config.CACHE_DIR``);
2. ``__pycache__`` beside this file, when writable (Numba's default);
3. the user cache directory (``$XDG_CACHE_HOME/fastinit/numba``, else
   ``~/.cache/fastinit/numba``; the platform's equivalent elsewhere);

and when none of them is writable, kernels are compiled in every process and
not cached, with one :class:`KernelCacheWarning` per process. The cache is
attached to each kernel's dispatcher: neither Numba's global list of
locators nor ``numba.config.CACHE_DIR`` changes, so the user's own
``cache=True`` functions are cached as before.

Each kernel has its own index file, named with a hash of the target CPU
too, and one signature. Every file (index and data) is written whole under
a temporary name and renamed (``os.replace``), and begins with a sha256 of
its contents (:class:`CheckedFiles`): a truncated, empty or bit-flipped file
reads as absent, so the kernel is compiled again and the file replaced, in
whichever process finds it first (Numba's own files would fail to unpickle
in every process, or load damaged machine code). The checksum finds damage,
not malice: like Numba's, the cache trusts whoever may write its directory.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import pickle
import sys
import tempfile
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numba
from numba.core import caching, config

from ... import stream

if TYPE_CHECKING:
    from collections.abc import Callable

CACHE_SUBDIR = "fastinit"  # under NUMBA_CACHE_DIR
_HERE = pathlib.Path(__file__).resolve().parent
IN_TREE_ROOT = os.path.join(_HERE, "__pycache__")  # Numba's default place, beside the sources


class KernelCacheWarning(RuntimeWarning):
    """No kernel cache directory is writable: every process compiles its kernels."""


_lock = threading.Lock()
_state: dict[str, Any] = {}  # "stamp", "dir" (None: nothing writable), "cpu": once each


def source_stamp() -> str:
    """sha256 of ``stream.py``, this package's sources and the Numba version."""
    if "stamp" not in _state:
        h = hashlib.sha256(f"numba {numba.__version__}\n".encode())
        files = [pathlib.Path(stream.__file__)] + sorted(_HERE.glob("*.py"))
        for path in files:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        _state["stamp"] = h.hexdigest()
    return _state["stamp"]


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _user_cache_root() -> str:
    from numba.misc.appdirs import AppDirs
    return os.path.join(AppDirs(appname="fastinit", appauthor=False).user_cache_dir, "numba")


def cache_roots() -> list[str]:
    """The candidate cache roots, in order of preference (see the module docstring)."""
    roots = []
    if config.CACHE_DIR:
        roots.append(os.path.join(config.CACHE_DIR, CACHE_SUBDIR))
    roots.append(IN_TREE_ROOT)
    roots.append(_user_cache_root())
    return roots


def cache_dir() -> str | None:
    """This process's kernel cache directory, or None when nothing is writable.

    Decided once per process (a forked child keeps its parent's decision),
    with one :class:`KernelCacheWarning` when nothing is writable.
    """
    with _lock:
        if "dir" not in _state:
            _state["dir"] = None
            try:
                stamp = source_stamp()
            except OSError:  # sources not readable as files (a zip, frozen)
                roots, stamp = [], ""
            else:
                roots = cache_roots()
            for root in roots:
                path = os.path.join(root, f"stamp-{stamp[:24]}")
                if _writable(path):
                    _state["dir"] = path
                    break
            else:
                tried = ", ".join(roots) or "none (the sources are not files)"
                warnings.warn(
                    f"fastinit: no writable directory for the Numba kernel cache (tried: "
                    f"{tried}); each process compiles the kernels it uses (about a second "
                    "each). Set NUMBA_CACHE_DIR to a writable directory.",
                    KernelCacheWarning, stacklevel=2)
        return _state["dir"]


def use_cache_dir(path: str) -> None:
    """Use ``path`` as this process's cache directory (a warm-up helper: its parent's)."""
    with _lock:
        _state["dir"] = path


def cpu_tag() -> str:
    """A short hash of the target (triple, CPU name, features): Numba's magic tuple."""
    if "cpu" not in _state:
        from numba.core.registry import cpu_target
        magic = cpu_target.target_context.codegen().magic_tuple()
        _state["cpu"] = hashlib.sha256(repr(magic).encode()).hexdigest()[:12]
    return _state["cpu"]


class Locator(caching._CacheLocator):
    """Where the kernels are cached: :func:`cache_dir`, stamped by :func:`source_stamp`."""

    def __init__(self, path: str) -> None:
        self._path = path

    def ensure_cache_path(self) -> None:
        os.makedirs(self._path, exist_ok=True)

    def get_cache_path(self) -> str:
        return self._path

    def get_source_stamp(self) -> str:
        return source_stamp()

    def get_disambiguator(self) -> str:
        return cpu_tag()

    @classmethod
    def from_function(cls, py_func: Callable[..., Any], py_file: str | None) -> Locator | None:
        path = cache_dir()
        return None if path is None else cls(path)


# -- files that carry their own checksum ------------------------------------------------

_MAGIC = b"fastinit kernel cache 1\n"
_DIGEST = hashlib.sha256().digest_size


class DamagedCacheFile(OSError):
    """A cache file whose checksum does not match its contents (read as absent)."""


def _sealed(payload: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unsealed(blob: bytes, path: str) -> bytes:
    start = len(_MAGIC) + _DIGEST
    payload = blob[start:]
    if blob[:len(_MAGIC)] != _MAGIC or blob[len(_MAGIC):start] != hashlib.sha256(payload).digest():
        raise DamagedCacheFile(f"damaged kernel cache file (checksum): {path}")
    return payload


class CheckedFiles(caching.IndexDataCacheFile):
    """Numba's index and data files, each sealed with a sha256 of its contents.

    A damaged index reads as empty and a damaged data file as missing (Numba's
    ``load`` treats an ``OSError`` so): the kernel is compiled and saved again,
    replacing both files atomically.
    """

    def _load_index(self) -> dict[Any, Any]:
        try:
            with open(self._index_path, "rb") as f:
                blob = f.read()
        except FileNotFoundError:
            return {}
        try:
            version, stamp, overloads = pickle.loads(_unsealed(blob, self._index_path))
        except Exception:  # damaged, or written by another format: absent
            return {}
        fresh = version == self._version and stamp == self._source_stamp
        return overloads if fresh else {}

    def _save_index(self, overloads: dict[Any, Any]) -> None:
        self._write(self._index_path, self._dump((self._version, self._source_stamp, overloads)))

    def _load_data(self, name: str) -> Any:
        path = self._data_path(name)
        with open(path, "rb") as f:
            blob = f.read()
        return pickle.loads(_unsealed(blob, path))

    def _save_data(self, name: str, data: Any) -> None:
        self._write(self._data_path(name), self._dump(data))

    def _write(self, path: str, payload: bytes) -> None:
        with self._open_for_write(path) as f:  # a temporary name, then os.replace
            f.write(_sealed(payload))


class NotCached(Exception):
    """Raised by :meth:`KernelCache.load_overload` in ``load_only`` mode on a miss."""


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    """Numba's cache of compile results, located by :class:`Locator` alone.

    Numba's own locators (and ``NUMBA_CACHE_LOCATOR_CLASSES``) are not consulted:
    they know nothing of ``stream.py``.
    """

    def __init__(self, py_func: Callable[..., Any]) -> None:
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = Locator.from_function(py_func, None)
        # One index file per kernel name and CPU (the disambiguator).
        self._filename_base = self.get_filename_base(f"fastinit.{py_func.__qualname__}",
                                                     getattr(sys, "abiflags", ""))


def has_index(name: str) -> bool:
    """Whether kernel ``name`` has an index file in :func:`cache_dir` (for this CPU)."""
    where = cache_dir()
    if where is None:
        return False
    impl = _KernelCacheImpl.__new__(_KernelCacheImpl)  # Numba's own file naming
    impl._locator = Locator(where)
    base = impl.get_filename_base(f"fastinit.{name}", getattr(sys, "abiflags", ""))
    return os.path.isfile(os.path.join(where, base + ".nbi"))


class KernelCache(caching.FunctionCache):
    """A kernel's disk cache: Numba's cache logic, :class:`CheckedFiles`, :class:`Locator`.

    Loading skips the full refresh of Numba's target context (the import of
    all of Numba's typing and lowering registries, SciPy's BLAS included, about
    0.3 s): a cached kernel needs only Numba's runtime, which is initialised
    here. Numba still refreshes the context itself before it compiles anything.
    A kernel that cannot be rebuilt from its files is compiled again.

    ``load_only``: a miss raises :class:`NotCached` instead of letting Numba compile.
    """

    _impl_class = _KernelCacheImpl

    def __init__(self, py_func: Callable[..., Any]) -> None:
        super().__init__(py_func)
        self._cache_file = CheckedFiles(self._cache_path, self._impl.filename_base,
                                        self._impl.locator.get_source_stamp())
        self.load_only = False

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        result = self._load(sig, target_context)
        if result is None and self.load_only:
            raise NotCached
        return result

    def _load(self, sig: Any, target_context: Any) -> Any:
        from numba.core.runtime import nrt
        try:
            nrt.rtsys.initialize(target_context)
            return self._load_overload(sig, target_context)
        except Exception:  # an unusual Numba: the full path
            pass
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # not rebuildable: compiled again, and the files replaced
            return None


def _reset_after_fork() -> None:  # a lock held by another thread at fork stays held in the child
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
