"""Regions of a global tensor, as runs of consecutive flat indices.

The stream gives element ``i`` of the global tensor (flat C-order index) the
same value wherever it is computed, so a region is just the list of flat
index runs it covers. Runs are produced in pieces, never all at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsIndex

import numpy as np

from ._checks import MAX_ELEMENTS, check_integer

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy.typing as npt

    from ._typing import Index, Shape

    #: A contiguous box of an array: its index (slices and ints) and its shape.
    Box = tuple[tuple[Any, ...], Shape]

MAX_RUNS_PER_PIECE = 1 << 16


@dataclass(frozen=True)
class Region:
    """A box of the global tensor: what to generate and how it lies in the stream."""

    shape: Shape                 # shape of the produced array (integer indices dropped)
    run_length: int              # consecutive flat indices per run
    outer_extents: tuple[int, ...]   # the box's extents along the axes outside the runs
    outer_steps: tuple[int, ...]     # index steps times global strides, in flat indices
    base: int             # flat index of the first element of the first run

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def n_runs(self) -> int:
        return math.prod(self.outer_extents)

    def run_starts(self, first: int, stop: int) -> npt.NDArray[np.int64]:
        """Flat start index of runs ``first .. stop-1`` (C order over the outer axes)."""
        if not self.outer_extents:
            return np.array([self.base], dtype=np.int64)
        idx = np.unravel_index(np.arange(first, stop, dtype=np.int64), self.outer_extents)
        starts = np.full(stop - first, self.base, dtype=np.int64)
        for i, step in zip(idx, self.outer_steps):
            starts += i * step
        return starts

    def pieces(self, position: int,
               count: int) -> Iterator[tuple[int, npt.NDArray[np.int64], int]]:
        """Yield ``(start, run_starts, run_length)`` covering flat positions
        ``[position, position + count)`` of the produced array (C order).

        ``start`` is a piece's first position relative to ``position``; a piece
        is whole runs, or the part of one run at either end of the range.
        """
        length = self.run_length
        if length == 0 or count <= 0:
            return
        stop = position + count
        run, column = divmod(position, length)
        if column:  # the tail of a run
            n = min(length - column, count)
            yield 0, self.run_starts(run, run + 1) + column, n
            run += 1
        last = stop // length  # runs [run, last) are whole
        for first in range(run, last, MAX_RUNS_PER_PIECE):
            end = min(last, first + MAX_RUNS_PER_PIECE)
            yield first * length - position, self.run_starts(first, end), length
        if last >= run and stop % length:  # the head of a run
            yield last * length - position, self.run_starts(last, last + 1), stop % length


def region(global_shape: Sequence[int], index: Index | None = None,
           offset: SupportsIndex = 0) -> Region:
    """The :class:`Region` of ``global_shape`` selected by ``index`` (slices and ints).

    ``offset`` shifts the whole tensor along the stream: its element ``i`` is
    element ``offset + i`` of the flat stream.
    """
    offset = check_integer(offset, "offset")
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
            bounds = [None if v is None else check_integer(v, "index slice bound")
                      for v in (item.start, item.stop, item.step)]
            if bounds[2] is not None and bounds[2] <= 0:
                raise ValueError(f"index steps must be positive. Received: index={index!r}")
            start, stop, step = slice(*bounds).indices(n)
            extent = len(range(start, stop, step))
            kept.append(extent)
        else:
            i = check_integer(item, "index entry")
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


def boxes(shape: Sequence[int], max_elements: int) -> Iterator[Box]:
    """Yield ``(index, box_shape)`` covering ``shape`` in C order, each contiguous.

    Every box holds at most ``max_elements`` elements (at least one element)
    and the boxes are consecutive in the flat C order: whole sub-arrays along
    the outermost axis that allows it, or pieces of one innermost row.

    Examples
    --------
    >>> [i for i, _ in boxes((3, 4), 8)]
    [(slice(0, 2, None),), (slice(2, 3, None),)]
    >>> [i for i, _ in boxes((2, 5), 3)]
    [(0, slice(0, 3, None)), (0, slice(3, 5, None)), (1, slice(0, 3, None)), (1, slice(3, 5, None))]
    """
    shape = tuple(shape)
    if not shape:
        yield (), ()
        return
    if 0 in shape:
        return
    max_elements = max(1, int(max_elements))
    k = 0
    while math.prod(shape[k + 1:]) > max_elements:
        k += 1
    inner = shape[k + 1:]
    step = max(1, max_elements // math.prod(inner))
    for lead in np.ndindex(*shape[:k]):
        for s in range(0, shape[k], step):
            e = min(s + step, shape[k])
            yield tuple(int(i) for i in lead) + (slice(s, e),), (e - s,) + inner
