"""fastinit against CuPy's API: the pinned table, the stand-in, and real CuPy where installed.

Without a GPU, real CuPy imports, and so do its compiler module, its NVRTC
binding and (with their libraries) its cuSOLVER/cuBLAS bindings. Here:
every ``cupy.…`` call of fastinit's GPU modules is in the pinned table
(``helpers.cupy_api``); the stand-in declares exactly those parameters; and
with CuPy installed (the ``cupy`` test extra: CI), CuPy declares them too, the
version is the one the stand-in models, and the parts of fastinit's GPU path
that need no device run on real CuPy. The real-CuPy tests skip without CuPy.
"""

import glob
import importlib.util
import inspect
import os
import re

import numpy as np
import pytest

import fastinit
from helpers import cupy_api, fake_cupy

ROOT = os.path.dirname(fastinit.__file__)
GPU_MODULES = sorted(glob.glob(os.path.join(ROOT, "backends", "cuda", "*.py"))) + [
    os.path.join(ROOT, "gpu.py"), os.path.join(ROOT, "initializers", "structured.py")]


def _source(name):
    with open(os.path.join(ROOT, "backends", "cuda", name), encoding="utf-8") as f:
        return f.read()


def test_every_cupy_call_of_fastinit_is_pinned():
    chains = cupy_api.used_by_fastinit(GPU_MODULES, aliases=("cupy", "xp"))
    assert "cupy.RawModule" in chains and "cupy.may_share_memory" in chains
    unknown = {c for c in chains if c not in cupy_api.SIGNATURES and c not in cupy_api.ATTRIBUTES}
    assert not unknown, f"CuPy calls missing from helpers.cupy_api: {sorted(unknown)}"
    # The bindings fastinit reaches through other names: NVRTC, cuSOLVER, cuBLAS, handles.
    used = {f"cupy_backends.cuda.libs.nvrtc.{n}" for n in
            re.findall(r"\bnvrtc\.(\w+)\(", _source("_compile.py"))}
    orthogonal = _source("orthogonal.py")
    used |= {f"cupy.cuda.cusolver.{t}{n}" for n in re.findall(r'_solver\("(\w+)"', orthogonal)
             for t in "sd"}
    used |= {f"cupy.cuda.cublas.{n}" for n in re.findall(r"\bcublas\.(\w+)", orthogonal)}
    used |= {f"cupy.cuda.cublas.{t}trsm" for t in "sd"} if '"trsm"' in orthogonal else set()
    used |= {f"cupy.cuda.device.{n}" for n in re.findall(r"\bdevice\.(get_\w+)", orthogonal)}
    assert used - cupy_api.SIGNATURES.keys() - cupy_api.ATTRIBUTES == set()
    assert len(used) > 15


@pytest.mark.parametrize("name", sorted(cupy_api.SIGNATURES))
def test_the_stand_in_declares_the_pinned_parameters(cupy, name):
    fake = cupy_api.resolve(name, root=cupy)
    assert cupy_api.of(fake, docstring=False) == cupy_api.parse(cupy_api.SIGNATURES[name])


def test_the_stand_in_is_keyword_only_and_strict(cupy):
    with pytest.raises(TypeError, match="0 positional|positional argument"):
        cupy.RawModule("extern \"C\" __global__ void k() {}")
    with pytest.raises(TypeError, match="expected tuple"):
        cupy.RawModule(code="", options=["-ftz=false"])
    assert cupy.empty(3).dtype == np.float64
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        cupy.empty(3)[...] = np.zeros(3)


# -- real CuPy (the cupy test extra) ---------------------------------------------------------


@pytest.fixture
def real_cupy():
    return fake_cupy.real_cupy_or_skip()


def test_the_stand_in_models_the_installed_version(real_cupy):
    assert real_cupy.__version__.split(".")[:2] == fake_cupy.VERSION.split(".")[:2], (
        f"the stand-in models CuPy {fake_cupy.VERSION}: review helpers.fake_cupy and "
        f"helpers.cupy_api for CuPy {real_cupy.__version__}")


def _real_parameters(name):
    try:
        return cupy_api.of(cupy_api.resolve(name))
    except ImportError:  # cuSOLVER/cuBLAS bindings without their libraries: read the binary
        library = name.split(".")[2]
        spec = importlib.util.find_spec(f"cupy_backends.cuda.libs.{library}")
        found = cupy_api.from_binary(spec.origin, name.rsplit(".", 1)[1])
        assert found is not None, f"{name}: no embedded signature in {spec.origin}"
        return found


@pytest.mark.parametrize("name", sorted(cupy_api.SIGNATURES))
def test_cupy_declares_the_pinned_parameters(real_cupy, name):
    real, pinned = _real_parameters(name), cupy_api.parse(cupy_api.SIGNATURES[name])
    if name in cupy_api.KEYWORD_ONLY_IN_FACT:
        real, pinned = [p[::2] for p in real], [p[::2] for p in pinned]  # names and defaults
    assert real == pinned


def test_cupy_raw_module_is_keyword_only(real_cupy):
    with pytest.raises(TypeError, match="0 positional"):
        real_cupy.RawModule("extern \"C\" __global__ void k() {}")


def test_cupy_still_appends_ftz(real_cupy):
    """Why fastinit compiles with NVRTC itself: CuPy's own pipeline ends with -ftz=true."""
    from cupy.cuda import compiler
    assert "'-ftz=true'" in inspect.getsource(compiler._compile_with_cache_cuda)


def test_cupy_cublas_constants(real_cupy):
    try:
        from cupy.cuda import cublas
    except ImportError:
        pytest.skip("cuBLAS is not installed (the cupy test extra reads its binding's file)")
    assert {k: getattr(cublas, k) for k in cupy_api.CUBLAS_CONSTANTS} == cupy_api.CUBLAS_CONSTANTS


def test_bfloat16_rule_matches_cupy(real_cupy):
    from fastinit.backends.cuda import _compat
    dlpack = importlib.import_module("cupy._core.dlpack")
    assert _compat.has_bfloat16(real_cupy) == (getattr(dlpack, "bfloat16", None) is not None)


def test_output_views_on_real_cupy(real_cupy, monkeypatch):
    """The parts of fastinit's GPU routing that need no device, on real CuPy arrays."""
    from fastinit.backends.cuda import _compat, _memory, _output
    monkeypatch.setattr(real_cupy.cuda.runtime, "pointerGetAttributes",
                        lambda ptr: type("Attributes", (), {"device": 0})())
    host = np.zeros((6, 4), np.uint16)  # stands for device memory: nothing reads it here
    interface = dict(host.__array_interface__, version=3, stream=None)
    producer = type("Producer", (), {"__cuda_array_interface__": interface,
                                     "dtype": "bfloat16"})()
    view, name, stream, sync = _output.as_cupy(producer)
    assert isinstance(view, real_cupy.ndarray) and view.data.ptr == host.ctypes.data
    assert (view.dtype, name, stream, sync) == (np.uint16, "bfloat16", None, True)
    if _compat.has_bfloat16(real_cupy):
        from fastinit._dtypes import bfloat16
        bits, name = _output._bits(view.view(bfloat16()))
        assert bits.dtype == np.uint16 and name == "bfloat16"
    assert real_cupy.may_share_memory(view, view.reshape(-1)[5:])
    assert not real_cupy.may_share_memory(view[:3], view[3:])
    assert _compat.external_stream(real_cupy, 0x1234, 0).ptr == 0x1234
    allocator = real_cupy.cuda.memory.PythonFunctionAllocator(lambda size, device: 0,
                                                              lambda ptr, device: None)
    with real_cupy.cuda.using_allocator(allocator.malloc):
        pass
    assert _memory.out_of_memory_errors(real_cupy)[0] is real_cupy.cuda.memory.OutOfMemoryError
