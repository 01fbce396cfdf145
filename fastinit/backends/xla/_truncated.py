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
   rate (:func:`_sizes`);
3. attempts 1, 2, ... on the list's pending slots, a chunk at a time (the
   work of a round is that of its pending slots), accepted values scattered
   into the output, the pending slots moved to the front after each round;
   repeated from 2 while more than ``capacity`` elements were rejected
   (bfloat16 and float16: steps 2 and 3 a sixteenth of the block at a time, in a
   float32 copy, see :func:`_compacted`). Blocks have at most ``MAX_LISTED``
   elements (int32 indices); loops compare chunk indices with counts made here.

A ``custom_partitioning`` rule runs this on each device's shard, under
``jit(..., out_shardings=...)`` as under the front end's ``out_sharding=``: the
partitioner picks the output's sharding and each device works out its shard's
corner from its mesh coordinates, with no collective. ``custom_vmap`` maps
over keys by adding batch axes. Element values equal the stream's whatever the
sharding, the capacity and the order of rounds: each attempt reads only its
element's counters.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import stream
from . import _elements, _guards
from ._philox import grid, positions, with_batch_axes

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import jax
    import numpy.typing as npt
    from jax.sharding import AbstractMesh, Mesh, NamedSharding, Sharding

    from .. import Distribution
    from ._guards import Guards
    from ._philox import Word

    #: ``(k0, k1) -> values``: the sampler of one distribution, shape and place.
    Sampler = Callable[[jax.Array, jax.Array], jax.Array]
    #: The loop states of :func:`_resolve`: ``(slots, count, done, values, accepted,
    #: attempt)`` of a round, ``(slots, kept, done, values, accepted)`` of its steps.
    RoundState = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
    StepState = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]

__all__ = ["sample"]

FULL_PASS_WORK = 1 << 21  # element-attempts below which rounds run over the whole block
FULL_PASS_CHUNKS = 16     # ... a sixteenth of it at a time
MIN_CAPACITY = 256      # slots in the list at least (at most the block's size)
ROUND_CHUNK = 1 << 14   # slots of one step of a round, at most
MAX_LISTED = 2**31 - 1  # elements of a block, at most (the lists' int32 indices)


def sample(dist: Distribution, key: Sequence[jax.Array], shape: tuple[int, ...],
           dtype: npt.DTypeLike, offset: int) -> jax.Array:
    """Truncated-normal values of shape ``B + shape`` (key words shaped ``B + (1,) * ndim``)."""
    k0, k1 = (k.reshape(k.shape[:k.ndim - len(shape)]) for k in key)
    return _mapped(dist, shape, np.dtype(dtype), offset, _guards.current())(k0, k1)


@functools.lru_cache(maxsize=256)
def _mapped(dist: Distribution, shape: tuple[int, ...], dtype: np.dtype[Any], offset: int,
            guards: Guards) -> Sampler:
    """The sampler of keys shaped ``B`` (any ``B``), mapped over keys by batch axes."""
    from jax.custom_batching import custom_vmap
    import jax.numpy as jnp

    @custom_vmap
    def draw(k0: jax.Array, k1: jax.Array) -> jax.Array:
        return _partitioned(dist, shape, dtype, offset, guards, k0.ndim)(k0, k1)

    @draw.def_vmap
    def _(axis_size: int, in_batched: Sequence[bool], k0: jax.Array,
          k1: jax.Array) -> tuple[jax.Array, bool]:
        k0, k1 = (k if batched else jnp.broadcast_to(k, (axis_size,) + k.shape)
                  for k, batched in zip((k0, k1), in_batched))
        return draw(k0, k1), True

    return draw


@functools.lru_cache(maxsize=256)
def _partitioned(dist: Distribution, shape: tuple[int, ...], dtype: np.dtype[Any],
                 offset: int, guards: Guards, batch_ndim: int) -> Sampler:
    """``(k0, k1) -> values``, partitioned per device by :func:`_local`."""
    from jax.experimental.custom_partitioning import custom_partitioning
    from jax.sharding import NamedSharding, PartitionSpec

    def whole(k0: jax.Array, k1: jax.Array) -> jax.Array:
        full = k0.shape + shape
        return _local(dist, k0, k1, full, (0,) * len(full), full, offset, dtype, guards)

    op = custom_partitioning(whole)

    def partition(mesh: Mesh | AbstractMesh, arg_shapes: Sequence[Any], result_shape: Any,
                  ) -> tuple[Mesh | AbstractMesh, Sampler, NamedSharding,
                             tuple[NamedSharding, NamedSharding]]:
        full = result_shape.shape
        sharding = _named(result_shape.sharding, len(full))
        mesh = sharding.mesh
        spec = tuple(sharding.spec) + (None,) * (len(full) - len(sharding.spec))
        key_sharding = NamedSharding(mesh, PartitionSpec(*spec[:batch_ndim]))

        def lower(k0: jax.Array, k1: jax.Array) -> jax.Array:
            local: list[int] = []
            starts: list[Word] = []
            for size, names in zip(full, spec):
                names = () if names is None else (names,) if isinstance(names, str) else names
                parts = math.prod(mesh.shape[name] for name in names)
                part = _mesh_index(mesh, names)
                local.append(-(-size // parts))        # the partitioner pads the last part
                starts.append(part * np.uint32(local[-1]))
            return _local(dist, k0, k1, tuple(local), starts, full, offset, dtype, guards)

        return mesh, lower, sharding, (key_sharding, key_sharding)

    def infer(mesh: Mesh, arg_shapes: Sequence[Any], result_shape: Any) -> NamedSharding:
        key_spec = tuple(getattr(arg_shapes[0].sharding, "spec", ()))[:batch_ndim]
        return NamedSharding(mesh, PartitionSpec(*key_spec))

    batch = " ".join(f"b{i}" for i in range(batch_ndim))
    axes = " ".join(f"s{i}" for i in range(len(shape)))
    op.def_partition(partition=partition, infer_sharding_from_operands=infer,
                     sharding_rule=f"{batch}, {batch} -> {batch} {axes}")
    return op


def _named(sharding: Sharding, ndim: int) -> NamedSharding:
    """``sharding`` as a ``NamedSharding``: the partitioner hands a ``GSPMDSharding`` when
    the program's mesh is not known to it (``jax.set_mesh``); then a mesh of its tiles is
    made, one axis per sharded dimension (``_s0``, ``_s1``, ...), the copies last."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if isinstance(sharding, NamedSharding):
        return sharding
    hlo = sharding._to_xla_hlo_sharding(ndim)
    # jaxlib's Device is a compiled class without stubs: mypy knows none of its attributes
    devices = {d.id: d for d in sharding._device_assignment}  # type: ignore[attr-defined]
    if hlo.is_replicated():
        mesh = Mesh(np.array(list(devices.values())).reshape(-1), ("_copies",))
        return NamedSharding(mesh, PartitionSpec())
    tiles = list(hlo.tile_assignment_dimensions())
    order = [devices[i] for i in hlo.tile_assignment_devices()]
    names = [f"_s{d}" for d in range(len(tiles))]
    if hlo.replicate_on_last_tile_dim() or len(tiles) > ndim:
        names[-1] = "_copies"
    mesh = Mesh(np.array(order, dtype=object).reshape(tiles), tuple(names))
    return NamedSharding(mesh, PartitionSpec(*[n if n != "_copies" and t > 1 else None
                                               for n, t in zip(names[:ndim], tiles[:ndim])]))


def _mesh_index(mesh: Mesh | AbstractMesh, names: Sequence[str]) -> jax.Array:
    """This device's index along the mesh axes ``names`` (major to minor), uint32."""
    import jax.numpy as jnp
    from jax import lax

    index = jnp.uint32(0)
    for name in names:
        index = index * np.uint32(mesh.shape[name]) + lax.axis_index(name).astype(jnp.uint32)
    return index


def _local(dist: Distribution, k0: jax.Array, k1: jax.Array, local_shape: tuple[int, ...],
           starts: Sequence[Word], full_shape: tuple[int, ...], offset: int,
           dtype: np.dtype[Any], guards: Guards) -> jax.Array:
    """The values of a ``local_shape`` block at ``starts`` of the ``full_shape`` (batch axes
    first) tensor, ``k0``/``k1`` the block's keys."""
    import jax.numpy as jnp

    with _guards.using(**vars(guards)):
        nb = k0.ndim
        shape, global_shape = local_shape[nb:], full_shape[nb:]
        place = _Place(dist, k0, k1, shape, starts[nb:], global_shape, offset, dtype)
        n = math.prod(local_shape)
        if n == 0:
            return jnp.zeros(local_shape, dtype)
        rounds = math.log(max(n, 2)) / -math.log(max(_rejection_rate(dist), 1e-3)) + 1
        if n * rounds <= FULL_PASS_WORK:
            return _full_passes(place, n).reshape(local_shape)
        if n > MAX_LISTED:
            raise ValueError(
                f"fastinit.jax's truncated normal resolves the rejected elements of a "
                f"device's block of at most {MAX_LISTED} elements (int32 indices); the "
                f"block of shape {local_shape} (of the array {full_shape}) has {n}. Shard "
                f"the array over more devices or make it in parts. Received: shape="
                f"{full_shape[nb:]}")
        # Attempt 0 of every element in one fused loop, then the rejected ones in lists.
        key = tuple(k.reshape(k.shape + (1,) * len(shape)) for k in (k0, k1))
        position = with_batch_axes(positions(grid(shape, starts[nb:]), global_shape, offset),
                                   nb)
        z, ok, ops = _elements.candidate(dist, key, position, 0)
        values = _elements.output_stage(dist, z, ops, dtype)
        out = jnp.where(ok, values, jnp.asarray(np.nan, dtype))
        return _compacted(place, out.reshape(-1)).reshape(local_shape)


class _Place:
    """Where the flat local index ``j`` of a block lies: its keys and stream position."""

    def __init__(self, dist: Distribution, k0: jax.Array, k1: jax.Array,
                 shape: tuple[int, ...], starts: Sequence[Word],
                 global_shape: tuple[int, ...], offset: int, dtype: np.dtype[Any]) -> None:
        self.dist, self.shape, self.starts = dist, shape, starts
        self.global_shape, self.offset, self.dtype = global_shape, offset, dtype
        self.k0, self.k1 = k0.reshape(-1), k1.reshape(-1)
        self.size = math.prod(shape)

    def attempt_or_nan(self, j: jax.Array, attempt: jax.Array, once: bool = True) -> jax.Array:
        """Attempt ``attempt`` (a uint32 scalar) at the flat local indices ``j``: the value in
        the output dtype, NaN where rejected (attempt 255 is always taken). ``once``: in
        a buffer of its own, for a result that has several users."""
        import jax.numpy as jnp
        from jax import lax

        j = j.astype(jnp.uint32)
        size = np.uint32(max(self.size, 1))
        batch, rest = j // size, j % size
        key = (self.k0[batch], self.k1[batch]) if self.k0.size > 1 else (self.k0[0],
                                                                         self.k1[0])
        indices = []
        for d in range(len(self.shape)):
            inner = np.uint32(math.prod(self.shape[d + 1:]))
            local = (rest // inner) % np.uint32(self.shape[d])
            indices.append(local + jnp.asarray(self.starts[d], jnp.uint32))
        position = positions(indices, self.global_shape, self.offset)
        z, ok, ops = _elements.candidate(self.dist, key, position, attempt)
        values = _elements.output_stage(self.dist, z, ops, self.dtype)
        last = attempt == np.uint32(stream.MAX_ATTEMPTS - 1)
        nan = jnp.asarray(np.nan, self.dtype)
        values = jnp.where(ok | last, values, nan)
        # Without the barrier XLA fuses the attempt's code into each of the result's users.
        return lax.optimization_barrier(values) if once else values


def _full_passes(place: _Place, n: int) -> jax.Array:
    """Rounds over the whole block from attempt 0 on (all rejected elements are at the same
    attempt): one copy of the attempt's code, for blocks small enough that the work of
    the late rounds does not matter. Done a sixteenth of the block at a time, so that the
    rounds' test (an ``any`` of ``isnan``, which XLA:CPU writes out first) stays small."""
    import jax.numpy as jnp
    from jax import lax

    chunk = -(-n // FULL_PASS_CHUNKS)

    def one_chunk(c: jax.Array, flat: jax.Array) -> jax.Array:
        start = jnp.minimum(c * chunk, n - chunk)      # the last chunk overlaps the one before

        def attempt_round(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            block, k = state
            # Indices made in the loop and made to depend on the round (k >> 31 is 0):
            # what does not depend on it XLA hoists out of the loop, into buffers.
            index = start + lax.iota(jnp.int32, chunk) + (k >> np.uint32(31)).astype(jnp.int32)
            values = place.attempt_or_nan(index, k, once=False)
            return jnp.where(jnp.isnan(block), values, block), k + np.uint32(1)

        block = lax.dynamic_slice(flat, (start,), (chunk,))
        block, _ = lax.while_loop(lambda state: jnp.any(jnp.isnan(state[0])), attempt_round,
                                  (block, jnp.uint32(0)))
        return lax.dynamic_update_slice(flat, block, (start,))

    flat = jnp.full((n,), np.nan, place.dtype)
    return lax.fori_loop(0, -(-n // chunk), one_chunk, flat)


def _compacted(place: _Place, flat: jax.Array) -> jax.Array:
    """Rounds over the rejected elements only, gathered into lists, batch by batch.

    2-byte items are resolved a sixteenth of the block at a time, in a float32 copy of
    it (the values rounded to the dtype, then widened exactly): XLA:CPU has no bfloat16
    scatter and widens the whole block to float32 around it (2.2 times the block in
    temporaries), and the lists' work in bytes per item leaves float16 little room."""
    import jax.numpy as jnp
    from jax import lax

    if flat.dtype.itemsize != 2:
        return _listed(place, flat, jnp.int32(0))
    n = flat.size
    chunk = -(-n // FULL_PASS_CHUNKS)

    def one_chunk(c: jax.Array, flat: jax.Array) -> jax.Array:
        start = jnp.minimum(c * chunk, n - chunk)      # the last chunk overlaps the one before
        wide = lax.dynamic_slice(flat, (start,), (chunk,)).astype(jnp.float32)
        wide = _listed(place, wide, start, 2 * chunk)   # with the copy, 3/16 of the block
        return lax.dynamic_update_slice(flat, wide.astype(flat.dtype), (start,))

    return lax.fori_loop(0, -(-n // chunk), one_chunk, flat)


def _listed(place: _Place, flat: jax.Array, base: jax.Array,
            budget: int | None = None) -> jax.Array:
    """:func:`_compacted` on ``flat``, the block's elements from ``base`` on, the lists
    within ``budget`` bytes (:func:`_sizes`)."""
    import jax.numpy as jnp
    from jax import lax

    n = flat.size
    step, scan, capacity = _sizes(place.dist, n, flat.dtype.itemsize, budget)
    length = capacity + scan + step      # room for a whole chunk past the capacity
    chunks = -(-n // scan)               # compaction chunks, counted here: no index overflows

    def batch(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        flat, first = state
        slots, count, first = _compact(flat, capacity, scan, first, length)
        done, values, count = _resolve(place, slots, count, base, step)
        index = jnp.where(jnp.arange(length) < count, done, n)
        values = values.astype(flat.dtype)             # exact: float32 holds every 2-byte value
        return flat.at[index].set(values, mode="drop"), first   # once a batch: O(n)

    return lax.while_loop(lambda state: state[1] < chunks, batch, (flat, jnp.int32(0)))[0]


def _compact(flat: jax.Array, capacity: int, chunk: int, first: jax.Array,
             length: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(slots, count, next)``: the local indices of the NaNs of ``flat`` in chunks
    ``first``, ``first + 1``, ... up to the one that brings their number to
    ``capacity`` or more; their number; and the next chunk."""
    import jax.numpy as jnp
    from jax import lax

    n = flat.size
    chunks = -(-n // chunk)
    iota = jnp.arange(chunk, dtype=jnp.int32)

    def body(state: tuple[jax.Array, jax.Array, jax.Array],
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        slots, count, c = state
        # The last chunk overlaps the one before; c < chunks keeps c * chunk below n.
        start = jnp.minimum(c * chunk, n - chunk)
        index = start + iota
        pending = jnp.isnan(lax.dynamic_slice(flat, (start,), (chunk,))) & (index >= c * chunk)
        (slots,), count = _append((slots,), count, pending, (index,))
        return slots, count, c + 1

    def more(state: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        _, count, c = state
        return (count < capacity) & (c < chunks)

    slots = jnp.zeros((length,), jnp.int32)
    return lax.while_loop(more, body, (slots, jnp.int32(0), first))


def _resolve(place: _Place, slots: jax.Array, count: jax.Array, base: jax.Array,
             chunk: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Attempts 1, 2, ... of the elements at ``base + slots[:count]`` until each is accepted:
    ``(indices, values, count)`` of the accepted ones, in lists.

    A round runs over the pending slots only, ``chunk`` at a time (one copy of the
    attempt's code in the program), and moves the still-pending ones to the front of
    the list as it goes (to places already read). Lists grow by ``_append``: XLA:CPU's
    scatter costs the size of its operand, a dynamic update slice that of the update.
    """
    import jax.numpy as jnp
    from jax import lax

    length = slots.size
    iota = jnp.arange(chunk, dtype=jnp.int32)

    def attempt_round(state: RoundState) -> RoundState:
        slots, count, done, values, accepted, k = state

        def step(c: jax.Array, inner: StepState) -> StepState:
            slots, kept, done, values, accepted = inner
            start = jnp.minimum(c * chunk, length - chunk)
            index = start + iota
            live = (index >= c * chunk) & (index < count)
            j = lax.dynamic_slice(slots, (start,), (chunk,))
            value = place.attempt_or_nan(base + j, k)
            rejected = live & jnp.isnan(value)
            rank, total = _ranks(rejected)
            # The live slots are a run from c * chunk: the accepted ones before slot i are
            # the live ones before it less the rejected ones (one rank computation).
            taken = jnp.maximum(index - c * chunk, 0) - rank
            (slots,), kept = _append((slots,), kept, rejected, (j,), (rank, total))
            live_count = jnp.clip(count - c * chunk, 0, chunk)
            (done, values), accepted = _append(
                (done, values), accepted, live & ~rejected, (j, value),
                (taken, live_count - total))
            return slots, kept, done, values, accepted

        inner = (slots, jnp.int32(0), done, values, accepted)
        slots, kept, done, values, accepted = lax.fori_loop(
            0, (count + chunk - 1) // chunk, step, inner)
        return slots, kept, done, values, accepted, k + np.uint32(1)

    state = (slots, count, jnp.zeros((length,), jnp.int32), jnp.zeros((length,), place.dtype),
             jnp.int32(0), jnp.uint32(1))
    state = lax.while_loop(lambda state: state[1] > 0, attempt_round, state)
    return state[2], state[3], state[4]


def _append(buffers: tuple[jax.Array, ...], offset: jax.Array, mask: jax.Array,
            items: tuple[jax.Array, ...], ranks: tuple[jax.Array, jax.Array] | None = None,
            ) -> tuple[tuple[jax.Array, ...], jax.Array]:
    """Write ``items[k][mask]`` to ``buffers[k]`` from ``offset`` on (in place: a chunk-sized
    scatter, then a dynamic update slice); returns the buffers and the new offset.
    ``ranks``: ``_ranks(mask)`` when the caller has it."""
    import jax.numpy as jnp
    from jax import lax

    rank, total = _ranks(mask) if ranks is None else ranks
    target = jnp.where(mask, rank, mask.size)
    out = []
    for buffer, item in zip(buffers, items):
        packed = jnp.zeros(mask.shape, buffer.dtype).at[target].set(item, mode="drop")
        out.append(lax.dynamic_update_slice(buffer, packed, (offset,)))
    return tuple(out), offset + total


def _ranks(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(rank, total)``: for each element of the 1-D boolean ``mask``, how many true elements
    come before it; and how many there are. From 32-bit words and popcounts (a cumulative
    sum compiles slowly and runs slowly on XLA:CPU)."""
    import jax.numpy as jnp
    from jax import lax

    m = mask.size
    words = -(-m // 32)
    lanes = jnp.arange(32, dtype=jnp.uint32)
    bits = jnp.pad(mask, (0, words * 32 - m)).reshape(words, 32).astype(jnp.uint32) << lanes
    word = jnp.sum(bits, axis=1, dtype=jnp.uint32)
    counts = lax.population_count(word).astype(jnp.int32)
    below = lax.population_count(word[:, None] & ((np.uint32(1) << lanes) - np.uint32(1)))
    offsets = _exclusive_sums(counts)
    rank = (offsets[:, None] + below.astype(jnp.int32)).reshape(-1)[:m]
    return rank, offsets[-1] + counts[-1]


def _exclusive_sums(counts: jax.Array) -> jax.Array:
    """Exclusive prefix sums of a short int32 vector, 32 at a time."""
    import jax.numpy as jnp
    from jax import lax

    length = counts.size
    if length == 1:
        return jnp.zeros_like(counts)
    blocks = -(-length // 32)
    c = jnp.pad(counts, (0, blocks * 32 - length)).reshape(blocks, 32)
    before = lax.broadcasted_iota(jnp.int32, (32, 32), 1) < lax.broadcasted_iota(
        jnp.int32, (32, 32), 0)                                   # [i, j]: j comes before i
    within = jnp.sum(jnp.where(before[None], c[:, None, :], 0), axis=2)
    return (_exclusive_sums(jnp.sum(c, axis=1))[:, None] + within).reshape(-1)[:length]


def _sizes(dist: Distribution, n: int, itemsize: int, budget: int | None = None,
           ) -> tuple[int, int, int]:
    """``(step, scan, capacity)`` of ``n`` items of ``itemsize`` bytes: slots of one step
    of a round, elements of one compaction chunk, and entries of a batch's lists.

    The lists' buffers (the slots, twice, and the accepted indices and values: 12 +
    itemsize bytes an entry) and the other temporaries of a round's step (under 64 bytes
    a slot) and of a compaction chunk (under 16 bytes an element) stay within ``budget``
    bytes (a quarter of the items' bytes unless given), the chunks sized by it; the
    capacity is never below :func:`_capacity_floor`."""
    budget = n * itemsize // 4 if budget is None else budget
    step = int(min(ROUND_CHUNK, max(256, budget // 256)))
    scan = int(min(n, max(1024, budget // 64)))
    room = (budget - 64 * step - 16 * scan) // (12 + itemsize) - scan - step
    wanted = max(1, min(n, int(1.25 * _rejection_rate(dist) * n) + MIN_CAPACITY))
    return step, scan, min(wanted, max(room, _capacity_floor(n)))


def _capacity_floor(n: int) -> int:
    """The fewest entries a batch's lists have room for: at most 256 batches (each an
    O(n) scatter) per 256 rejected elements in 256."""
    return max(MIN_CAPACITY, n // 256)


def _rejection_rate(dist: Distribution) -> float:
    """Probability that an attempt is rejected (section 7.3's proposals), from the bounds."""
    alpha, beta, rate = dist.alpha, dist.beta, dist.rate

    def mass(a: float, b: float) -> float:   # P(a <= Z <= b), from whichever tail is accurate
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
