"""A JAX key to a fastinit seed: the one rule, on the host and in the graph.

The seed of a key is read from its key data, never from JAX's PRNG
implementation: a typed key (``jax.random.key``) gives its ``key_data``, a raw
key (``jax.random.PRNGKey``) is its data. Two 32-bit words ``(w0, w1)`` are the
seed ``(w0 << 32) | w1`` (threefry's keys); longer key data (``rbg``:
four words) are mixed down to two words with Philox, four words at a time
(counter: the words; key: the running pair, from ``(0, 0)``). An int is a seed
as it is (:func:`fastinit.initializers.base.resolve_seed`).

:func:`key_to_seed` applies the rule to a concrete key; :func:`seed_words` to any
key, concrete or traced (inside ``jit``, after ``fold_in`` / ``split``), as
uint32 ``(lo, hi)`` words of the seed, in the graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import random as fr
from ..initializers.base import resolve_seed

if TYPE_CHECKING:
    from types import ModuleType

    import jax

    from .._typing import JaxKey

__all__ = ["key_to_seed", "seed_words"]


def _jax() -> ModuleType:
    import jax
    return jax


def _is_int(key: object) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_))


def key_to_seed(key: JaxKey) -> int:
    """The fastinit seed of a JAX key (or an int seed, returned as it is).

    Examples
    --------
    >>> import jax
    >>> key_to_seed(jax.random.PRNGKey(5)) == key_to_seed(jax.random.key(5))
    True
    >>> key_to_seed(7)
    7
    """
    if _is_int(key):
        return resolve_seed(int(key))
    words = np.asarray(_key_data(key))
    words = words.astype(np.uint32)
    if words.size != 2:
        acc = np.zeros(2, dtype=np.uint32)
        padded = np.concatenate([words, np.zeros(-words.size % 4, dtype=np.uint32)])
        for block in padded.reshape(-1, 4):
            acc = fr.philox4x32_10(block, acc)[:2]
        words = acc
    return (int(words[0]) << 32) | int(words[1])


def seed_words(key: JaxKey) -> tuple[jax.Array | np.uint32, jax.Array | np.uint32]:
    """``(lo, hi)``: the low and high 32-bit words of the seed of ``key`` (uint32 scalars:
    arrays in the graph, or NumPy values for an int seed)."""
    if _is_int(key):
        seed = resolve_seed(int(key))
        return np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32)
    jnp = _jax().numpy
    from ..backends.xla import _philox

    words = _key_data(key)
    words = jnp.asarray(words).astype(jnp.uint32)
    if words.shape[0] != 2:
        acc = (np.uint32(0), np.uint32(0))
        padded = jnp.concatenate([words, jnp.zeros(-words.shape[0] % 4, jnp.uint32)])
        for b in range(0, padded.shape[0], 4):
            block, _ = _philox.philox(tuple(padded[b:b + 4]), acc)
            acc = block[:2]
        words = acc
    return words[1], words[0]


def _key_data(key: object) -> Any:
    """The key data of a typed key, or ``key`` itself (raw key data); one key only."""
    jax = _jax()
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError("fastinit.jax takes one key (map over a batch of keys with "
                             f"jax.vmap). Received: a key array of shape {key.shape}")
        return jax.random.key_data(key)
    given = key
    if not hasattr(key, "shape") or not hasattr(key, "dtype"):
        key = np.asarray(key)
    _check_words(np.dtype(key.dtype), tuple(key.shape), given)
    if len(key.shape) != 1:
        raise ValueError("fastinit.jax takes one key (map over a batch of keys with "
                         f"jax.vmap). Received: key data of shape {tuple(key.shape)}")
    return key


def _check_words(dtype: np.dtype[Any], shape: tuple[int, ...], given: object) -> None:
    """TypeError unless the raw key data ``given`` (of ``dtype`` and ``shape``) holds
    integer words, two at least: a float, a string, None, a bool or a 0-d array is no
    key (a batch of keys, empty or not, passes: the caller refuses it)."""
    if np.dtype(dtype).kind not in "ui" or (len(shape) <= 1 and int(np.prod(shape)) < 2):
        shown = (f"key={given!r:.80}" if len(shape) == 0 else
                 f"key with dtype {dtype} and shape {tuple(shape)}")
        raise TypeError("key must be a JAX PRNG key (jax.random.key or PRNGKey) or an int "
                        f"seed. Received: {shown}")
