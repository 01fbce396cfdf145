"""Sharded initialization: regions of a global tensor, shard specs, and name streams.

Because element ``i`` of a tensor is a pure function of ``(seed, stream, i)``
(``docs/stream.md``), any region of a tensor can be produced on its own and
equals that region of the whole tensor. This module holds what the scale-out
features (:mod:`fastinit.materialize`, :mod:`fastinit.dask`,
:func:`fastinit.torch.init_module_`) share:

- :func:`name_stream`: the stream number of a named tensor, **defined once here**.
- :class:`ShardSpec` and :func:`shard_slices`: "shard ``k`` of ``n`` along
  ``axis``" as a region (PyTorch ``torch.chunk`` / DTensor ``Shard`` semantics).
- :func:`is_elementwise` and :func:`generate`: produce a region of a global
  tensor with any initializer.

Elementwise and global initializers
-----------------------------------
For the elementwise initializers (``RandomNormal``, ``RandomUniform``,
``TruncatedNormal``, ``VarianceScaling`` and its presets Glorot / He / LeCun,
real and complex; ``Zeros``, ``Ones``, ``Constant``, ``Identity``) a region
is computed on its own, in memory and time proportional to the region.

The global initializers (``Orthogonal``, ``DeltaOrthogonal``, ``Sparse``,
``Dirac``, ``STFT``, ``FromArray``, and any custom initializer) are
**computed whole and the region is cut out of them**: the values are exactly
the global tensor's, never an approximation, but each shard costs the memory
and time of the whole tensor. (A tall-skinny distributed QR for
``Orthogonal`` is not implemented; its values would differ from the
single-process QR in the last bits, and fastinit promises bit equality.)

Examples
--------
>>> import numpy as np
>>> import fastinit.initializers as fi
>>> init = fi.HeNormal(seed=0)
>>> whole = init((6, 4))
>>> part = generate(init, (6, 4), ShardSpec(axis=0, num_shards=4, index=1))
>>> bool(np.array_equal(part, whole[2:4]))
True
>>> name_stream("layers.0.attn.q_proj.weight")
15629305617510710834
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsIndex, Union

import numpy as np

from ._checks import check_integer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy.typing as npt

    from ._typing import Array, Backend, Index, Output, ShapeLike

    #: A region of a global tensor: an index (slices and ints) or a shard.
    Region = Union[Index, "ShardSpec", None]

__all__ = ["name_stream", "ShardSpec", "shard_slices", "shard_bounds", "to_index",
           "is_elementwise", "generate"]


def name_stream(name: str) -> int:
    """The stream number of the tensor called ``name``: the one rule, written once.

    ``blake2b`` of the UTF-8 bytes of ``name`` with an 8-byte digest, read as
    a little-endian unsigned 64-bit integer::

        int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")

    A tensor's values thus depend on ``(seed, name)`` only: adding, removing or
    reordering other tensors of a model or a checkpoint never changes them.

    Parameters
    ----------
    name : str
        A fully-qualified tensor name, e.g. ``"encoder.layers.0.linear1.weight"``.

    Returns
    -------
    int
        In ``[0, 2**64)``.

    Examples
    --------
    >>> name_stream("weight") == int.from_bytes(
    ...     hashlib.blake2b(b"weight", digest_size=8).digest(), "little")
    True
    """
    if not isinstance(name, str):
        raise TypeError(f"A tensor name must be a string. Received: name={name!r}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def shard_bounds(length: int, num_shards: int, index: int) -> tuple[int, int]:
    """``(start, stop)`` of shard ``index`` of ``num_shards`` of an axis of ``length``.

    ``torch.chunk`` semantics, as DTensor's ``Shard`` and FSDP2 use: every
    shard holds ``ceil(length / num_shards)`` elements except the last
    non-empty one; trailing shards may be empty.

    Examples
    --------
    >>> [shard_bounds(10, 4, k) for k in range(4)]
    [(0, 3), (3, 6), (6, 9), (9, 10)]
    >>> shard_bounds(2, 4, 3)
    (2, 2)
    """
    length, num_shards, index = (check_integer(length, "length"), check_integer(num_shards, "num_shards"),
                                 check_integer(index, "shard index"))
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index must lie in [0, num_shards). "
                         f"Received: index={index}, num_shards={num_shards}")
    chunk = -(-length // num_shards) if length else 0
    start = min(index * chunk, length)
    return start, min(start + chunk, length)


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``num_shards`` along ``axis`` (``torch.chunk`` semantics).

    Examples
    --------
    >>> ShardSpec(axis=1, num_shards=2, index=1).slices((4, 5))
    (slice(None, None, None), slice(3, 5, None))
    """

    axis: int
    num_shards: int
    index: int

    def slices(self, shape: Sequence[int]) -> tuple[slice, ...]:
        """The region of the global ``shape`` this shard covers, as a tuple of slices."""
        return shard_slices(shape, self.axis, self.num_shards, self.index)


def shard_slices(shape: Sequence[int], axis: int, num_shards: int,
                 index: int) -> tuple[slice, ...]:
    """The tuple of slices of shard ``index`` of ``num_shards`` along ``axis`` of ``shape``."""
    shape = tuple(shape)
    axis = check_integer(axis, "axis")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for shape {shape}. Received: axis={axis}")
    axis %= len(shape)
    start, stop = shard_bounds(shape[axis], num_shards, index)
    return (slice(None),) * axis + (slice(start, stop),)


def to_index(shape: Sequence[int], region: Region) -> tuple[Any, ...] | None:
    """A region (``None``, a :class:`ShardSpec`, a slice/int or a tuple of them) as an index tuple."""
    if region is None:
        return None
    if isinstance(region, ShardSpec):
        return region.slices(shape)
    if isinstance(region, (slice, int, np.integer)):
        return (region,)
    if isinstance(region, tuple):
        return region
    raise TypeError("A region is a tuple of slices and ints, or a ShardSpec. "
                    f"Received: region={region!r}")


def is_elementwise(initializer: object) -> bool:
    """Whether ``initializer`` computes a region in time and memory of the region alone
    (its ``elementwise`` attribute; see :class:`fastinit.initializers.Initializer`).

    Examples
    --------
    >>> import fastinit.initializers as fi
    >>> is_elementwise(fi.GlorotUniform()), is_elementwise(fi.Orthogonal())
    (True, False)
    """
    return getattr(initializer, "elementwise", False) is True


def generate(initializer: Callable[..., Any] | str | dict[str, Any], shape: Sequence[int],
             region: Region = None, dtype: npt.DTypeLike | None = None, *,
             out: Output | None = None, stream: SupportsIndex = 0,
             backend: Backend = "auto") -> Array:
    """Region ``region`` of the global tensor that ``initializer`` gives for ``shape``.

    Parameters
    ----------
    initializer : anything :func:`fastinit.initializers.get` accepts
    shape : tuple of int
        The global shape (fans are computed from it).
    region : tuple of slice/int, ShardSpec, or None
    dtype, out, stream, backend
        As for an initializer call.

    Returns
    -------
    numpy.ndarray
        Equal, bit for bit, to ``initializer(shape, dtype, stream=stream)[region]``.
    """
    from .initializers.base import Initializer, call_initializer
    from .initializers.registry import get

    init = get(initializer)
    index = to_index(tuple(shape), region)
    kw: dict[str, Any] = {"index": index, "backend": backend}
    if isinstance(init, Initializer):
        kw["stream"] = stream
    return call_initializer(init, shape, dtype, out=out, **kw)
