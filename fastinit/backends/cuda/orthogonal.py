"""Haar (semi-)orthogonal matrices on the GPU: :mod:`fastinit._orthogonal` on CuPy.

The same Gaussian matrix (from the stream, so the same seed gives the same
``G`` as on the CPU, bit for bit) and the same methods, on cuSOLVER and cuBLAS:

``"stewart"``
    The Householder vectors are made from ``G``'s columns in one kernel
    (``kernels/fastinit_householder.cu``: LAPACK ``larfg``'s rule, norms in
    double precision), then cuSOLVER ``orgqr`` forms ``Q`` in place and
    column ``k`` is multiplied by ``sign(beta_k)``.
``"cholqr2"``
    ``R = chol(G^T G)`` (cuBLAS GEMM, cuSOLVER ``potrf``), ``G <- G R^-1``
    (cuBLAS ``trsm``, in place), twice. Falls back to ``"stewart"`` if a
    Cholesky factorisation fails.
``"qr"`` (the reference)
    cuSOLVER ``geqrf`` + ``orgqr`` in place, then the sign fix.
``"auto"``
    The CPU's choice (:func:`fastinit._orthogonal.auto_method`: CholeskyQR2
    from 64:1, else Stewart's method), so that a seed gives the same matrix
    on both, up to rounding. Not tuned on a GPU yet.

Layouts: cuSOLVER has no ``orglq``. ``"cholqr2"`` works in place in either
layout; ``"stewart"`` and ``"qr"`` work in place when the orthonormal vectors
are the columns of an F-ordered buffer (a square matrix always qualifies:
it is read as ``Q`` or ``Q.T``) and otherwise in an F-ordered temporary of
the matrix's size, copied back (a tall C-ordered Keras kernel, for one).
Values equal the CPU's up to the rounding of the linear algebra (different
BLAS, different summation order).

Everything runs on the current CuPy device and stream; the caller enters them.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import random as fr
from ..._orthogonal import auto_method, check_method, frame
from . import _compile, sources as cuda_sources

if TYPE_CHECKING:
    from ..._typing import GpuArray, OrthogonalMethod

__all__ = ["haar"]


def haar(matrix: GpuArray, *, seed: int, stream: int = 0, offset: int = 0,
         method: OrthogonalMethod = "auto", gain: float = 1.0) -> GpuArray:
    """Fill the CuPy ``matrix`` in place with a Haar (semi-)orthogonal matrix times ``gain``.

    As :func:`fastinit._orthogonal.haar` (same arguments, same Gaussian matrix,
    same methods), for a 2-D float32 or float64 CuPy array.
    """
    import cupy
    from . import linalg
    linalg()  # GpuUnavailableError naming the missing library, before any work
    q, big, small = frame(matrix)
    if check_method(method) == "auto":
        method = auto_method(big, small)
    if not (q.flags.f_contiguous or q.flags.c_contiguous) or (
            method != "cholqr2" and not q.flags.f_contiguous):
        tmp = cupy.empty((big, small), dtype=matrix.dtype, order="F")
        haar(tmp, seed=seed, stream=stream, offset=offset, method=method, gain=gain)
        q[...] = tmp
        return matrix
    # Column j of G = stream [offset + j*big, offset + (j+1)*big): G.T in C order.
    fr.normal((small, big), dtype=matrix.dtype, seed=seed, stream=stream, offset=offset,
              out=q.T)
    if method == "cholqr2":
        transposed = not q.flags.f_contiguous
        if not _cholqr2(cupy, q.T if transposed else q, transposed, gain):
            # A failed Cholesky factorisation (not seen for Gaussian matrices this tall).
            haar(matrix, seed=seed, stream=stream, offset=offset, method="stewart", gain=gain)
        return matrix
    if method == "stewart":
        tau, sign = _householder_vectors(cupy, q)
    else:
        tau, sign = _geqrf(cupy, q)
    _orgqr(cupy, q, tau)
    q *= (sign * gain).astype(q.dtype)[None, :]
    return matrix


def _lapack_names(dtype: Any) -> str:
    return "d" if dtype == np.float64 else "s"


def _householder_vectors(cupy: ModuleType, q: GpuArray) -> tuple[GpuArray, GpuArray]:
    """Stewart's Householder vectors of the F-ordered ``(big, small)`` ``q``, in place."""
    big, small = q.shape
    tau = cupy.empty(small, dtype=q.dtype)
    sign = cupy.empty(small, dtype=q.dtype)
    name = cuda_sources.HOUSEHOLDER_KERNELS[int(q.dtype == np.float64)]
    device = cupy.cuda.Device().id
    kernel = _compile.function(cupy, cuda_sources.HOUSEHOLDER, _householder_source, name)
    sms = cupy.cuda.runtime.deviceGetAttribute(
        cupy.cuda.runtime.cudaDevAttrMultiProcessorCount, device)
    grid = int(min(small, 8 * sms))
    kernel((grid,), (cuda_sources.HOUSEHOLDER_THREADS,),
           (q, np.int64(big), np.int64(big), np.int64(small), tau, sign))
    return tau, sign


def _householder_source() -> str:
    return cuda_sources.read(cuda_sources.HOUSEHOLDER)


def _solver(routine: str, dtype: Any) -> Any:
    from . import linalg
    return getattr(linalg()[0], _lapack_names(dtype) + routine)


def _check_info(info: GpuArray, what: str) -> None:
    value = int(info.get()[0])
    if value != 0:  # pragma: no cover - arguments are checked by the callers
        raise RuntimeError(f"cuSOLVER {what} failed with info={value}")


def _geqrf(cupy: ModuleType, q: GpuArray) -> tuple[GpuArray, GpuArray]:
    """Plain Householder QR of the F-ordered ``q`` in place: ``(tau, sign(diag(R)))``."""
    from cupy.cuda import device
    big, small = q.shape
    handle = device.get_cusolver_handle()
    tau = cupy.empty(small, dtype=q.dtype)
    info = cupy.empty(1, dtype=np.int32)
    size = _solver("geqrf_bufferSize", q.dtype)(handle, big, small, q.data.ptr, big)
    work = cupy.empty(max(1, size), dtype=q.dtype)
    _solver("geqrf", q.dtype)(handle, big, small, q.data.ptr, big, tau.data.ptr,
                                    work.data.ptr, size, info.data.ptr)
    _check_info(info, "geqrf")
    sign = cupy.where(cupy.diagonal(q) >= 0, 1.0, -1.0).astype(q.dtype)
    return tau, sign


def _orgqr(cupy: ModuleType, q: GpuArray, tau: GpuArray) -> None:
    """cuSOLVER ``orgqr``: ``Q`` from the Householder vectors in ``q`` (F-ordered), in place."""
    from cupy.cuda import device
    big, small = q.shape
    handle = device.get_cusolver_handle()
    info = cupy.empty(1, dtype=np.int32)
    size = _solver("orgqr_bufferSize", q.dtype)(handle, big, small, small, q.data.ptr,
                                                      big, tau.data.ptr)
    work = cupy.empty(max(1, size), dtype=q.dtype)
    _solver("orgqr", q.dtype)(handle, big, small, small, q.data.ptr, big, tau.data.ptr,
                                    work.data.ptr, size, info.data.ptr)
    _check_info(info, "orgqr")


def _cholqr2(cupy: ModuleType, work: GpuArray, transposed: bool, gain: float) -> bool:
    """CholeskyQR2 in place on F-ordered ``work``: ``(big, small)`` with orthonormal
    columns, or ``(small, big)`` with orthonormal rows (``transposed``). False if a
    Cholesky factorisation fails (``work`` left garbled)."""
    from cupy.cuda import device

    from . import linalg
    cublas = linalg()[1]
    small, big = work.shape if transposed else work.shape[::-1]
    dtype = work.dtype
    potrf = _solver("potrf", dtype)
    potrf_size = _solver("potrf_bufferSize", dtype)
    trsm = getattr(cublas, _lapack_names(dtype) + "trsm")
    upper = cublas.CUBLAS_FILL_MODE_UPPER
    for step in range(2):
        # The Gram matrix is symmetric: its C and F layouts hold the same values.
        gram = work @ work.T if transposed else work.T @ work
        handle = device.get_cusolver_handle()
        info = cupy.empty(1, dtype=np.int32)
        size = potrf_size(handle, upper, small, gram.data.ptr, small)
        buffer = cupy.empty(max(1, size), dtype=dtype)
        potrf(handle, upper, small, gram.data.ptr, small, buffer.data.ptr, size,
              info.data.ptr)
        if int(info.get()[0]) != 0 or not bool(cupy.isfinite(cupy.diagonal(gram)).all()):
            return False
        # gram's upper triangle, read column-major, now holds R with G^T G = R^T R.
        alpha = np.array(gain if step == 1 else 1.0, dtype=dtype)
        if transposed:   # W <- alpha R^-T W
            trsm(device.get_cublas_handle(), cublas.CUBLAS_SIDE_LEFT, upper, cublas.CUBLAS_OP_T,
                 cublas.CUBLAS_DIAG_NON_UNIT, small, big, alpha.ctypes.data, gram.data.ptr,
                 small, work.data.ptr, small)
        else:            # W <- alpha W R^-1
            trsm(device.get_cublas_handle(), cublas.CUBLAS_SIDE_RIGHT, upper, cublas.CUBLAS_OP_N,
                 cublas.CUBLAS_DIAG_NON_UNIT, big, small, alpha.ctypes.data, gram.data.ptr,
                 small, work.data.ptr, big)
        del gram, buffer
    return True

