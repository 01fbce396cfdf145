"""Backends: one narrow contract, several implementations, grouped by device.

A backend is an object (a module) with a ``fill(dist, key, out, run_starts,
run_length)`` function that writes ``out`` (1-D, C-contiguous, the output
dtype), which holds ``len(run_starts)`` runs of ``run_length`` consecutive
elements of the global tensor, run ``r`` starting at flat index
``run_starts[r]``. It follows :mod:`fastinit.stream` and nothing else: no
validation, no regions, no dtype resolution happen here (``fastinit._target``
does that, once). ``numpy_backend`` is the reference, ``numba/`` the CPU
kernels, ``cuda/`` the GPU (CuPy) kernels, routing and linear algebra.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from .._typing import FloatArray

NAMES = ("numpy", "numba", "cupy")  # "cupy": GPU outputs only, never chosen by "auto"


class FillBackend(Protocol):
    """The contract of a CPU backend (a module, or any object with this method)."""

    def fill(self, dist: Distribution, key: tuple[int, int], out: npt.NDArray[Any],
             run_starts: npt.NDArray[np.int64], run_length: int) -> None:
        """Write ``len(run_starts)`` runs of ``run_length`` stream elements into ``out``."""


_EXTRA: dict[str, FillBackend] = {}  # backends plugged in with register()


@dataclass(frozen=True)
class Distribution:
    """What to draw, as the stream's output stage sees it (see ``fastinit.stream``).

    ``kind`` is ``stream.UNIFORM``, ``NORMAL`` or ``TRUNCATED_NORMAL``; ``wide``
    selects the f64 family. ``x = loc + scale * (sign * z)`` is clamped to
    ``[lo, hi]``. The truncated-normal fields come from
    ``stream.truncated_normal_plan``.
    """

    kind: int
    wide: bool
    loc: float
    scale: float
    lo: float
    hi: float
    proposal: int = 0
    alpha: float = 0.0
    beta: float = 0.0
    rate: float = 1.0
    m2: float = 0.0
    sign: float = 1.0

    def params(self) -> FloatArray:
        """The float parameters as one array in the working precision, kernel order."""
        return np.array([self.loc, self.scale, self.lo, self.hi, self.alpha, self.beta,
                         self.rate, self.m2, self.sign],
                        dtype=np.float64 if self.wide else np.float32)


_MODULES = {"numpy": "numpy_backend", "numba": "numba", "cupy": "cuda"}


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def cupy_available() -> bool:
    return importlib.util.find_spec("cupy") is not None


def register(name: str, backend: FillBackend | None) -> None:
    """Plug in a CPU backend object under ``name`` (``backend=None`` removes it): how the
    test suite runs the contract suite on the host-compiled CUDA code."""
    if backend is None:
        _EXTRA.pop(name, None)
    else:
        _EXTRA[name] = backend


def check_name(name: object) -> str:
    """``name`` if it names a backend ("auto" included), else TypeError / ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string. Received: backend={name!r}")
    if name != "auto" and name not in NAMES and name not in _EXTRA:
        names = ", ".join(map(repr, ("auto",) + NAMES + tuple(_EXTRA)))
        raise ValueError(f"backend must be one of {names}. Received: backend={name!r}")
    return name


def get(name: str = "auto") -> FillBackend:
    """The backend module called ``name`` ("auto": numba if installed, else numpy; its
    small calls do not wait for a kernel's first compilation, see ``numba._auto``)."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name == "auto":
        if numba_available():
            return importlib.import_module(f"{__name__}.numba._auto")
        name = "numpy"
    check_name(name)
    if name == "numba" and not numba_available():
        raise ValueError("backend='numba' needs the numba package (pip install numba). "
                         "Received: backend='numba'")
    if name == "cupy" and not cupy_available():
        raise ValueError("backend='cupy' needs CuPy with its CUDA libraries (pip install "
                         "\"fastinit-ml[cupy]\", i.e. cupy-cuda12x[ctk]; cupy-cuda13x[ctk] for "
                         "a CUDA 13 driver) and an NVIDIA GPU. Received: backend='cupy'")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")
