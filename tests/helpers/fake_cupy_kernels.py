"""The stand-in CuPy's modules and kernels: real NVRTC, real PTX, NumPy in place of the GPU.

``RawModule(code=..., options=...)`` compiles as CuPy does, options followed by
``-ftz=true`` and ``-arch``; ``RawModule(path=...)`` loads what fastinit
compiled (the PTX beside a cubin). A launch is checked against the PTX of its
entry (the number, size and kind of every parameter; grid and block tuples),
refused if the PTX flushes float32 subnormals (``.ftz.f32``: the results would
not be the CPU's), logged with its stream, and computed by NumPy: the fill
kernels by the NumPy backend, Philox by ``fastinit.random``, the Householder
kernel by a transcription.
"""

import ctypes
import re
import sys
import types

import numpy as np

from . import fake_cupy, nvrtc_ctypes


def nvrtc_module(state):
    """``cupy_backends.cuda.libs.nvrtc``: the real NVRTC (ctypes), or one that fails to load."""
    binding = nvrtc_ctypes.binding() if state.nvrtc == "real" else None
    nvrtc = types.ModuleType("cupy_backends.cuda.libs.nvrtc")
    nvrtc.NVRTCError = nvrtc_ctypes.NVRTCError
    for name in ("getVersion", "getSupportedArchs", "createProgram", "compileProgram",
                 "getPTX", "getCUBIN", "getProgramLog", "destroyProgram"):
        if binding is not None:
            setattr(nvrtc, name, getattr(binding, name))
        else:
            def missing(*args, _name=name):
                raise RuntimeError("CuPy failed to load libnvrtc.so.12: the stand-in models "
                                   f"CuPy without NVRTC ({_name})")
            setattr(nvrtc, name, missing)
    return nvrtc


class RawModule:
    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, jitify=None):
        if (code is None) == (path is None):
            raise TypeError("Exactly one of `code` and `path` keyword arguments must be given.")
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got "
                            f"{type(options).__name__})")
        self.code, self.file_path = code, path
        self.options = options if code is not None else ()  # CuPy drops them for path=
        self.backend = backend if code is not None else "nvcc"
        self._ptx = None

    def _load(self):
        if self._ptx is None:
            if self.code is not None:   # CuPy's pipeline (_compile_with_cache_cuda)
                nvrtc = sys.modules["cupy_backends.cuda.libs.nvrtc"]
                arch = f"-arch=compute_{fake_cupy.state().capability}"
                prog = nvrtc.createProgram(self.code, "kern.cu", (), ())
                try:
                    nvrtc.compileProgram(prog, list(self.options) + ["-ftz=true", arch])
                    self._ptx = nvrtc.getPTX(prog).decode()
                finally:
                    nvrtc.destroyProgram(prog)
            else:
                self._ptx = _read_module(self.file_path)
        return self._ptx

    def get_function(self, name):
        fake_cupy.state().kernel("module-load", [])  # needs a driver, as cuModuleLoad does
        ptx = self._load()
        entries = parse_entries(ptx)
        if name not in entries:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found ({name})")
        return RawKernel(name, entries[name], _IMPLEMENTATIONS[_family(name)])


def _read_module(path):
    if path.endswith(".cubin"):
        with open(path, "rb") as f:
            cubin = f.read()
        assert cubin[:4] == b"\x7fELF", f"{path} is not a cubin"
        path = path[:-len(".cubin")] + ".ptx"  # fastinit keeps the PTX beside it
    with open(path, encoding="ascii") as f:
        return f.read()


def parse_entries(ptx):
    """``{entry name: (parameter types, body)}`` of a PTX module."""
    entries = {}
    found = list(re.finditer(r"\.entry\s+(\w+)\s*\(([^)]*)\)", ptx))
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(ptx)
        params = re.findall(r"\.param\s+\.(\w+)", match.group(2))
        entries[match.group(1)] = (params, ptx[match.end():end])
    return entries


def _check_argument(kernel, i, param, arg):
    size = int(re.sub(r"\D", "", param)) // 8
    if isinstance(arg, fake_cupy.ndarray):
        ok = size == 8 and param[0] in "ub"
    elif isinstance(arg, np.ndarray) and arg.ndim:
        raise TypeError(f"{kernel}: argument {i} is a host numpy.ndarray")
    elif isinstance(arg, (np.generic, np.ndarray)):
        arg = np.asarray(arg)
        ok = arg.dtype.itemsize == size and (arg.dtype.kind == "f") == (param[0] == "f")
    elif isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise TypeError(f"{kernel}: unsupported argument {i} of type {type(arg).__name__}")
    else:  # CuPy passes a Python int as int64, a float as double
        ok = size == 8 and isinstance(arg, float) == (param[0] == "f")
    if not ok:
        raise TypeError(f"{kernel}: argument {i} ({type(arg).__name__} "
                        f"{getattr(arg, 'dtype', '')}) does not match PTX parameter .{param}")


class RawKernel:
    def __init__(self, name, entry, implementation):
        self.name, (self.params, self.body), self.implementation = name, entry, implementation

    def __call__(self, grid, block, args, **kwargs):
        unknown = set(kwargs) - {"shared_mem", "stream", "enable_cooperative_groups"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        stream = kwargs.get("stream")
        for what, dims in (("grid", grid), ("block", block)):
            if not isinstance(dims, tuple):
                raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got "
                                f"{type(dims).__name__})")
            if not 1 <= len(dims) <= 3 or any(int(d) < 1 for d in dims):
                raise ValueError(f"invalid {what} {dims}")
        if int(np.prod(block)) > 1024:
            raise ValueError(f"block {block} has more than 1024 threads")
        if not isinstance(args, (tuple, list)) or len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments. Received: {args}")
        for i, (param, arg) in enumerate(zip(self.params, args)):
            _check_argument(self.name, i, param, arg)
        if re.search(r"\.ftz\.f32\b", self.body):
            raise AssertionError(f"{self.name}: the PTX flushes float32 subnormals (.ftz); its "
                                 "values would not be the CPU's")
        arrays = [a for a in args if isinstance(a, fake_cupy.ndarray)]
        fake_cupy.state().kernel(self.name, arrays,
                                 None if stream is None else getattr(stream, "ptr", stream))
        self.implementation(self.name, [a.view(np.ndarray) if isinstance(a, fake_cupy.ndarray)
                                        else a for a in args], block)


# -- the kernels, in NumPy ------------------------------------------------------------------

_OUT = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "f64": np.float64}


def _fill(name, args, block):
    from fastinit import backends, stream
    from fastinit._dtypes import bfloat16
    from fastinit.backends import numpy_backend
    from fastinit.backends.cuda import sources
    dist_name, out_code = name[len("fastinit_fill_"):].rsplit("_", 1)
    out, n_items, n_runs, run_length, starts, start0, per_run, k0, k1, proposal, *params = args
    n_runs, run_length, start0 = int(n_runs), int(run_length), int(start0)
    assert out.dtype == _OUT[out_code] and out.size == n_runs * run_length
    wide = out_code == "f64"
    assert all(p.dtype == (np.float64 if wide else np.float32) for p in params)
    run_starts = np.asarray(starts, np.int64) if n_runs > 1 else np.array([start0])
    assert n_runs == 1 and int(starts) == 0 or run_starts.size == n_runs
    assert run_starts[0] == start0
    lanes = stream.LANES_F64 if wide else stream.LANES_F32
    expected = ((start0 + run_length - 1) // lanes - start0 // lanes + 1 if n_runs == 1
                else (run_length + lanes - 2) // lanes + 1)
    assert int(per_run) == expected and int(n_items) == n_runs * expected
    loc, scale, lo, hi, alpha, beta, rate, m2, sign = (float(p) for p in params)
    dist = backends.Distribution(sources.DISTRIBUTIONS.index(dist_name), wide, loc, scale,
                                 lo, hi, int(proposal), alpha, beta, rate, m2, sign)
    view = out.view(bfloat16()) if out_code == "bf16" else out
    numpy_backend.fill(dist, (int(k0), int(k1)), view, run_starts, run_length)


def _raw_words(name, args, block):
    from fastinit import random as fr
    out, n_items, start, n, round_, k0, k1 = args
    p = np.arange(int(start), int(start) + int(n), dtype=np.uint64)
    b = p // np.uint64(4)
    assert int(n_items) == int((int(start) + int(n) - 1) // 4 - int(start) // 4 + 1)
    counters = np.stack([b & np.uint64(0xFFFFFFFF), b >> np.uint64(32),
                         np.full_like(b, int(round_)), np.zeros_like(b)], axis=-1)
    words = fr.philox4x32_10(counters.astype(np.uint32), np.array([k0, k1], np.uint32))
    out[:] = words[np.arange(int(n)), (p % np.uint64(4)).astype(np.int64)]


def _philox(name, args, block):
    from fastinit import random as fr
    counters, keys, out, n = args
    n = int(n)
    out.reshape(-1, 4)[:n] = fr.philox4x32_10(counters.reshape(-1, 4)[:n],
                                              keys.reshape(-1, 2)[:n])


def _householder(name, args, block):
    """kernels/fastinit_householder.cu on an F-ordered ``(m, n)`` matrix, LAPACK's larfg rule."""
    pointer, lda, m, n, tau, sign = args
    from fastinit.backends.cuda import sources
    assert block == (sources.HOUSEHOLDER_THREADS,) and int(lda) == int(m)
    a = column_major(pointer.ctypes.data, (int(m), int(n)), pointer.dtype)
    for k in range(int(n)):
        x = a[k:, k]
        alpha = float(x[0])
        xnorm = float(np.sqrt(np.sum(x[1:].astype(np.float64) ** 2)))
        beta, t, s = alpha, 0.0, 1.0
        if xnorm != 0.0:
            beta = -np.copysign(np.hypot(alpha, xnorm), alpha)
            t = (beta - alpha) / beta
            s = 1.0 / (alpha - beta)
        x[0], tau[k], sign[k] = beta, t, 1.0 if beta >= 0 else -1.0
        x[1:] *= a.dtype.type(s)


def column_major(address, shape, dtype):
    """The F-ordered array of ``shape`` at ``address``: what a kernel sees of a pointer."""
    count = int(np.prod(shape))
    memory = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
    return np.frombuffer(memory, dtype, count).reshape(shape, order="F")


def _family(name):
    if name.startswith("fastinit_fill_"):
        return "fill"
    return name


_IMPLEMENTATIONS = {"fill": _fill, "fastinit_raw_words": _raw_words,
                    "fastinit_philox": _philox, "fastinit_householder_f32": _householder,
                    "fastinit_householder_f64": _householder}
