"""Haar-distributed (semi-)orthogonal matrices, computed in place: the algorithms.

:func:`haar` fills a 2-D array (a view of the output) with a matrix that has
orthonormal columns (or rows, when it is wide), uniformly distributed, times
``gain``. Every method starts from the same Gaussian ``(big, small)`` matrix of
the stream (column ``j`` is stream positions ``offset + j * big + [0, big)``)
and works in place: ``"stewart"`` (Householder vectors made directly from the
Gaussian columns, ``Q`` formed by :func:`_form_q_blocked` in 256-column
GEMMs), ``"cholqr2"`` (BLAS-3 only, for very tall matrices), ``"qr"`` (the
reference) and ``"auto"``. ``docs/initializers.md`` (section Orthogonal)
describes them, their memory and when ``"auto"`` picks which; layouts of
framework tensors are resolved by the callers. LAPACK comes from SciPy.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import random as fr

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Literal

    import numpy.typing as npt

    from ._typing import Backend, FloatArray, OrthogonalMethod

__all__ = ["METHODS", "haar", "frame", "check_method", "choose_method", "auto_method"]

METHODS = ("auto", "stewart", "cholqr2", "qr")

#: ``"auto"`` uses CholeskyQR2 when ``small >= _CHOLQR2_MIN`` and ``big >= ratio * small``,
#: ``ratio`` depending on the layout (measured: ``benchmarks/orthogonal.py``).
_CHOLQR2_MIN = 64
_CHOLQR2_RATIO = 64


def _scipy() -> tuple[ModuleType, ModuleType]:
    """SciPy's BLAS and LAPACK wrappers (SciPy is a dependency; imported on first use)."""
    import scipy.linalg.blas as blas
    import scipy.linalg.lapack as lapack
    return blas, lapack


def check_method(method: object) -> OrthogonalMethod:
    """``method`` if it is one of :data:`METHODS`, else ValueError."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}. "
                         f"Received: method={method!r}")
    return cast("OrthogonalMethod", method)


def choose_method(method: OrthogonalMethod, big: int, small: int) -> OrthogonalMethod:
    """The method ``"auto"`` stands for on the CPU (and a check of ``method``)."""
    if check_method(method) != "auto":
        return method
    return auto_method(big, small)


def auto_method(big: int, small: int) -> OrthogonalMethod:
    """What ``"auto"`` means for a ``big x small`` matrix, on every device (so that a seed
    gives the same matrix on the CPU and the GPU, up to rounding)."""
    return "cholqr2" if small >= _CHOLQR2_MIN and big >= _CHOLQR2_RATIO * small else "stewart"


def frame(matrix: Any) -> tuple[Any, int, int]:
    """``(q, big, small)`` for a matrix to fill (NumPy or CuPy), checked: ``q`` is the
    ``(big, small)`` view whose columns are the orthonormal vectors. A square matrix
    is read so that they are contiguous when it is C- or F-ordered (``Q`` or ``Q.T``)."""
    if matrix.ndim != 2 or matrix.size == 0 or matrix.dtype not in (np.float32, np.float64):
        raise ValueError("haar needs a non-empty 2-D float32 or float64 array. "
                         f"Received: shape={matrix.shape}, dtype={matrix.dtype}")
    rows, cols = matrix.shape
    q = matrix if rows > cols or rows == cols and matrix.flags.f_contiguous else matrix.T
    return q, max(rows, cols), min(rows, cols)


def haar(matrix: FloatArray, *, seed: int, stream: int = 0, offset: int = 0,
         backend: Backend = "auto", method: OrthogonalMethod = "auto",
         gain: float = 1.0) -> FloatArray:
    """Fill ``matrix`` in place with a Haar (semi-)orthogonal matrix times ``gain``.

    Parameters
    ----------
    matrix : numpy.ndarray, 2-D, float32 or float64, writable, no zero-size axis
        Orthonormal columns if ``rows >= cols``, else orthonormal rows.
    seed, stream, offset, backend
        Of the Gaussian matrix (see the module docstring).
    method : {"auto", "stewart", "cholqr2", "qr"}
    gain : float

    Returns
    -------
    numpy.ndarray
        ``matrix``.

    Examples
    --------
    >>> q = haar(np.empty((5, 3)), seed=0)
    >>> bool(np.allclose(q.T @ q, np.eye(3)))
    True
    """
    q, big, small = frame(matrix)
    method = choose_method(method, big, small)
    if q.flags.f_contiguous:
        work, transposed = q, False           # columns contiguous: QR layout
    elif q.flags.c_contiguous:
        work, transposed = q.T, True           # rows of q.T contiguous: LQ layout
    else:
        tmp = np.empty((big, small), dtype=matrix.dtype, order="F")
        haar(tmp, seed=seed, stream=stream, offset=offset, backend=backend, method=method,
             gain=gain)
        q[...] = tmp
        return matrix
    # Column j of G = stream [offset + j*big, offset + (j+1)*big): G.T in C order.
    fr.normal((small, big), dtype=matrix.dtype, seed=seed, stream=stream, offset=offset,
              out=q.T, backend=backend)
    if method == "cholqr2":
        if _cholqr2(work, transposed, gain):
            return matrix
        fr.normal((small, big), dtype=matrix.dtype, seed=seed, stream=stream, offset=offset,
                  out=q.T, backend=backend)
        method = "stewart"
    if method == "stewart":
        _stewart(work, transposed, gain)
    else:
        _householder(work, transposed, gain)
    return matrix


# -- the methods ----------------------------------------------------------------------
# ``work`` is F-contiguous: (big, small) with the vectors as columns (QR layout), or
# (small, big) with the vectors as rows (LQ layout, ``transposed``).


def _stewart(work: FloatArray, transposed: bool, gain: float) -> None:
    q = work.T if transposed else work   # (big, small), the vectors as columns
    tau, sign = _reflectors_by_rows(q) if transposed else _reflectors_by_columns(q)
    _form_q_blocked(q, tau)
    _scale(work, transposed, gain * sign)


#: Columns per block of :func:`_form_q_blocked`: 256 makes its GEMMs run near the
#: BLAS peak (measured with ``benchmarks/orthogonal.py``).
_BLOCK = 256


def _form_q_blocked(q: FloatArray, tau: FloatArray, block: int = _BLOCK) -> None:
    """``Q = H_0 H_1 ... H_{n-1}`` (its first ``n`` columns), in place, from the
    Householder vectors stored LAPACK-style in the columns of ``q`` (``m x n``,
    below the diagonal, unit diagonal implied; either memory order).

    What LAPACK ``orgqr`` computes, but blocked with the UT transform (Joffrain
    et al. 2006): the product of a block's reflectors is ``I - V S^-1 V^T``
    with ``S = striu(V^T V) + diag(1 / tau)``, so each block costs a triangular
    solve and two GEMMs of inner size ``block`` (the first also gives ``V^T V``),
    applied to the columns already formed. Large blocks keep the GEMMs near the BLAS peak,
    where LAPACK's 32-column blocks and level-2 ``larft`` do not, and the
    row-major case needs no ``orglq``. Extra memory: a ``(m, block)`` copy of
    the block's vectors and a ``(block, n)`` product.
    """
    blas, _ = _scipy()
    trsm = blas.dtrsm if q.dtype == np.float64 else blas.strsm
    m, n = q.shape
    # Temporaries in q's memory order: the copies do not transpose and OpenBLAS runs its
    # fastest GEMM variants (measured: 15% faster than F-ordered ones for a C-ordered q).
    order: Literal["C", "F"] = "F" if q.strides[0] == q.itemsize else "C"
    for i in range(((n - 1) // block) * block, -1, -block):
        ib = min(block, n - i)
        block_tau = tau[i:i + ib]
        identity = block_tau == 0      # H = I (a vector of length 1): a zero vector
        # The block's vectors made explicit (unit lower trapezoid) in q, and copied: the
        # last GEMM reads them while q's block columns are overwritten.
        cols = q[i:, i:i + ib]
        cols[:ib] = np.tril(cols[:ib], -1)
        np.fill_diagonal(cols, 1)
        cols[:, identity] = 0
        v = np.empty((m - i, ib), q.dtype, order=order)
        v[...] = cols
        # One GEMM: V^T V from the block columns, V^T C from the columns formed so far.
        w = np.empty((ib, n - i), q.dtype, order=order)
        _gemm(1.0, v.T, q[i:, i:], 0.0, w)
        s = np.triu(w[:, :ib], 1)
        with np.errstate(divide="ignore"):
            np.fill_diagonal(s, np.where(identity, 1, 1 / block_tau))
        s = np.asfortranarray(s)
        # The block columns start as the identity's: V^T E = (the top of V)^T.
        w[:, :ib] = v[:ib].T
        if order == "F":                                                # S^-1 V^T C
            w = trsm(1.0, s, w, side=0, lower=0, trans_a=0, overwrite_b=1)
        else:   # w^T <- w^T S^-T, on the F-ordered w^T
            w = trsm(1.0, s, w.T, side=1, lower=0, trans_a=1, overwrite_b=1).T
        q[:i, i:i + ib] = 0
        _gemm(-1.0, v, w[:, :ib], 0.0, cols)                            # E - V S^-1 V^T E
        np.fill_diagonal(cols, cols.diagonal() + 1)
        _gemm(-1.0, v, w[:, ib:], 1.0, q[i:, i + ib:])                  # C - V S^-1 V^T C


def _reflectors_by_columns(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """LAPACK ``larfg`` on ``a[k:, k]`` for each column ``k`` of F-ordered ``a``, in place."""
    _, lapack = _scipy()
    larfg = lapack.dlarfg if a.dtype == np.float64 else lapack.slarfg
    small = a.shape[1]
    tau = np.empty(small, dtype=a.dtype)
    sign = np.empty(small, dtype=a.dtype)
    for k in range(small):
        x = a[k:, k]
        if x.size > 1:
            beta, v, tau[k] = larfg(x.size, x[0], x[1:], 1, overwrite_x=1)
            if not np.shares_memory(v, x):  # pragma: no cover - f2py copied
                x[1:] = v
        else:  # a 1-vector: H = I and R[k, k] = x[0]
            beta, tau[k] = x[0], 0.0
        x[0] = beta
        sign[k] = 1.0 if beta >= 0 else -1.0
    return tau, sign


_BLOCK_ELEMENTS = 1 << 18


def _reflectors_by_rows(q: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``larfg``'s rule for the columns ``q[k:, k]`` of C-ordered ``q``, in row blocks.

    The same formulas as LAPACK's ``larfg`` (``beta = -sign(alpha) |x|``,
    ``tau = (beta - alpha) / beta``, ``v = x[1:] / (alpha - beta)``), vectorised
    over the columns: one pass over the rows for the norms (accumulated in
    float64) and one to scale (which also scales the entries above the
    diagonal: :func:`_form_q_blocked` never reads them).
    """
    big, small = q.shape
    sumsq = np.zeros(small)
    step = max(1, _BLOCK_ELEMENTS // small)
    columns = np.arange(small)
    for i0 in range(1, big, step):
        block = q[i0:i0 + step].astype(np.float64)
        block *= block
        if i0 < small:  # keep only rows below the diagonal: row i > column k
            rows = np.arange(i0, i0 + block.shape[0])
            block[rows[:, None] <= columns[None, :]] = 0.0
        sumsq += block.sum(axis=0)
    alpha = np.diagonal(q).astype(np.float64)
    xnorm = np.sqrt(sumsq)
    beta = -np.copysign(np.hypot(alpha, xnorm), alpha)
    zero = xnorm == 0.0
    beta[zero] = alpha[zero]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(zero, 0.0, (beta - alpha) / beta)
        scale = np.where(zero, 1.0, 1.0 / (alpha - beta)).astype(q.dtype)
    for i0 in range(0, big, step):
        q[i0:i0 + step] *= scale
    np.fill_diagonal(q, beta)
    sign = np.where(beta >= 0, 1.0, -1.0).astype(q.dtype)
    return tau.astype(q.dtype), sign


def _householder(work: FloatArray, transposed: bool, gain: float) -> None:
    """Plain QR (LQ in the transposed layout) in place, then the sign fix."""
    small = work.shape[0] if transposed else work.shape[1]
    tau = np.empty(small, dtype=work.dtype)
    _lapack_call("gelqf" if transposed else "geqrf", work, tau)
    diag = np.diagonal(work).copy()
    _form_q(work, transposed, tau)
    _scale(work, transposed, gain * np.where(diag >= 0, 1.0, -1.0).astype(work.dtype))


def _cholqr2(work: FloatArray, transposed: bool, gain: float) -> bool:
    """CholeskyQR2 in place; False (work left garbled) if a Cholesky factorisation fails."""
    blas, lapack = _scipy()
    f64 = work.dtype == np.float64
    syrk = blas.dsyrk if f64 else blas.ssyrk
    trsm = blas.dtrsm if f64 else blas.strsm
    potrf = lapack.dpotrf if f64 else lapack.spotrf
    for step in range(2):
        # Gram matrix of the vectors: upper triangle of W W^T (rows) or W^T W (columns).
        gram = syrk(1.0, work, trans=0 if transposed else 1, lower=0)
        r, info = potrf(gram, lower=0, overwrite_a=1, clean=0)
        if info != 0:
            return False
        alpha = gain if step == 1 else 1.0
        if transposed:   # W <- alpha R^-T W
            out = trsm(alpha, r, work, side=0, lower=0, trans_a=1, overwrite_b=1)
        else:            # W <- alpha W R^-1
            out = trsm(alpha, r, work, side=1, lower=0, trans_a=0, overwrite_b=1)
        if not np.shares_memory(out, work):  # pragma: no cover - f2py copied
            work[...] = out
        del gram, r, out  # free the Gram matrix before the next pass
    return True


def _form_q(work: FloatArray, transposed: bool, tau: FloatArray) -> None:
    _lapack_call("orglq" if transposed else "orgqr", work, tau)


def _scale(work: FloatArray, transposed: bool, factors: FloatArray) -> None:
    if transposed:
        work *= factors[:, None]
    else:
        work *= factors[None, :]


# -- LAPACK through SciPy's Cython capsules (orglq / gelqf have no f2py wrapper) --------

_INT = ctypes.c_int


def _capsule_address(module: ModuleType, name: str) -> int:
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.lru_cache(maxsize=None)
def _gemm_function(dtype_char: str) -> tuple[Any, type[ctypes.c_double | ctypes.c_float]]:
    """BLAS ``?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``."""
    import scipy.linalg.cython_blas as cython_blas

    real = ctypes.c_double if dtype_char == "d" else ctypes.c_float
    ptr = ctypes.POINTER
    args: list[Any] = [ctypes.c_char_p] * 2 + [ptr(_INT)] * 3 + [
        ptr(real), ctypes.c_void_p, ptr(_INT), ctypes.c_void_p, ptr(_INT), ptr(real),
        ctypes.c_void_p, ptr(_INT)]
    address = _capsule_address(cython_blas, dtype_char + "gemm")
    return ctypes.CFUNCTYPE(None, *args)(address), real


def _as_column_major(a: FloatArray) -> tuple[int, int, bool]:
    """``(pointer, leading dimension, transposed)`` of a 2-D view with a unit stride along
    one axis: BLAS reads it as a column-major matrix, or as one transposed."""
    item = a.itemsize
    rows, cols = a.shape
    if a.strides[0] == item or rows == 1:
        return a.ctypes.data, max(1, rows, a.strides[1] // item if cols > 1 else 1), False
    if a.strides[1] == item or cols == 1:
        return a.ctypes.data, max(1, cols, a.strides[0] // item if rows > 1 else 1), True
    raise ValueError("BLAS needs a unit stride along one axis")  # pragma: no cover


def _gemm(alpha: float, a: FloatArray, b: FloatArray, beta: float, c: FloatArray) -> None:
    """``c <- alpha a @ b + beta c`` in place (BLAS ``gemm``), for 2-D views with a
    unit stride along either axis: no copies of strided sub-blocks."""
    if c.strides[0] != c.itemsize and c.shape[0] > 1:  # row-major c: transpose the product
        a, b, c = b.T, a.T, c.T
    m, n = c.shape
    k = a.shape[1]
    if m == 0 or n == 0:
        return
    function, real = _gemm_function("d" if c.dtype == np.float64 else "s")
    pa, lda, ta = _as_column_major(a)
    pb, ldb, tb = _as_column_major(b)
    pc, ldc, _ = _as_column_major(c)
    dims = [_INT(v) for v in (m, n, k, lda, ldb, ldc)]
    function(b"T" if ta else b"N", b"T" if tb else b"N", *map(ctypes.byref, dims[:3]),
             ctypes.byref(real(alpha)), pa, ctypes.byref(dims[3]), pb, ctypes.byref(dims[4]),
             ctypes.byref(real(beta)), pc, ctypes.byref(dims[5]))


@functools.lru_cache(maxsize=None)
def _lapack_function(name: str) -> tuple[Any, type[ctypes.c_double | ctypes.c_float]]:
    import scipy.linalg.cython_lapack as cython_lapack

    address = _capsule_address(cython_lapack, name)
    ptr = ctypes.POINTER
    real = ctypes.c_double if name[0] == "d" else ctypes.c_float
    if name[1:] in ("orgqr", "orglq"):      # m, n, k, a, lda, tau, work, lwork, info
        args: list[Any] = [ptr(_INT)] * 3 + [ctypes.c_void_p, ptr(_INT), ctypes.c_void_p, ptr(real),
                                  ptr(_INT), ptr(_INT)]
    else:                                    # geqrf / gelqf: m, n, a, lda, tau, work, lwork, info
        args = [ptr(_INT)] * 2 + [ctypes.c_void_p, ptr(_INT), ctypes.c_void_p, ptr(real),
                                  ptr(_INT), ptr(_INT)]
    return ctypes.CFUNCTYPE(None, *args)(address), real


def _lapack_call(routine: str, a: FloatArray, tau: FloatArray) -> None:
    """Run ``?geqrf`` / ``?gelqf`` / ``?orgqr`` / ``?orglq`` in place on F-ordered ``a``."""
    assert a.flags.f_contiguous and tau.dtype == a.dtype
    name = ("d" if a.dtype == np.float64 else "s") + routine
    function, real = _lapack_function(name)
    m, n = a.shape
    k = tau.size
    dims = [_INT(m), _INT(n)] + ([_INT(k)] if routine.startswith("org") else [])
    lda, info = _INT(max(1, m)), _INT(0)

    def call(work: Any, lwork: ctypes.c_int) -> None:
        function(*[ctypes.byref(d) for d in dims], a.ctypes.data, ctypes.byref(lda),
                 tau.ctypes.data, work, ctypes.byref(lwork), ctypes.byref(info))

    query = real(0)
    call(ctypes.byref(query), _INT(-1))
    lwork = max(1, int(query.value), 64 * max(m, n))
    work = np.empty(lwork, dtype=a.dtype)
    call(work.ctypes.data_as(ctypes.POINTER(real)), _INT(lwork))
    if info.value != 0:  # pragma: no cover - arguments are checked above
        raise RuntimeError(f"LAPACK {name} failed with info={info.value}")
