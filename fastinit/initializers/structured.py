"""Structured initializers: identity, orthogonal, delta-orthogonal, Dirac, sparse, STFT.

These need the whole tensor (a matrix factorisation, a permutation, a
window), so they are computed for the global shape and the region
(``index=``) is cut out of it. The orthogonal matrices come from
:func:`fastinit._orthogonal.haar` (Stewart's method / CholeskyQR2 / plain QR,
in place on the output buffer when it is C-contiguous and of the working
dtype, float32 or float64; narrow dtypes are computed in float32).
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from .. import _orthogonal
from .. import random as fr
from .._checks import check_choice, check_integer, check_real, check_representable
from .base import Initializer, SeededInitializer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager
    from typing import Literal

    import numpy.typing as npt

    from .._typing import (
        Array, Config, DTypeKind, FloatArray, GpuArray, InitializerSeed, OrthogonalMethod, Shape,
    )
    from .base import Request

__all__ = ["Identity", "Orthogonal", "DeltaOrthogonal", "Dirac", "Sparse", "STFT"]


class Identity(Initializer):
    """``gain`` times the identity matrix (Keras' ``Identity``, torch's ``eye_``); 2-D only.

    Non-square shapes get ones on the main diagonal. ``gain`` must be
    representable in the dtype of a call (as :class:`Constant`'s value).

    Parameters
    ----------
    gain : float, default 1.0

    Examples
    --------
    >>> Identity(2.0)((2, 3))
    array([[2., 0., 0.],
           [0., 2., 0.]], dtype=float32)
    >>> Identity()((2, 2, 2))
    Traceback (most recent call last):
    ...
    ValueError: Identity matrix initializer can only be used for 2D matrices. Received: shape=(2, 2, 2) of rank 3.
    """

    dtype_kind: ClassVar[DTypeKind] = "any"
    elementwise: ClassVar[bool] = True

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = check_real(gain, "gain")

    def generate(self, request: Request) -> Array:
        shape = request.shape
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        check_representable(self.gain, request.dtype, "gain", "Identity gain")
        rows, cols = np.arange(shape[0]), np.arange(shape[1])
        if request.index is not None:
            rows, cols = rows[request.index[0]], cols[request.index[1]]
        return request.write(self.gain * np.equal.outer(rows, cols))

    def get_config(self) -> Config:
        return {"gain": self.gain}


class Orthogonal(SeededInitializer):
    """A (semi-)orthogonal matrix times ``gain`` (Keras' ``Orthogonal``, torch's ``orthogonal_``).

    The shape is read as a matrix whose columns run along ``column_axis``
    and whose rows are all other axes flattened (in order). The matrix has
    orthonormal columns if it has at least as many rows as columns, else
    orthonormal rows; it is uniformly (Haar) distributed. ``column_axis=-1``
    is Keras' and JAX's layout; PyTorch's ``(out, in, *k)`` with the rows along
    axis 0 is ``column_axis=0`` (what ``fastinit.torch.orthogonal_`` uses).

    The matrix is computed in place in ``out`` when it is C-contiguous (or in
    the new output), with a few fixed-size buffers and a ``(rows, 256)`` block
    as extra memory; any other layout of ``out`` (or a narrow dtype) adds a
    C-ordered float32/float64 temporary of the tensor's size: the values do
    not depend on the layout. A GPU output (``device="cuda"`` or a GPU
    ``out``) is computed on the GPU (:mod:`fastinit.backends.cuda.orthogonal`).

    Parameters
    ----------
    gain : float, default 1.0
    seed : int or None
        See :func:`~fastinit.initializers.base.resolve_seed`.
    column_axis : int, default -1
        JAX's ``column_axis``.
    method : {"auto", "stewart", "cholqr2", "qr"}, default "auto"
        The algorithm (all give the Haar distribution; ``"qr"`` is plain
        Householder QR with the sign fix, the reference); see
        :mod:`fastinit._orthogonal`. The values depend on it.

    Examples
    --------
    >>> w = Orthogonal(seed=0)((3, 5))
    >>> bool(np.allclose(w @ w.T, np.eye(3), atol=1e-6))
    True
    >>> k = Orthogonal(gain=2.0, seed=0)((3, 3, 8, 16))        # conv kernel: 72 x 16 matrix
    >>> m = k.reshape(-1, 16).astype(np.float64)
    >>> bool(np.allclose(m.T @ m, 4 * np.eye(16), atol=1e-5))
    True
    """

    def __init__(self, gain: float = 1.0, seed: InitializerSeed = None, column_axis: int = -1,
                 method: OrthogonalMethod = "auto") -> None:
        self.gain = check_real(gain, "gain")
        self.column_axis = check_integer(column_axis, "column_axis", ValueError)
        self.method = _orthogonal.check_method(method)
        super().__init__(seed)

    def validate(self, request: Request) -> None:
        self.check_shape(request.shape)

    def check_shape(self, shape: Sequence[int]) -> Shape:
        """``shape`` if an orthogonal matrix of it can be made along ``column_axis``."""
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        if not -len(shape) <= self.column_axis < len(shape):
            raise ValueError(f"column_axis {self.column_axis} is out of range for shape "
                             f"{shape}. Received: column_axis={self.column_axis}")
        if 0 in shape:
            raise ValueError("An orthogonal matrix needs non-zero dimensions. "
                             f"Received: shape={shape}")
        return shape

    def fill(self, values: FloatArray | GpuArray, request: Request) -> FloatArray | GpuArray:
        """Fill ``values`` (the whole tensor, float32 or float64, a NumPy array or on the
        GPU a CuPy array) in place and return it."""
        # On a GPU all of it (the temporary, the factorisation, the copy-back) runs on the
        # output's device and stream.
        with _on_device(request):
            return self._fill(values, request)

    def _fill(self, values: FloatArray | GpuArray, request: Request) -> FloatArray | GpuArray:
        xp = np if request.gpu is None else request.gpu.cupy
        shape = values.shape
        axis = self.column_axis % len(shape)
        n_cols = shape[axis]
        moved = xp.moveaxis(values, axis, -1)
        matrix = moved.reshape(-1, n_cols)  # a view for C-ordered values and axis 0 or -1
        # Exact here (matrix is a view of values or a new copy); CuPy's shares_memory would
        # launch kernels over an address array of every element.
        in_place = (np.shares_memory if request.gpu is None else xp.may_share_memory)(
            matrix, values)
        target = matrix if in_place else xp.empty(matrix.shape, values.dtype)
        kw: dict[str, Any] = dict(seed=self._call_seed, stream=request.stream,
                                  offset=request.offset, method=self.method, gain=self.gain)
        if request.gpu is None:
            _orthogonal.haar(target, backend=request.backend, **kw)
        else:
            from ..backends.cuda import orthogonal
            orthogonal.haar(target, **kw)
        if target is not matrix:
            moved[...] = target.reshape(moved.shape)
        return values

    def generate(self, request: Request) -> Array:
        self.validate(request)
        values = request.work_array(_working_dtype(request))
        self.fill(values, request)
        return request.result() if request.is_output(values) else request.write_whole(values)

    def get_config(self) -> Config:
        config = {"gain": self.gain, **super().get_config()}
        if self.column_axis != -1:
            config["column_axis"] = self.column_axis
        if self.method != "auto":
            config["method"] = self.method
        return config


def _on_device(request: Request) -> AbstractContextManager[Any]:
    """The output's device and stream context on a GPU (nothing on the CPU)."""
    return request.gpu.context() if request.gpu is not None else contextlib.nullcontext()


def _working_dtype(request: Request) -> np.dtype[np.floating[Any]]:
    """float64 for float64 outputs, else float32 (narrow dtypes are computed in float32)."""
    return np.dtype(np.float64 if request.dtype == np.float64 else np.float32)


class DeltaOrthogonal(Orthogonal):
    """A delta-orthogonal convolution kernel (JAX's ``delta_orthogonal``; Xiao et al. 2018).

    For a ``(*spatial, in, out)`` kernel with 1 to 3 spatial axes and
    ``in <= out``: zeros, except the centre tap ``(k - 1) // 2`` of every spatial
    axis, which holds an orthogonal ``(in, out)`` matrix times ``gain``.

    Parameters
    ----------
    gain : float, default 1.0
    seed : int or None
    column_axis : int, default -1
        Passed to the orthogonal ``(in, out)`` matrix.

    Examples
    --------
    >>> k = DeltaOrthogonal(seed=0)((3, 4, 4))
    >>> bool((k[0] == 0).all() and (k[2] == 0).all())
    True
    >>> bool(np.allclose(k[1] @ k[1].T, np.eye(4), atol=1e-6))
    True
    """

    def validate(self, request: Request) -> None:
        shape = request.shape
        if len(shape) not in (3, 4, 5):
            raise ValueError("Delta orthogonal initializer requires a 3D, 4D or 5D shape. "
                             f"Received: shape={shape}")
        if shape[-1] < shape[-2]:
            raise ValueError("`fan_in` must be less or equal than `fan_out`. "
                             f"Received: shape={shape}")
        self.check_shape(shape[-2:])
        if 0 in shape:
            raise ValueError("An orthogonal matrix needs non-zero dimensions. "
                             f"Received: shape={shape}")

    def generate(self, request: Request) -> Array:
        self.validate(request)
        shape = request.shape
        values = request.work_array(_working_dtype(request))
        with _on_device(request):
            values[...] = 0
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        self.fill(values[centre], request)
        return request.result() if request.is_output(values) else request.write_whole(values)


class Dirac(Initializer):
    """The Dirac delta of a convolution (torch's ``dirac_``), in PyTorch layout ``(out, in, *k)``.

    Keeps the identity of the inputs in a convolution with 1 to 3 spatial
    axes: ``w[g * out_per_group + d, d, centre] = 1`` for ``d`` below
    ``min(out_per_group, in)`` in each of ``groups`` groups, where
    ``centre = k // 2`` on each spatial axis.

    Parameters
    ----------
    groups : int, default 1
        ``shape[0]`` must be divisible by it.

    Examples
    --------
    >>> w = Dirac()((2, 2, 3))
    >>> w[:, :, 1]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """

    dtype_kind: ClassVar[DTypeKind] = "any"

    def __init__(self, groups: int = 1) -> None:
        self.groups = check_integer(groups, "groups", ValueError)
        if self.groups < 1:
            raise ValueError(f"groups must be a positive integer. Received: groups={groups!r}")

    def validate(self, request: Request) -> None:
        shape = request.shape
        if len(shape) not in (3, 4, 5):
            raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported. "
                             f"Received: shape={shape}")
        if shape[0] % self.groups:
            raise ValueError(f"dim 0 must be divisible by groups. "
                             f"Received: shape={shape}, groups={self.groups}")

    def generate(self, request: Request) -> Array:
        self.validate(request)
        shape = request.shape
        values = np.zeros(shape, dtype=np.int8)
        if values.size == 0:
            return request.write_whole(values)
        per_group = shape[0] // self.groups
        centre = tuple(k // 2 for k in shape[2:])
        d = np.arange(min(per_group, shape[1]))
        for g in range(self.groups):
            values[(g * per_group + d, d) + centre] = 1
        return request.write_whole(values)

    def get_config(self) -> Config:
        return {"groups": self.groups}


class Sparse(SeededInitializer):
    """A sparse 2-D matrix (torch's ``sparse_``; Martens 2010).

    Normal values with standard deviation ``stddev``; in each column,
    ``ceil(sparsity * rows)`` entries, at random rows, are set to zero. The
    normal values are stream positions ``[0, n)`` and the row order of the
    zeros comes from uniform sort keys at positions ``[n, 2 n)``
    (``n = rows * cols``, both after ``offset``).

    Parameters
    ----------
    sparsity : float
        In ``[0, 1]``: the fraction of each column set to zero.
    stddev : float, default 0.01
    seed : int or None

    Examples
    --------
    >>> w = Sparse(0.5, stddev=1.0, seed=0)((4, 3))
    >>> (w == 0).sum(axis=0)
    array([2, 2, 2])
    """

    def __init__(self, sparsity: float, stddev: float = 0.01,
                 seed: InitializerSeed = None) -> None:
        self.sparsity = check_real(sparsity, "sparsity", minimum=0.0)
        if self.sparsity > 1.0:
            raise ValueError(f"sparsity must be <= 1. Received: sparsity={sparsity}")
        self.stddev = check_real(stddev, "stddev", minimum=0.0)
        super().__init__(seed)

    def validate(self, request: Request) -> None:
        if len(request.shape) != 2:
            raise ValueError(f"Only tensors with 2 dimensions are supported. "
                             f"Received: shape={request.shape}")

    def generate(self, request: Request) -> Array:
        self.validate(request)
        shape = request.shape
        rows, cols = shape
        n = rows * cols
        kw: dict[str, Any] = dict(seed=self._call_seed, stream=request.stream,
                                  backend=request.backend)
        dtype = _working_dtype(request)
        values = fr.normal(shape, 0.0, self.stddev, dtype=dtype, offset=request.offset, **kw)
        keys = fr.uniform(shape, dtype=np.float64, offset=request.offset + n, **kw)
        num_zeros = math.ceil(self.sparsity * rows)
        order = np.argsort(keys, axis=0, kind="stable")[:num_zeros]
        values[order, np.arange(cols)] = 0
        return request.write_whole(values)

    def get_config(self) -> Config:
        return {"sparsity": self.sparsity, "stddev": self.stddev, **super().get_config()}


class STFT(Initializer):
    """Kernels of a short-time Fourier transform as a convolution (Keras' ``STFT``).

    For a ``(frame_length, 1, fft_bins)`` kernel, ``fft_length = 2 (fft_bins - 1)``:
    ``cos(-2 pi t f / fft_length)`` (``side="real"``) or ``sin(...)``
    (``side="imag"``) at time ``t`` and frequency bin ``f``, times the window,
    divided by the window's L2 norm (``scaling="density"``) or L1 norm
    (``"spectrum"``). Computed in float64 and rounded once.

    Parameters
    ----------
    side : {"real", "imag"}, default "real"
    window : str or array_like or None, default "hann"
        A ``scipy.signal.get_window`` name (SciPy is imported when needed), the
        window values, or ``None`` for none.
    scaling : {"density", "spectrum", None}, default "density"
    periodic : bool, default False
        Periodic (DFT-even) rather than symmetric window.

    Examples
    --------
    >>> k = STFT(window=None, scaling=None)((4, 1, 3))
    >>> np.round(k[:, 0, :], 6) + 0.0
    array([[ 1.,  1.,  1.],
           [ 1.,  0., -1.],
           [ 1., -1.,  1.],
           [ 1.,  0., -1.]], dtype=float32)
    """

    def __init__(self, side: Literal["real", "imag"] = "real",
                 window: str | npt.ArrayLike | None = "hann",
                 scaling: Literal["density", "spectrum"] | None = "density",
                 periodic: bool = False) -> None:
        self.side = check_choice(side, "side", ("real", "imag"))
        if isinstance(window, str):
            _get_window(window, 1, False)  # raises for an unknown window
        elif window is not None:
            array = np.asarray(window, dtype=np.float64)
            if array.ndim != 1:
                raise ValueError("window must be a name, a 1-D array or None. "
                                 f"Received: window with shape {array.shape}")
            window = array.tolist()
        self.window = cast("str | list[float] | None", window)   # a name, the values or None
        if scaling is not None:
            check_choice(scaling, "scaling", ("density", "spectrum"))
        self.scaling = scaling
        if not isinstance(periodic, (bool, np.bool_)):
            raise ValueError(f"periodic must be a bool. Received: periodic={periodic!r}")
        self.periodic = bool(periodic)

    def validate(self, request: Request) -> None:
        if len(request.shape) != 3:
            raise ValueError("STFT kernels have shape (frame_length, input_channels, "
                             f"fft_bins). Received: shape={request.shape}")
        if not isinstance(self.window, str) and self.window is not None and \
                len(self.window) != request.shape[0]:
            raise ValueError("The shape of window must be (frame_length,). "
                             f"Received: window shape={(len(self.window),)}")

    def generate(self, request: Request) -> Array:
        self.validate(request)
        shape = request.shape
        frame_length, _, fft_bins = shape
        fft_length = (fft_bins - 1) * 2
        t = np.arange(frame_length, dtype=np.float64).reshape(-1, 1, 1)
        f = np.arange(fft_bins, dtype=np.float64).reshape(1, 1, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            args = (-2.0 * t) * (f / fft_length) * np.pi
        kernel = np.cos(args) if self.side == "real" else np.sin(args)
        if self.window is not None:
            if isinstance(self.window, str):
                win = _get_window(self.window, frame_length, self.periodic)
            else:
                win = np.asarray(self.window, dtype=np.float64)
            if win.shape != (frame_length,):
                raise ValueError("The shape of window must be (frame_length,). "
                                 f"Received: window shape={win.shape}")
            win = win.reshape(-1, 1, 1)
            kernel = kernel * win
            if self.scaling == "density":
                kernel = kernel / np.sqrt(np.sum(win * win))
            elif self.scaling == "spectrum":
                kernel = kernel / np.sum(np.abs(win))
        return request.write_whole(np.broadcast_to(kernel, shape))

    def get_config(self) -> Config:
        return {"side": self.side, "window": self.window, "periodic": self.periodic,
                "scaling": self.scaling}


def _get_window(name: str, length: int, periodic: bool) -> npt.NDArray[np.float64]:
    try:
        from scipy.signal import get_window
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("STFT windows by name need SciPy (pip install scipy)") from exc
    try:
        return get_window(name, length, fftbins=periodic)
    except ValueError as exc:
        raise ValueError(f"Unknown window: {exc}. Received: window={name!r}") from None
