"""The CUDA sources through the backend's own compile pipeline, without a GPU.

``fastinit.backends.cuda._compile`` compiles with NVRTC (exactly
``sources.OPTIONS`` and ``-arch``), caches the binary with its PTX beside it,
and loads it with ``RawModule(path=...)``. The pipeline runs here with CuPy's
NVRTC binding where CuPy is installed (the ``cupy`` test extra) and with a
ctypes binding of the same interface on the NVRTC wheel (``nvidia-cuda-nvrtc``,
in the ``test`` extra on Linux); both run without a GPU or a driver. The PTX
of what the backend would load is checked for what docs/stream.md forbids:
fused multiply-adds, flush-to-zero, approximate division or square root.
Skipped where no NVRTC is found.
"""

import os
import re

import pytest

from fastinit.backends.cuda import _compile, sources as cuda_sources

from helpers import fake_cupy, nvrtc_ctypes

ARCHS = ("sm_80", "sm_90")


def _cupy_binding():
    fake_cupy.real_cupy_or_skip()
    return _compile.nvrtc_binding()  # CuPy's binding, exactly as the backend gets it


def _ctypes_binding():
    binding = nvrtc_ctypes.binding()
    if binding is None:
        pytest.skip("NVRTC not installed (pip install nvidia-cuda-nvrtc)")
    return binding


@pytest.fixture(params=["cupy", "ctypes"])
def nvrtc(request):
    """An NVRTC binding with CuPy's interface: CuPy's own, or ctypes on the NVRTC wheel."""
    return _cupy_binding() if request.param == "cupy" else _ctypes_binding()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTINIT_CACHE_DIR", str(tmp_path))
    return tmp_path


def _instructions(ptx):
    return "\n".join(line.split("//")[0] for line in ptx.decode().splitlines())


@pytest.mark.parametrize("arch", ARCHS)
def test_the_backend_pipeline_keeps_the_bit_identity_rules(nvrtc, cache, arch):
    path = _compile.cached(nvrtc, cuda_sources.source(), cuda_sources.KERNELS, arch)
    assert path.endswith(".cubin") and os.path.dirname(path) == str(cache)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x7fELF", "no SASS produced"
    with open(path[:-len(".cubin")] + ".ptx", "rb") as f:
        ptx = f.read()
    assert re.search(rb"\.target\s+" + arch.encode(), ptx)
    assert sorted(re.findall(r"\.entry\s+(\w+)", ptx.decode())) == sorted(
        cuda_sources.KERNEL_NAMES)
    code = _instructions(ptx)
    assert not re.search(r"\b(fma|mad)\.[a-z0-9.]*f(32|64)\b", code), "contracted multiply-add"
    assert ".ftz" not in code, "flush-to-zero"
    assert ".approx" not in code and ".full" not in code, "approximate division or sqrt"
    assert re.search(r"\bdiv\.rn\.f32\b", code) and re.search(r"\bsqrt\.rn\.f32\b", code)
    assert ".local" not in code, "arrays spilled to local memory"
    for vec in ("st.v4.f32", "st.v4.u16", "st.v2.f64"):  # full-width stores
        assert vec in code


def test_householder_kernels_keep_float32_subnormals(nvrtc, cache):
    source = cuda_sources.read(cuda_sources.HOUSEHOLDER)
    built = _compile.build(nvrtc, source, cuda_sources.HOUSEHOLDER, "sm_90")
    assert built.binary[:4] == b"\x7fELF"
    code = _instructions(built.ptx)
    assert sorted(re.findall(r"\.entry\s+(\w+)", code)) == sorted(cuda_sources.HOUSEHOLDER_KERNELS)
    # libdevice's hypot brings f64 fma and rsqrt.approx.ftz.f64 (documented: "up to rounding");
    # no float32 instruction may flush subnormals.
    assert not re.search(r"\.ftz\.f32\b", code) and "mul.rn.f32" in code
    assert f"HOUSEHOLDER_THREADS {cuda_sources.HOUSEHOLDER_THREADS}" in source


def test_the_checks_see_what_cupy_raw_module_would_compile(cache):
    """Negative controls: RawModule(code=...)'s trailing -ftz=true, and --fmad=true."""
    binding = _ctypes_binding()
    for extra, pattern in (("-ftz=true", r"\bmul\.rn\.ftz\.f32\b"),
                           ("--fmad=true", r"\bfma\.rn\.f(32|64)\b")):
        prog = binding.createProgram(cuda_sources.source(), cuda_sources.KERNELS, (), ())
        try:
            binding.compileProgram(prog, list(cuda_sources.OPTIONS) + [extra, "-arch=sm_90"])
            assert re.search(pattern, _instructions(binding.getPTX(prog)))
        finally:
            binding.destroyProgram(prog)


def test_targets():
    archs = (75, 80, 86, 89, 90, 100, 120, 121)
    assert _compile.target(90, archs) == "sm_90"
    assert _compile.target("86", archs) == "sm_86"
    assert _compile.target(87, archs) == "sm_86"        # same major, older minor: SASS runs
    assert _compile.target(130, archs) == "compute_121"  # newer major: PTX for the driver
    with pytest.raises(ValueError, match="Received: capability=70"):
        _compile.target(70, archs)


def test_cache_is_keyed_and_reused(cache, monkeypatch):
    binding = _ctypes_binding()
    first = _compile.cached(binding, cuda_sources.source(), cuda_sources.KERNELS, "sm_90")
    calls = []
    monkeypatch.setattr(_compile, "build", lambda *a: calls.append(a))
    assert _compile.cached(binding, cuda_sources.source(), cuda_sources.KERNELS, "sm_90") == first
    assert not calls
    assert _compile.key(binding, "x", "a.cu", "sm_90") != _compile.key(binding, "y", "a.cu",
                                                                       "sm_90")
    assert _compile.key(binding, "x", "a.cu", "sm_90") != _compile.key(binding, "x", "a.cu",
                                                                       "sm_80")
    assert not [p for p in os.listdir(cache) if p.endswith(".tmp")]


def test_read_only_cache_falls_back_to_a_private_directory(tmp_path, monkeypatch):
    binding = _ctypes_binding()
    monkeypatch.setenv("FASTINIT_CACHE_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(_compile, "_fallback_dir", [])
    path = _compile.cached(binding, "extern \"C\" __global__ void k() {}", "k.cu", "compute_80")
    assert path.endswith(".ptx") and os.path.exists(path) and str(tmp_path) not in path


def test_compile_errors_carry_the_log():
    binding = _ctypes_binding()
    with pytest.raises(RuntimeError, match="NVRTC could not compile bad.cu for sm_90"):
        _compile.build(binding, "this is not C++", "bad.cu", "sm_90")


def test_kernel_names_are_complete():
    assert len(cuda_sources.FILL_KERNELS) == 12
    source = cuda_sources.source()
    assert f'#include "{cuda_sources.HEADER}"' not in source  # inlined
    assert "#define FASTINIT_STREAM_CUH" in source
    for name in cuda_sources.KERNEL_NAMES:
        assert name in source
    assert cuda_sources.fill_kernel_name(2, "bfloat16") == "fastinit_fill_truncated_normal_bf16"


def test_cupy_loads_the_cached_binary_without_options(cache):
    nvrtc = _cupy_binding()
    cupy = fake_cupy.real_cupy_or_skip()
    path = _compile.cached(nvrtc, cuda_sources.source(), cuda_sources.KERNELS, "sm_90")
    module = cupy.RawModule(path=path)  # what _compile.module does; loading needs a GPU
    assert module.options == () and module.file_path == path and module.code is None
