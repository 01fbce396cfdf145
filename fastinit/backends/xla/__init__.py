"""The XLA backend: the stream in jax.numpy, traced under ``jit``, each element computed
where it lives.

:func:`sample` returns a ``jax.Array`` whose flat element ``i`` is element
``offset + i`` of the stream (``fastinit.stream``), bit for bit the NumPy
backend's value (XLA:CPU's flushed subnormals aside, ``docs/jax.md``), for a
data key given as uint32 words, traced or not. XLA arrays cannot be written
in place, so this backend returns arrays instead of following the ``fill``
contract of the others; :mod:`fastinit.jax` is its front end.

- Uniform and normal values are elementwise functions of the element's
  position (an iota): one fused loop, no temporaries, and under any sharding
  each device computes its own elements with no communication.
- Truncated normal (:mod:`._truncated`) computes attempt 0 elementwise, then
  resamples the rejected elements in compacted batches with local loops; a
  ``custom_partitioning`` rule runs that per device on its shard, so no
  rejection round needs a collective.

Modules: ``_philox`` (Philox, keys, positions), ``_guards`` (XLA's rewrites
and their guards), ``_maps`` (words to floats), ``_elements`` (an element's
value), ``_truncated`` (the rejection loop and its partitioning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ... import _dtypes, stream
from . import _elements, _guards
from ._philox import derive_key, grid, positions, with_batch_axes

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jax
    import numpy.typing as npt

    from .. import Distribution
    from ._philox import Word

__all__ = ["sample", "derive_key", "guards"]

guards = _guards


def sample(dist: Distribution, key: Sequence[Word],
           shape: Sequence[int], dtype: npt.DTypeLike, offset: int = 0) -> jax.Array:
    """Values of ``dist`` for a tensor of ``shape`` at stream position ``offset``.

    Parameters
    ----------
    dist : fastinit.backends.Distribution
        Its ``wide`` flag must match ``dtype`` (float64 needs ``jax_enable_x64``).
    key : tuple of two uint32 arrays of one batch shape ``B`` (or ints)
        The data key ``(k0, k1)`` (:func:`derive_key`); traced values work.
    shape : tuple of int
    dtype : numpy dtype
        float16, bfloat16, float32 or float64.
    offset : int
        Stream position of element 0.

    Returns
    -------
    jax.Array of shape ``B + shape``
    """
    import jax.numpy as jnp

    dtype = _check_dtype(dist, dtype)
    shape = tuple(int(n) for n in shape)
    key = _batched_key(key, len(shape))
    if dist.kind == stream.TRUNCATED_NORMAL:
        from . import _truncated
        return _truncated.sample(dist, key, shape, dtype, offset)
    position = with_batch_axes(positions(grid(shape, (0,) * len(shape)), shape, offset),
                               key[0].ndim - len(shape))
    z, ops = _elements.uniform_or_normal(dist, key, position)
    out = _elements.output_stage(dist, z, ops, dtype)
    return jnp.broadcast_to(out, jnp.shape(key[0])[:jnp.ndim(key[0]) - len(shape)] + shape)


def _check_dtype(dist: Distribution, dtype: npt.DTypeLike) -> np.dtype[Any]:
    """``dtype`` if ``dist`` is computed for it: a wide (float64) distribution for float64
    only, with ``jax_enable_x64`` (without it JAX makes its 64-bit steps 32-bit)."""
    import jax

    checked = _dtypes.resolve(dtype)
    if checked.name not in _dtypes.SUPPORTED:
        raise TypeError("fastinit.backends.xla samples float16, bfloat16, float32 or "
                        f"float64. Received: dtype={dtype!r}")
    if dist.wide != (checked == np.float64):
        raise ValueError(f"The distribution is computed for {'float64' if dist.wide else 'float32'}"
                         f" and narrower (dist.wide={dist.wide}); it cannot give {checked}. "
                         f"Received: dtype={dtype!r}")
    if dist.wide and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:   # x64 off
        raise ValueError("float64 values need jax_enable_x64 (jax.config.update("
                         f"'jax_enable_x64', True)). Received: dtype={dtype!r}")
    return checked


def _batched_key(key: Sequence[Word], ndim: int) -> tuple[jax.Array, ...]:
    """Key words shaped ``B + (1,) * ndim``, to broadcast against positions."""
    import jax.numpy as jnp

    k0, k1 = (jnp.asarray(np.uint32(k) if isinstance(k, (int, np.integer)) else k,
                          jnp.uint32) for k in key)
    k0, k1 = jnp.broadcast_arrays(k0, k1)
    return tuple(k.reshape(k.shape + (1,) * ndim) for k in (k0, k1))
