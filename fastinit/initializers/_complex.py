"""Complex-valued samples (complex64, complex128), as ``jax.nn.initializers`` defines them.

A complex tensor of shape ``S`` is drawn from a real tensor of shape
``S + (2,)`` in the matching real dtype (float32 for complex64, float64 for
complex128): element ``i`` of the complex tensor uses stream positions
``2i`` and ``2i + 1``. So regions (``index=``) and offsets keep their meaning,
and the real draws are exact and backend-independent like every fastinit
draw; the polar transforms below use NumPy's ``log``, ``sqrt``, ``cos`` and
``sin``, which may differ by an ulp between platforms.

- normal: real and imaginary parts independent normals of std
  ``stddev / sqrt(2)`` (so ``E|z|^2 = stddev^2``), plus ``mean`` on the real part.
- uniform (disk): ``r = sqrt(2 u1)``, ``theta = 2 pi u2``: uniform on the disk
  of radius ``sqrt(2)``, ``E|z|^2 = 1``, then scaled.
- truncated normal: ``|z|^2`` exponential with mean 1, truncated at
  ``upper^2``: ``r = sqrt(-log(1 - (1 - exp(-upper^2)) u1))``, uniform phase,
  then scaled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import random as fr

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from .._typing import Array, FloatArray
    from .base import Request


def real_dtype(dtype: npt.DTypeLike) -> np.dtype[np.floating[Any]]:
    return np.dtype(np.float32) if np.dtype(dtype) == np.complex64 else np.dtype(np.float64)


def _pairs(request: Request, seed: int, draw: Callable[..., FloatArray],
           *args: float) -> FloatArray:
    """Draw the ``shape + (2,)`` real tensor of ``request``'s region (``draw`` is a
    :mod:`fastinit.random` function)."""
    index = None if request.index is None else request.index + (slice(None),)
    return draw(request.shape + (2,), *args, dtype=real_dtype(request.dtype), seed=seed,
                stream=request.stream, index=index, offset=2 * request.offset,
                backend=request.backend)


def normal(request: Request, seed: int, mean: float, stddev: float) -> Array:
    parts = _pairs(request, seed, fr.normal, 0.0, stddev / np.sqrt(2.0))
    return request.write((parts[..., 0] + mean) + 1j * parts[..., 1])


def _polar(request: Request, radius: FloatArray, theta: FloatArray, scale: float) -> Array:
    values = radius * (np.cos(theta) + 1j * np.sin(theta))
    return request.write(values * scale)


def uniform_disk(request: Request, seed: int, scale: float) -> Array:
    u = _pairs(request, seed, fr.uniform, 0.0, 1.0)
    rt = u.dtype.type
    radius = np.sqrt(rt(2) * u[..., 0])
    theta = rt(2 * np.pi) * u[..., 1]
    return _polar(request, radius, theta, scale)


def truncated_normal(request: Request, seed: int, upper: float, scale: float) -> Array:
    u = _pairs(request, seed, fr.uniform, 0.0, 1.0)
    rt = u.dtype.type
    t = rt(1 - np.exp(-(upper ** 2))) * u[..., 0]
    radius = np.sqrt(-np.log1p(-t))
    theta = rt(2 * np.pi) * u[..., 1]
    return _polar(request, radius, theta, scale)
