"""The CUDA sources compile with NVRTC under the bit-identity flags (no GPU needed).

NVRTC comes from its pip package (``nvidia-cuda-nvrtc``, in the ``test`` and
``cuda-check`` extras on Linux) and runs without a GPU or a driver. The module
is compiled exactly as the CuPy backend compiles it (same source, header
inlined, same options) for the architectures of current data-centre GPUs, and
the PTX is checked for what the rules of docs/stream.md forbid: fused
multiply-adds, flush-to-zero and approximate division or square root.
Skipped when NVRTC is not installed.
"""

import ctypes
import ctypes.util
import glob
import os
import re

import pytest

from fastinit.backends.cuda import sources as cuda_sources

ARCHS = ("sm_80", "sm_90")


def _find_nvrtc():
    candidates = []
    try:
        import nvidia
        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
            candidates += sorted(glob.glob(os.path.join(root, "*", "bin", "nvrtc64_*.dll")))
    except ImportError:
        pass
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for path in candidates:
        if "builtins" in os.path.basename(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def nvrtc():
    lib = _find_nvrtc()
    if lib is None:
        pytest.skip("NVRTC not installed (pip install nvidia-cuda-nvrtc)")
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def _check(lib, rc, what):
    if rc != 0:
        raise AssertionError(f"{what}: {lib.nvrtcGetErrorString(rc).decode()}")


def compile_module(lib, options, source=None, name=cuda_sources.KERNELS):
    """(ok, log, ptx, cubin) of the backend's source (or ``source``) under ``options``."""
    source = cuda_sources.source() if source is None else source
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(),
                                       0, None, None),
           "nvrtcCreateProgram")
    try:
        encoded = [o.encode() for o in options]
        rc = lib.nvrtcCompileProgram(prog, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        log = log.value.decode(errors="replace")
        if rc != 0:
            return False, log, None, None
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(prog, ptx), "nvrtcGetPTX")
        cubin = None
        if any(o.startswith("-arch=sm_") for o in options):
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
            cubin = ctypes.create_string_buffer(size.value)
            _check(lib, lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            cubin = cubin.raw
        return True, log, ptx.value.decode(), cubin
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _instructions(ptx):
    body = "\n".join(line.split("//")[0] for line in ptx.splitlines())
    return body


@pytest.mark.parametrize("arch", ARCHS)
def test_compiles_under_the_bit_identity_flags(nvrtc, arch):
    ok, log, ptx, cubin = compile_module(nvrtc, cuda_sources.OPTIONS + (f"-arch={arch}",))
    assert ok, f"NVRTC failed for {arch}:\n{log}"
    assert cubin, "no SASS produced"
    entries = re.findall(r"\.entry\s+(\w+)", ptx)
    assert sorted(entries) == sorted(cuda_sources.KERNEL_NAMES)
    code = _instructions(ptx)
    assert not re.search(r"\b(fma|mad)\.[a-z0-9.]*f(32|64)\b", code), "contracted multiply-add"
    assert ".ftz" not in code, "flush-to-zero"
    assert ".approx" not in code and ".full" not in code, "approximate division or sqrt"
    assert re.search(r"\bdiv\.rn\.f32\b", code) and re.search(r"\bsqrt\.rn\.f32\b", code)
    assert ".local" not in code, "arrays spilled to local memory"
    for vec in ("st.v4.f32", "st.v4.u16", "st.v2.f64"):  # full-width stores
        assert vec in code


@pytest.mark.parametrize("arch", ARCHS)
def test_householder_kernels_compile(nvrtc, arch):
    source = cuda_sources.read(cuda_sources.HOUSEHOLDER)
    ok, log, ptx, cubin = compile_module(nvrtc, cuda_sources.OPTIONS + (f"-arch={arch}",),
                                         source, cuda_sources.HOUSEHOLDER)
    assert ok, f"NVRTC failed for {arch}:\n{log}"
    assert cubin
    assert sorted(re.findall(r"\.entry\s+(\w+)", ptx)) == sorted(cuda_sources.HOUSEHOLDER_KERNELS)
    assert f"HOUSEHOLDER_THREADS {cuda_sources.HOUSEHOLDER_THREADS}" in source


def test_the_ptx_check_sees_contraction(nvrtc):
    """Negative control: with --fmad=true the same source does contain FMAs."""
    options = tuple(o for o in cuda_sources.OPTIONS if not o.startswith("--fmad"))
    ok, log, ptx, _ = compile_module(nvrtc, options + ("--fmad=true", "-arch=compute_80"))
    assert ok, log
    assert re.search(r"\bfma\.rn\.f(32|64)\b", _instructions(ptx))


def test_kernel_names_are_complete():
    assert len(cuda_sources.FILL_KERNELS) == 12
    source = cuda_sources.source()
    assert f'#include "{cuda_sources.HEADER}"' not in source  # inlined
    assert "#define FASTINIT_STREAM_CUH" in source
    for name in cuda_sources.KERNEL_NAMES:
        assert name in source
    assert cuda_sources.fill_kernel_name(2, "bfloat16") == "fastinit_fill_truncated_normal_bf16"
