"""What a fastinit initializer asks for, read without drawing: the plan of an XLA call.

An initializer's ``generate`` gets a :class:`~fastinit.initializers.base.Request`
and either draws a distribution of :mod:`fastinit.random` (``request.draw``) or
writes values (``request.write``). :func:`plan` hands it a request that records
that instead of doing it, so the front end computes the very same distribution,
or constant, in the graph (:mod:`fastinit.backends.xla`): the parameters, fans and
validation stay the initializers' own, written once.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex

import numpy as np

from ..backends import Distribution
from ..initializers.base import Initializer, Request

if TYPE_CHECKING:
    import numpy.typing as npt

    from .._typing import ShapeLike

__all__ = ["Draw", "Fill", "plan"]


@dataclasses.dataclass(frozen=True)
class Draw:
    """Values of ``dist`` from the seed's stream ``stream`` at position ``offset``."""

    dist: Distribution
    stream: int
    offset: int


@dataclasses.dataclass(frozen=True)
class Fill:
    """Every element ``value``."""

    value: float


class _Recorded(Exception):
    def __init__(self, result: Draw | Fill | None) -> None:
        super().__init__()
        self.result = result


class _RecordingRequest(Request):
    def draw(self, dist: Distribution, seed: SupportsIndex,
             stream: SupportsIndex | None = None) -> NoReturn:
        raise _Recorded(Draw(dist, self.stream if stream is None else operator.index(stream),
                             self.offset))

    def write(self, values: Any) -> NoReturn:
        values = np.asarray(values)
        raise _Recorded(Fill(values.item()) if values.ndim == 0 else None)

    def write_whole(self, values: Any) -> NoReturn:
        raise _Recorded(None)

    def work_array(self, dtype: npt.DTypeLike) -> NoReturn:
        raise _Recorded(None)


def plan(initializer: object, shape: ShapeLike, dtype: npt.DTypeLike) -> Draw | Fill | None:
    """A :class:`Draw` or :class:`Fill` for ``initializer(shape, dtype)``, or None when it
    does something else (a factorisation, complex values, a custom initializer).

    The initializer's own checks run: a bad shape or parameter raises here.
    """
    if not isinstance(initializer, Initializer) or type(initializer).__call__ is not (
            Initializer.__call__):
        return None
    request = _RecordingRequest(shape, dtype, kind=initializer.dtype_kind)
    if request.is_complex:
        return None
    try:
        initializer.generate(request)
    except _Recorded as recorded:
        return recorded.result
    return None
