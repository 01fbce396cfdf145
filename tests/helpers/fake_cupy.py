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
# The fakes get raw pointers, as the real ones do, and run fastinit's own LAPACK caller
# (_orthogonal._lapack_call) or SciPy's wrappers on column-major views of that memory.


def _host(pointer, shape, dtype):
    """The column-major (F-ordered) array of ``shape`` at host address ``pointer``."""
    count = int(np.prod(shape))
    memory = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(pointer)
    return np.frombuffer(memory, dtype, count).reshape(shape, order="F")


def _set_info(dev_info, value):
    ctypes.c_int.from_address(dev_info).value = value


def _solver_module():
    from scipy.linalg import lapack
    from fastinit._orthogonal import _lapack_call
    solver = types.SimpleNamespace()
    for t, dtype in (("s", np.float32), ("d", np.float64)):
        def geqrf(handle, m, n, a, lda, tau, work, lwork, dev_info, dtype=dtype):
            assert lda == m
            _lapack_call("geqrf", _host(a, (m, n), dtype), _host(tau, (min(m, n),), dtype))
            _set_info(dev_info, 0)

        def orgqr(handle, m, n, k, a, lda, tau, work, lwork, dev_info, dtype=dtype):
            assert lda == m
            _lapack_call("orgqr", _host(a, (m, n), dtype), _host(tau, (k,), dtype))
            _set_info(dev_info, 0)

        def potrf(handle, uplo, n, a, lda, work, lwork, dev_info, t=t, dtype=dtype):
            assert lda == n
            matrix = _host(a, (n, n), dtype)
            result, info = getattr(lapack, t + "potrf")(matrix, lower=uplo == 0, overwrite_a=1,
                                                        clean=0)
            assert np.shares_memory(result, matrix)
            _set_info(dev_info, info)

        setattr(solver, t + "geqrf", geqrf)
        setattr(solver, t + "orgqr", orgqr)
        setattr(solver, t + "potrf", potrf)
        setattr(solver, t + "geqrf_bufferSize", lambda handle, m, n, a, lda: 64 * n)
        setattr(solver, t + "orgqr_bufferSize", lambda handle, m, n, k, a, lda, tau: 64 * n)
        setattr(solver, t + "potrf_bufferSize", lambda handle, uplo, n, a, lda: 1)
    return solver


def _blas_module():
    from scipy.linalg import blas as scipy_blas
    blas = types.SimpleNamespace(CUBLAS_FILL_MODE_LOWER=0, CUBLAS_FILL_MODE_UPPER=1,
                                 CUBLAS_SIDE_LEFT=0, CUBLAS_SIDE_RIGHT=1, CUBLAS_OP_N=0,
                                 CUBLAS_OP_T=1, CUBLAS_OP_C=2, CUBLAS_DIAG_NON_UNIT=0,
                                 CUBLAS_DIAG_UNIT=1)
    for t, dtype in (("s", np.float32), ("d", np.float64)):
        def trsm(handle, side, uplo, trans, diag, m, n, alpha, a, lda, b, ldb, t=t,
                 dtype=dtype):
            k = m if side == 0 else n
            assert lda == k and ldb == m
            matrix = _host(b, (m, n), dtype)
            result = getattr(scipy_blas, t + "trsm")(
                _host(alpha, (1,), dtype)[0], _host(a, (k, k), dtype), matrix, side=side,
                lower=uplo == 0, trans_a=trans, diag=diag, overwrite_b=1)
            assert np.shares_memory(result, matrix)
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
    from fastinit.backends import cuda as cupy_backend, numpy_backend
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
