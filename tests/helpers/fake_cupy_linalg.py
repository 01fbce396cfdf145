"""The stand-in's cuSOLVER and cuBLAS: LAPACK/BLAS on the memory behind the pointers.

Each routine has CuPy 14.2's parameters (``helpers.cupy_api``) and, like CuPy's
Cython bindings, takes integers only. Handles belong to the device that was
current when they were asked for; every device pointer must be memory of that
device (a temporary on another device fails here, as it would on a GPU). The
call is logged with CuPy's current stream (CuPy sets the handle's stream to it)
and computed by fastinit's LAPACK caller or SciPy on column-major views.
"""

import inspect
import types

import numpy as np

from . import cupy_api, fake_cupy
from .fake_cupy_kernels import column_major

_HANDLE = {"cusolver": 0x50000, "cublas": 0x60000}
_POINTERS = {"A", "tau", "work", "devInfo", "Aarray", "Barray"}  # alpha is a host pointer


def handles():
    """``cupy.cuda.device``: per-device library handles."""
    return types.SimpleNamespace(
        get_cusolver_handle=lambda: _HANDLE["cusolver"] + fake_cupy.state().device,
        get_cublas_handle=lambda: _HANDLE["cublas"] + fake_cupy.state().device)


def _binding(library, name, implementation):
    """A function with CuPy's parameters for ``library.name`` that checks its arguments."""
    params = cupy_api.parse(cupy_api.SIGNATURES[f"cupy.cuda.{library}.{name}"])
    signature = inspect.Signature([inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for p, _, _ in params])

    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs).arguments
        for key, value in bound.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name}: an integer is required for {key}. Received: "
                                f"{type(value).__name__}")
        state = fake_cupy.state()
        device = int(bound["handle"]) - _HANDLE[library]
        if not 0 <= device < state.devices:
            raise ValueError(f"{name}: {bound['handle']:#x} is not a {library} handle")
        for key in _POINTERS & set(bound):
            found = state.block(int(bound[key]))
            if found is None or found[2] != device:
                raise ValueError(f"{name}: {key} is not memory of cuda:{device}, the handle's "
                                 "device")
        state.log.append((f"{library}.{name}", state.stream, device,
                          [(int(bound[k]), int(bound[k]) + 1) for k in _POINTERS & set(bound)]))
        return implementation(**{k: int(v) for k, v in bound.items()})

    call.__name__, call.__signature__ = name, signature
    return call


def _set_info(address, value):
    column_major(address, (1,), np.int32)[0] = value


def modules():
    """``{"cusolver": ..., "cublas": ...}``."""
    from scipy.linalg import blas as scipy_blas, lapack

    from fastinit._orthogonal import _lapack_call
    solver = types.ModuleType("cupy.cuda.cusolver")
    blas = types.ModuleType("cupy.cuda.cublas")
    blas.__dict__.update(cupy_api.CUBLAS_CONSTANTS)
    for t, dtype in (("s", np.float32), ("d", np.float64)):
        def geqrf(handle, m, n, A, lda, tau, work, lwork, devInfo, dtype=dtype):  # noqa: N803
            assert lda == m
            _lapack_call("geqrf", column_major(A, (m, n), dtype),
                         column_major(tau, (min(m, n),), dtype))
            _set_info(devInfo, 0)

        def orgqr(handle, m, n, k, A, lda, tau, work, lwork, devInfo, dtype=dtype):  # noqa: N803
            assert lda == m
            _lapack_call("orgqr", column_major(A, (m, n), dtype), column_major(tau, (k,), dtype))
            _set_info(devInfo, 0)

        def potrf(handle, uplo, n, A, lda, work, lwork, devInfo, t=t, dtype=dtype):  # noqa: N803
            assert lda == n
            matrix = column_major(A, (n, n), dtype)
            result, info = getattr(lapack, t + "potrf")(matrix, lower=uplo == 0, overwrite_a=1,
                                                        clean=0)
            assert np.shares_memory(result, matrix)
            _set_info(devInfo, info)

        def trsm(handle, side, uplo, trans, diag, m, n, alpha, Aarray, lda, Barray, ldb,  # noqa: N803
                 t=t, dtype=dtype):
            k = m if side == 0 else n
            assert lda == k and ldb == m
            matrix = column_major(Barray, (m, n), dtype)
            result = getattr(scipy_blas, t + "trsm")(
                column_major(alpha, (1,), dtype)[0], column_major(Aarray, (k, k), dtype), matrix,
                side=side, lower=uplo == 0, trans_a=trans, diag=diag, overwrite_b=1)
            assert np.shares_memory(result, matrix)

        for name, implementation in (
                ("geqrf", geqrf), ("orgqr", orgqr), ("potrf", potrf),
                ("geqrf_bufferSize", lambda handle, m, n, A, lda: 64 * n),
                ("orgqr_bufferSize", lambda handle, m, n, k, A, lda, tau: 64 * n),
                ("potrf_bufferSize", lambda handle, uplo, n, A, lda: 1)):
            setattr(solver, t + name, _binding("cusolver", t + name, implementation))
        setattr(blas, t + "trsm", _binding("cublas", t + "trsm", trsm))
    return {"cusolver": solver, "cublas": blas}
