"""Regions of a global tensor, as runs of consecutive flat indices.

The stream gives element ``i`` of the global tensor (flat C-order index) the
same value wherever it is computed, so a region is just the list of flat
index runs it covers. Runs are produced in batches, never all at once.
"""

import math
import operator
from dataclasses import dataclass

import numpy as np

MAX_ELEMENTS = (1 << 62)  # flat indices, offset included, stay below this
MAX_RUNS_PER_BATCH = 1 << 16


@dataclass(frozen=True)
class Region:
    """A box of the global tensor: what to generate and how it lies in the stream."""

    shape: tuple          # shape of the produced array (integer indices dropped)
    run_length: int       # consecutive flat indices per run
    outer_extents: tuple  # the box's extents along the axes outside the runs
    outer_steps: tuple    # index steps times global strides, in flat indices
    base: int             # flat index of the first element of the first run

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def n_runs(self):
        return math.prod(self.outer_extents)

    def run_starts(self, first, stop):
        """Flat start index of runs ``first .. stop-1`` (C order over the outer axes)."""
        if not self.outer_extents:
            return np.array([self.base], dtype=np.int64)
        idx = np.unravel_index(np.arange(first, stop, dtype=np.int64), self.outer_extents)
        starts = np.full(stop - first, self.base, dtype=np.int64)
        for i, step in zip(idx, self.outer_steps):
            starts += i * step
        return starts

    def batches(self, max_elements):
        """Yield ``(position, run_starts, run_length)`` covering the region in C order.

        ``position`` is the flat position of the batch in the produced array;
        a batch holds at most ``max_elements`` elements (whole runs where a run
        fits, else pieces of one run).
        """
        length = self.run_length
        if length == 0 or self.n_runs == 0:
            return
        if length <= max_elements:
            per_batch = max(1, min(MAX_RUNS_PER_BATCH, max_elements // length))
            for first in range(0, self.n_runs, per_batch):
                stop = min(self.n_runs, first + per_batch)
                yield first * length, self.run_starts(first, stop), length
            return
        for r in range(self.n_runs):
            start = int(self.run_starts(r, r + 1)[0])
            for c in range(0, length, max_elements):
                n = min(max_elements, length - c)
                yield r * length + c, np.array([start + c], dtype=np.int64), n


def _as_index(value, name):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer. Received: {name}={value!r}") from None


def normalize_shape(shape):
    """A shape as a tuple of Python ints; TypeError/ValueError naming the bad value."""
    if isinstance(shape, (bool, np.bool_)):
        raise TypeError(f"shape must be a tuple of integers. Received: shape={shape!r}")
    if not isinstance(shape, (tuple, list)):
        try:
            shape = (operator.index(shape),)
        except TypeError:
            raise TypeError("shape must be a tuple of integers. "
                            f"Received: shape={shape!r}") from None
    dims = []
    for d in shape:
        if isinstance(d, (bool, np.bool_)):
            raise TypeError(f"shape must contain integers. Received: shape={shape!r}")
        try:
            d = operator.index(d)
        except TypeError:
            raise TypeError(f"shape must contain integers. Received: shape={shape!r}") from None
        if d < 0:
            raise ValueError(f"shape must not contain negative dimensions. "
                             f"Received: shape={tuple(shape)!r}")
        dims.append(d)
    if math.prod(dims) >= MAX_ELEMENTS or any(d >= MAX_ELEMENTS for d in dims):
        raise ValueError(f"shape has too many elements ({math.prod(dims)}, the limit is "
                         f"2**62). Received: shape={tuple(dims)!r}")
    return tuple(dims)


def region(global_shape, index=None, offset=0):
    """The :class:`Region` of ``global_shape`` selected by ``index`` (slices and ints).

    ``offset`` shifts the whole tensor along the stream: its element ``i`` is
    element ``offset + i`` of the flat stream.
    """
    offset = _as_index(offset, "offset")
    if offset < 0 or offset + math.prod(global_shape) >= MAX_ELEMENTS:
        raise ValueError(f"offset must be >= 0 and keep flat indices below 2**62. "
                         f"Received: offset={offset!r}")
    ndim = len(global_shape)
    if index is None:
        index = ()
    if not isinstance(index, tuple):
        index = (index,)
    if len(index) > ndim:
        raise ValueError(f"index has more entries than shape has axes. "
                         f"Received: index={index!r} for shape={global_shape!r}")
    index = index + (slice(None),) * (ndim - len(index))
    starts, steps, extents, kept = [], [], [], []
    for axis, (item, n) in enumerate(zip(index, global_shape)):
        if isinstance(item, slice):
            if item.step is not None and _as_index(item.step, "index step") <= 0:
                raise ValueError(f"index steps must be positive. Received: index={index!r}")
            start, stop, step = item.indices(n)
            extent = len(range(start, stop, step))
            kept.append(extent)
        else:
            i = _as_index(item, "index entry")
            if not -n <= i < n:
                raise ValueError(f"index {i} is out of bounds for axis {axis} with size "
                                 f"{n}. Received: index={index!r}")
            start, step, extent = i % n, 1, 1
        starts.append(start)
        steps.append(step)
        extents.append(extent)
    strides = [math.prod(global_shape[a + 1:]) for a in range(ndim)]
    # Merge trailing axes that the box covers whole into one run.
    axis, run = ndim - 1, 1
    while axis >= 0 and starts[axis] == 0 and steps[axis] == 1 and extents[axis] == global_shape[axis]:
        run *= extents[axis]
        axis -= 1
    base = offset
    if axis >= 0 and steps[axis] == 1:
        run *= extents[axis]
        base += starts[axis] * strides[axis]
        axis -= 1
    outer = range(axis + 1)
    base += sum(starts[a] * strides[a] for a in outer)
    return Region(shape=tuple(kept), run_length=run,
                  outer_extents=tuple(extents[a] for a in outer),
                  outer_steps=tuple(steps[a] * strides[a] for a in outer),
                  base=base)
