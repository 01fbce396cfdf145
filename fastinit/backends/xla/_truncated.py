"""Truncated normal under XLA: per-element rejection with no global predicate.

Section 7.3 of ``docs/stream.md``: element ``i`` makes attempts 0, 1, ...
from its own counters until one is accepted (attempt 255's candidate is kept).
XLA has no per-element loop, and a ``while_loop`` over a sharded array would
all-reduce its predicate every round. So, on each device's part of the
tensor (the whole tensor when it is not partitioned):

1. attempt 0 for every element in one fused loop, straight into the output,
   a NaN marking each rejected element (no accepted value is NaN);
2. the NaN positions compacted, chunk by chunk (temporaries of a chunk), into
   a list of at most ``capacity`` slots, sized from the proposal's rejection
   rate (:func:`_capacity`);
3. attempts 1, 2, ... on the list's slots, accepted values scattered into the
   output; when the pending slots fit in an eighth of the list, they move to a
   list an eighth as long (so the late rounds cost little); repeated from 2
   while more than ``capacity`` elements were rejected.

A ``custom_partitioning`` rule runs this on each device's shard, under
``jit(..., out_shardings=...)`` as under the front end's ``out_sharding=``: the
partitioner picks the output's sharding and each device works out its shard's
corner from its mesh coordinates, with no collective. ``custom_vmap`` maps
over keys by adding batch axes. Element values equal the stream's whatever the
sharding, the capacity and the order of rounds: each attempt reads only its
element's counters.
"""

import functools
import math

import numpy as np

from ... import stream
from . import _elements, _guards
from ._philox import grid, positions

__all__ = ["sample"]

MIN_CAPACITY = 256      # the shortest slot list
SHRINK = 8              # each list is an eighth of the one before
CHUNK_FRACTION = 64     # compaction reads the output in chunks of 1/64 (at least ...)
MIN_CHUNK = 1 << 14     # ... this many elements


def sample(dist, key, shape, dtype, offset):
    """Truncated-normal values of shape ``B + shape`` (key words shaped ``B + (1,) * ndim``)."""
    k0, k1 = (k.reshape(k.shape[:k.ndim - len(shape)]) for k in key)
    return _mapped(dist, shape, np.dtype(dtype), offset, _guards.current())(k0, k1)


@functools.lru_cache(maxsize=256)
def _mapped(dist, shape, dtype, offset, guards):
    """The sampler of keys shaped ``B`` (any ``B``), mapped over keys by batch axes."""
    from jax.custom_batching import custom_vmap
    import jax.numpy as jnp

    @custom_vmap
    def draw(k0, k1):
        return _partitioned(dist, shape, dtype, offset, guards, k0.ndim)(k0, k1)

    @draw.def_vmap
    def _(axis_size, in_batched, k0, k1):
        k0, k1 = (k if batched else jnp.broadcast_to(k, (axis_size,) + k.shape)
                  for k, batched in zip((k0, k1), in_batched))
        return draw(k0, k1), True

    return draw


@functools.lru_cache(maxsize=256)
def _partitioned(dist, shape, dtype, offset, guards, batch_ndim):
    """``(k0, k1) -> values``, partitioned per device by :func:`_local`."""
    from jax.experimental.custom_partitioning import custom_partitioning
    from jax.sharding import NamedSharding, PartitionSpec

    def whole(k0, k1):
        full = k0.shape + shape
        return _local(dist, k0, k1, full, (0,) * len(full), full, offset, dtype, guards)

    op = custom_partitioning(whole)

    def partition(mesh, arg_shapes, result_shape):
        sharding = result_shape.sharding
        full = result_shape.shape
        spec = tuple(sharding.spec) + (None,) * (len(full) - len(sharding.spec))
        key_sharding = NamedSharding(mesh, PartitionSpec(*spec[:batch_ndim]))

        def lower(k0, k1):
            local, starts = [], []
            for size, names in zip(full, spec):
                names = () if names is None else (names,) if isinstance(names, str) else names
                parts = math.prod(mesh.shape[name] for name in names)
                part = _mesh_index(mesh, names)
                local.append(-(-size // parts))        # the partitioner pads the last part
                starts.append(part * np.uint32(local[-1]))
            return _local(dist, k0, k1, tuple(local), starts, full, offset, dtype, guards)

        return mesh, lower, sharding, (key_sharding, key_sharding)

    def infer(mesh, arg_shapes, result_shape):
        key_spec = tuple(getattr(arg_shapes[0].sharding, "spec", ()))[:batch_ndim]
        return NamedSharding(mesh, PartitionSpec(*key_spec))

    batch = " ".join(f"b{i}" for i in range(batch_ndim))
    axes = " ".join(f"s{i}" for i in range(len(shape)))
    op.def_partition(partition=partition, infer_sharding_from_operands=infer,
                     sharding_rule=f"{batch}, {batch} -> {batch} {axes}")
    return op


def _mesh_index(mesh, names):
    """This device's index along the mesh axes ``names`` (major to minor), uint32."""
    import jax.numpy as jnp
    from jax import lax

    index = jnp.uint32(0)
    for name in names:
        index = index * np.uint32(mesh.shape[name]) + lax.axis_index(name).astype(jnp.uint32)
    return index


def _local(dist, k0, k1, local_shape, starts, full_shape, offset, dtype, guards):
    """The values of a ``local_shape`` block at ``starts`` of the ``full_shape`` (batch axes
    first) tensor, ``k0``/``k1`` the block's keys."""
    import jax.numpy as jnp

    with _guards.using(**vars(guards)):
        nb = k0.ndim
        shape, global_shape = local_shape[nb:], full_shape[nb:]
        key = tuple(k.reshape(k.shape + (1,) * len(shape)) for k in (k0, k1))
        position = positions(grid(shape, starts[nb:]), global_shape, offset)
        z, ok, ops = _elements.candidate(dist, key, position, 0)
        values = _elements.output_stage(dist, z, ops, dtype)
        out = jnp.where(ok, values, jnp.asarray(np.nan, dtype))
        place = _Place(dist, k0, k1, shape, starts[nb:], global_shape, offset, dtype)
        return _resample(place, out.reshape(-1)).reshape(out.shape)


class _Place:
    """Where the flat local index ``j`` of a block lies: its keys and stream position."""

    def __init__(self, dist, k0, k1, shape, starts, global_shape, offset, dtype):
        self.dist, self.shape, self.starts = dist, shape, starts
        self.global_shape, self.offset, self.dtype = global_shape, offset, dtype
        self.k0, self.k1 = k0.reshape(-1), k1.reshape(-1)
        self.size = math.prod(shape)

    def attempt(self, j, attempt):
        """``(value in the output dtype, accepted)`` of attempt ``attempt`` at indices ``j``."""
        import jax.numpy as jnp

        j = j.astype(jnp.uint32)
        batch, rest = j // np.uint32(max(self.size, 1)), j % np.uint32(max(self.size, 1))
        key = (self.k0[batch], self.k1[batch]) if self.k0.size > 1 else (self.k0[0],
                                                                         self.k1[0])
        indices = []
        for d in range(len(self.shape)):
            inner = np.uint32(math.prod(self.shape[d + 1:]))
            local = (rest // inner) % np.uint32(self.shape[d])
            indices.append(local + jnp.asarray(self.starts[d], jnp.uint32))
        position = positions(indices, self.global_shape, self.offset)
        z, ok, ops = _elements.candidate(self.dist, key, position, attempt)
        return _elements.output_stage(self.dist, z, ops, self.dtype), ok


def _resample(place, flat):
    """``flat`` with every NaN (rejected at attempt 0) replaced by its element's value."""
    import jax.numpy as jnp
    from jax import lax

    n = flat.size
    if n == 0:
        return flat
    capacity = _capacity(place.dist, n)

    def more(state):
        return state[1] > 0

    def batch(state):
        flat, _ = state
        slots, count = _compact(flat, capacity)
        flat = _resolve(place, flat, slots, capacity)
        return flat, count - capacity

    flat, _ = lax.while_loop(more, batch, (flat, jnp.int32(1)))
    return flat


def _compact(flat, capacity):
    """The local indices of the first ``capacity`` NaNs of ``flat`` (``flat.size`` in unused
    slots) and the number of NaNs, reading ``flat`` chunk by chunk."""
    import jax.numpy as jnp
    from jax import lax

    n = flat.size
    chunk = min(n, max(MIN_CHUNK, n // CHUNK_FRACTION))
    chunks = -(-n // chunk)
    iota = jnp.arange(chunk, dtype=jnp.int32)

    def body(c, state):
        slots, count = state
        start = jnp.minimum(c * chunk, n - chunk)       # the last chunk overlaps the one before
        index = start + iota
        pending = jnp.isnan(lax.dynamic_slice(flat, (start,), (chunk,))) & (index >= c * chunk)
        rank = count + jnp.cumsum(pending, dtype=jnp.int32) - 1
        target = jnp.where(pending & (rank < capacity), rank, capacity)
        slots = slots.at[target].set(index, mode="drop")
        return slots, count + jnp.sum(pending, dtype=jnp.int32)

    slots = jnp.full((capacity,), n, jnp.int32)
    return lax.fori_loop(0, chunks, body, (slots, jnp.int32(0)))


def _resolve(place, flat, slots, capacity, attempt=1):
    """Run the attempts of the elements at ``slots`` (``flat.size``: empty) from ``attempt``
    on, until all are accepted; returns ``flat`` with their values."""
    import jax.numpy as jnp
    from jax import lax

    n = flat.size
    last = stream.MAX_ATTEMPTS - 1
    smaller = capacity // SHRINK if capacity >= SHRINK * MIN_CAPACITY else 0

    def more(state):
        _, pending, _ = state
        return jnp.sum(pending, dtype=jnp.int32) > smaller

    def attempt_round(state):
        flat, pending, k = state
        values, ok = place.attempt(jnp.minimum(slots, n - 1), k)
        take = pending & (ok | (k == last))
        flat = flat.at[jnp.where(take, slots, n)].set(values, mode="drop")
        return flat, pending & ~take, k + np.uint32(1)

    state = (flat, slots < n, jnp.uint32(attempt))
    flat, pending, k = lax.while_loop(more, attempt_round, state)
    if not smaller:
        return flat
    (kept,) = jnp.nonzero(pending, size=smaller, fill_value=capacity)
    slots = jnp.where(kept < capacity, slots[jnp.minimum(kept, capacity - 1)], n)
    return _resolve(place, flat, slots, smaller, k)


def _capacity(dist, n):
    """Slots of the first list: the expected rejections of attempt 0 and a margin, at most
    a sixteenth of the block (more rejections take more passes, not more memory)."""
    expected = _rejection_rate(dist) * n
    capacity = int(1.25 * expected) + MIN_CAPACITY
    return max(1, min(n, capacity, max(MIN_CAPACITY, n // 16)))


def _rejection_rate(dist):
    """Probability that an attempt is rejected (section 7.3's proposals), from the bounds."""
    alpha, beta, rate = dist.alpha, dist.beta, dist.rate

    def mass(a, b):   # P(a <= Z <= b), from whichever tail is accurate
        if a >= 0:
            return 0.5 * (math.erfc(a / math.sqrt(2)) - math.erfc(b / math.sqrt(2)))
        if b <= 0:
            return mass(-b, -a)
        return 1.0 - 0.5 * math.erfc(-a / math.sqrt(2)) - 0.5 * math.erfc(b / math.sqrt(2))

    try:
        if dist.proposal == stream.PROPOSAL_NORMAL:
            accept = mass(alpha, beta)
        elif dist.proposal == stream.PROPOSAL_UNIFORM:
            accept = (mass(alpha, beta) * math.sqrt(2 * math.pi) * math.exp(dist.m2 / 2)
                      / (beta - alpha))
        else:
            accept = (rate * math.exp(rate * alpha - rate * rate / 2) * math.sqrt(2 * math.pi)
                      * mass(alpha, beta))
    except (OverflowError, ValueError, ZeroDivisionError):
        accept = 0.5
    if not 0.0 < accept <= 1.0 or math.isnan(accept):
        accept = 0.5
    return 1.0 - accept
