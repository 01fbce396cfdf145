"""Compiling the CUDA sources: NVRTC with the bit-identity options, cached on disk.

fastinit does not compile through ``cupy.RawModule(code=...)``: CuPy appends
``-ftz=true`` after the caller's options (``_compile_with_cache_cuda`` in
``cupy/cuda/compiler.py``, CuPy 13 and 14), and NVRTC's last flag wins, so
float32 subnormals would be flushed. Here NVRTC (the library CuPy loaded, through
CuPy's own binding) gets exactly ``sources.OPTIONS`` and ``-arch``, the binary
is cached on disk, and ``cupy.RawModule(path=...)`` loads it: CuPy adds no
options and compiles nothing on that path.

The target is a cubin for the device's architecture (a same-major older one
if NVRTC does not know it), else PTX for the newest architecture NVRTC knows
(the driver compiles it, keeping its modifiers). The PTX of every binary is
kept beside it (``<key>.ptx``), so what a GPU runs can be read and checked.
Cache: ``$FASTINIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastinit/kernels``
(``~/.cache/fastinit/kernels``); the key covers the source, the options, the
target and the NVRTC version. Everything but :func:`function` runs without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType

from . import sources
from ._errors import INSTALL_HINT, GpuUnavailableError

FORMAT = 1  # bump when the cache layout or the meaning of a key changes

_lock = threading.Lock()
_targets: dict[int, str] = {}                # device id -> target
_modules: dict[tuple[str, str], Any] = {}     # (file name, target) -> RawModule
_functions: dict[tuple[str, str | None, str], Any] = {}  # (file, target, kernel) -> RawKernel
_fallback_dir: list[str] = []


@dataclass(frozen=True)
class Built:
    """What one NVRTC compilation produced."""

    binary: bytes   # cubin for "sm_XY", else the PTX
    ptx: bytes
    log: str


def nvrtc_binding() -> Any:
    """CuPy's NVRTC binding, checked to find the NVRTC library (GpuUnavailableError if not)."""
    from cupy_backends.cuda.libs import nvrtc
    try:
        nvrtc.getVersion()
    except Exception as exc:  # CuPy 14: DynamicLibNotFoundError; 13: RuntimeError
        raise GpuUnavailableError(
            f"fastinit compiles its CUDA kernels with NVRTC, which CuPy cannot load ({exc}). "
            f"{INSTALL_HINT}") from exc
    return nvrtc


def target(capability: int, archs: Iterable[int]) -> str:
    """The ``-arch`` value for compute capability ``capability`` (e.g. 90) given the
    architectures NVRTC supports: ``sm_XY`` (a cubin) or ``compute_XY`` (PTX)."""
    capability = int(capability)
    archs = sorted(int(a) for a in archs)
    if capability in archs:
        return f"sm_{capability}"
    same_major = [a for a in archs if a // 10 == capability // 10 and a < capability]
    if same_major:       # SASS runs on later minor versions of the same major
        return f"sm_{same_major[-1]}"
    older = [a for a in archs if a < capability]
    if not older:
        raise ValueError(f"NVRTC supports no architecture up to compute capability "
                         f"{capability}. Received: capability={capability}, NVRTC "
                         f"architectures {archs}")
    return f"compute_{older[-1]}"


def build(nvrtc: Any, source: str, name: str, arch: str) -> Built:
    """Compile ``source`` (file name ``name``) for ``arch`` with exactly ``sources.OPTIONS``.

    ``nvrtc`` is an NVRTC binding with CuPy's interface. RuntimeError with the
    compiler's log if NVRTC refuses the source.
    """
    options = list(sources.OPTIONS) + [f"-arch={arch}"]
    program = nvrtc.createProgram(source, name, (), ())
    try:
        try:
            nvrtc.compileProgram(program, options)
        except Exception as exc:
            raise RuntimeError(f"NVRTC could not compile {name} for {arch}:\n"
                               f"{nvrtc.getProgramLog(program)}") from exc
        ptx = nvrtc.getPTX(program)
        binary = nvrtc.getCUBIN(program) if arch.startswith("sm_") else ptx
        return Built(bytes(binary), bytes(ptx), nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)


def cache_dir() -> str:
    """Where compiled modules are kept (see the module docstring)."""
    path = os.environ.get("FASTINIT_CACHE_DIR")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        path = os.path.join(base, "fastinit", "kernels")
    return path


def key(nvrtc: Any, source: str, name: str, arch: str) -> str:
    """The cache key of one compilation (hex)."""
    text = json.dumps([FORMAT, name, source, list(sources.OPTIONS), arch,
                       list(nvrtc.getVersion())])
    return hashlib.sha256(text.encode()).hexdigest()


def cached(nvrtc: Any, source: str, name: str, arch: str) -> str:
    """The path of the binary for ``(source, arch)``, compiled now if not cached."""
    suffix = ".cubin" if arch.startswith("sm_") else ".ptx"
    stem = key(nvrtc, source, name, arch)
    for directory in (cache_dir(), *_fallback_dir):
        path = os.path.join(directory, stem + suffix)
        if os.path.exists(path):
            return path
    built = build(nvrtc, source, name, arch)
    try:
        return _store(cache_dir(), stem, suffix, built)
    except OSError:  # a read-only home: a private directory for this process
        if not _fallback_dir:
            _fallback_dir.append(tempfile.mkdtemp(prefix="fastinit_kernels_"))
        return _store(_fallback_dir[0], stem, suffix, built)


def _store(directory: str, stem: str, suffix: str, built: Built) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, stem + suffix)
    files = [(path, built.binary)]
    if suffix != ".ptx":
        files.insert(0, (os.path.join(directory, stem + ".ptx"), built.ptx))
    for target_path, data in files:  # the binary last: its presence means complete
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target_path)  # atomic: another process sees all or nothing
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def device_target(cupy: ModuleType, nvrtc: Any, device: int) -> str:
    """The target of CUDA device ``device`` (looked up once)."""
    arch = _targets.get(device)
    if arch is None:
        capability = cupy.cuda.Device(device).compute_capability
        arch = _targets[device] = target(capability, nvrtc.getSupportedArchs())
    return arch


def module(cupy: ModuleType, name: str, source: Callable[[], str]) -> tuple[Any, str]:
    """The loaded module of ``source`` for the current device: ``RawModule(path=...)``."""
    nvrtc = nvrtc_binding()
    arch = device_target(cupy, nvrtc, cupy.cuda.Device().id)
    loaded = _modules.get((name, arch))
    if loaded is None:
        with _lock:
            loaded = _modules.get((name, arch))
            if loaded is None:
                path = cached(nvrtc, source(), name, arch)
                loaded = _modules[(name, arch)] = cupy.RawModule(path=path)
    return loaded, arch


def function(cupy: ModuleType, name: str, source: Callable[[], str], kernel: str) -> Any:
    """The kernel ``kernel`` of file ``name`` (``source()`` gives its text), for the
    current device. CuPy loads the module once per device."""
    arch = _targets.get(cupy.cuda.Device().id)
    found = _functions.get((name, arch, kernel))
    if found is None:
        loaded, arch = module(cupy, name, source)
        found = _functions[(name, arch, kernel)] = loaded.get_function(kernel)
    return found


def forget() -> None:
    """Drop the in-process tables (the disk cache stays): for tests that swap CuPy."""
    _targets.clear()
    _modules.clear()
    _functions.clear()
