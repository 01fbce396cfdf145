"""A stand-in for CuPy on the CPU, for testing fastinit's GPU plumbing without a GPU.

Arrays are NumPy arrays of a subclass that exports ``__cuda_array_interface__``
(so fastinit routes them to its GPU path); the CUDA fill kernels are replaced
by the NumPy backend (:func:`install`); the cuSOLVER and cuBLAS routines that
fastinit calls (``geqrf``, ``orgqr``, ``potrf``, ``trsm``) by the LAPACK/BLAS
routines they mirror (same column-major arguments, on host pointers), and the
Householder kernel by a NumPy transcription. What this checks is the Python
side of the GPU path: routing, allocation, regions, strided outputs, writes of
host values, bfloat16 bits, the initializers' GPU branches and the arguments
of the solver calls. The CUDA kernels themselves, the real libraries and
streams are only exercised by tests/test_gpu.py on a real GPU.
"""

import ctypes
import sys
import types

import numpy as np


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    @property
    def __cuda_array_interface__(self):
        interface = dict(self.__array_interface__)
        interface["version"] = 3
        return interface

    @property
    def device(self):
        return Device(0)

    @property
    def data(self):  # CuPy's MemoryPointer: .ptr
        return types.SimpleNamespace(ptr=self.ctypes.data)

    def get(self):
        return asnumpy(self)


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


def _wrap(array):
    return np.asarray(array).view(ndarray)


def empty(shape, dtype=np.float32, order="C"):
    return _wrap(np.empty(shape, dtype=dtype, order=order))


def asarray(values, dtype=None):
    return _wrap(np.array(values, dtype=dtype, copy=True))


def asnumpy(array):
    return np.array(np.asarray(array).view(np.ndarray), copy=True)


# -- cuSOLVER / cuBLAS as the LAPACK / BLAS routines they mirror ----------------------------

_INT = ctypes.c_int
_P = ctypes.c_void_p
_CHAR = ctypes.c_char_p


def _routine(name, argtypes):
    import scipy.linalg.cython_blas as cython_blas
    import scipy.linalg.cython_lapack as cython_lapack
    module = cython_blas if name[1:] in ("trsm",) else cython_lapack
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                   ctypes.c_char_p]
    return ctypes.CFUNCTYPE(None, *argtypes)(get_pointer(capsule, get_name(capsule)))


def _ints(*values):
    return [ctypes.byref(_INT(v)) for v in values]


def _set_info(dev_info, info):
    ctypes.c_int.from_address(dev_info).value = info.value


def _solver_module():
    solver = types.SimpleNamespace()
    for t in "sd":
        def geqrf(handle, m, n, a, lda, tau, work, lwork, dev_info, t=t):
            info = _INT(0)
            query = (ctypes.c_double if t == "d" else ctypes.c_float)(0)
            f = _routine(t + "geqrf", [ctypes.POINTER(_INT)] * 2 + [_P, ctypes.POINTER(_INT),
                                                                     _P, _P, ctypes.POINTER(_INT),
                                                                     ctypes.POINTER(_INT)])
            f(*_ints(m, n), a, *_ints(lda), tau, ctypes.addressof(query), *_ints(-1),
              ctypes.byref(info))
            buffer = np.empty(max(1, int(query.value)), np.float64 if t == "d" else np.float32)
            f(*_ints(m, n), a, *_ints(lda), tau, buffer.ctypes.data, *_ints(buffer.size),
              ctypes.byref(info))
            _set_info(dev_info, info)

        def orgqr(handle, m, n, k, a, lda, tau, work, lwork, dev_info, t=t):
            info = _INT(0)
            query = (ctypes.c_double if t == "d" else ctypes.c_float)(0)
            f = _routine(t + "orgqr", [ctypes.POINTER(_INT)] * 3 + [_P, ctypes.POINTER(_INT),
                                                                     _P, _P, ctypes.POINTER(_INT),
                                                                     ctypes.POINTER(_INT)])
            f(*_ints(m, n, k), a, *_ints(lda), tau, ctypes.addressof(query), *_ints(-1),
              ctypes.byref(info))
            buffer = np.empty(max(1, int(query.value)), np.float64 if t == "d" else np.float32)
            f(*_ints(m, n, k), a, *_ints(lda), tau, buffer.ctypes.data, *_ints(buffer.size),
              ctypes.byref(info))
            _set_info(dev_info, info)

        def potrf(handle, uplo, n, a, lda, work, lwork, dev_info, t=t):
            info = _INT(0)
            f = _routine(t + "potrf", [_CHAR, ctypes.POINTER(_INT), _P, ctypes.POINTER(_INT),
                                       ctypes.POINTER(_INT)])
            f(b"U" if uplo == 1 else b"L", *_ints(n), a, *_ints(lda), ctypes.byref(info))
            _set_info(dev_info, info)

        setattr(solver, t + "geqrf", geqrf)
        setattr(solver, t + "orgqr", orgqr)
        setattr(solver, t + "potrf", potrf)
        setattr(solver, t + "geqrf_bufferSize", lambda handle, m, n, a, lda: 64 * n)
        setattr(solver, t + "orgqr_bufferSize", lambda handle, m, n, k, a, lda, tau: 64 * n)
        setattr(solver, t + "potrf_bufferSize", lambda handle, uplo, n, a, lda: 1)
    return solver


def _blas_module():
    blas = types.SimpleNamespace(CUBLAS_FILL_MODE_LOWER=0, CUBLAS_FILL_MODE_UPPER=1,
                                 CUBLAS_SIDE_LEFT=0, CUBLAS_SIDE_RIGHT=1, CUBLAS_OP_N=0,
                                 CUBLAS_OP_T=1, CUBLAS_OP_C=2, CUBLAS_DIAG_NON_UNIT=0,
                                 CUBLAS_DIAG_UNIT=1)
    for t in "sd":
        def trsm(handle, side, uplo, trans, diag, m, n, alpha, a, lda, b, ldb, t=t):
            f = _routine(t + "trsm", [_CHAR] * 4 + [ctypes.POINTER(_INT)] * 2 +
                         [_P, _P, ctypes.POINTER(_INT), _P, ctypes.POINTER(_INT)])
            f(b"LR"[side:side + 1], b"LU"[uplo:uplo + 1], b"NTC"[trans:trans + 1],
              b"NU"[diag:diag + 1], *_ints(m, n), alpha, a, *_ints(lda), b, *_ints(ldb))
        setattr(blas, t + "trsm", trsm)
    return blas


class RawModule:
    """The Householder kernel (kernels/fastinit_householder.cu), transcribed to NumPy."""

    def __init__(self, code, options=()):
        assert "householder_columns" in code

    def get_function(self, name):
        def householder(grid, block, args):
            a, lda, m, n, tau, sign = args
            assert lda == m and np.asarray(a).flags.f_contiguous and block == (256,)
            a = np.asarray(a)
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
        assert name.startswith("fastinit_householder_")
        return householder


def module():
    """The fake ``cupy`` module."""
    cupy = types.ModuleType("cupy")
    cupy.ndarray = ndarray
    cupy.empty = empty
    cupy.asarray = asarray
    cupy.asnumpy = asnumpy
    cupy.moveaxis = np.moveaxis
    cupy.shares_memory = np.shares_memory
    cupy.where = lambda *a: _wrap(np.where(*a))
    cupy.diagonal = np.diagonal
    cupy.isfinite = np.isfinite
    cupy.RawModule = RawModule
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                    cudaDevAttrMultiProcessorCount=16,
                                    deviceGetAttribute=lambda attribute, device: 132)
    memory = types.SimpleNamespace(OutOfMemoryError=MemoryError)
    device = types.SimpleNamespace(get_cusolver_handle=lambda: 0, get_cublas_handle=lambda: 0)
    cupy.cuda = types.ModuleType("cupy.cuda")
    cupy.cuda.__dict__.update(Device=Device, runtime=runtime, memory=memory, device=device,
                              cusolver=_solver_module(), cublas=_blas_module())
    return cupy


def install(monkeypatch):
    """Make ``import cupy`` give the fake and the CUDA fills run the NumPy backend."""
    from fastinit.backends import cupy_backend, numpy_backend
    from fastinit import _dtypes

    def fill(dist, key, out, run_starts, run_length, *, dtype=None, grid=None, block=None):
        assert isinstance(out, ndarray) and out.ndim == 1 and out.flags.c_contiguous
        view = np.asarray(out).view(np.ndarray)
        if dtype == "bfloat16":
            view = view.view(_dtypes.bfloat16())
        numpy_backend.fill(dist, key, view, run_starts, run_length)

    fake = module()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupy.cuda", fake.cuda)
    monkeypatch.setattr(cupy_backend, "fill", fill)
    return fake
