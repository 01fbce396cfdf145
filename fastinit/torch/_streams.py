"""Which seed and stream an intercepted write draws from (the naming rules of a session).

- A tensor of the model being initialised (``module=``, or the transformers model
  whose init runs) draws from ``name_stream(prefix + name)`` under the session's
  seed (:class:`fastinit.torch._names.Names` finds the name, also through views and
  ``.data`` aliases).
- Any other tensor: with a ``generator=`` argument, a seed drawn from that
  generator and stream 0; in a ``fast_init()`` block without a seed, a seed drawn
  from torch's default generator and stream 0 (so ``torch.manual_seed`` decides
  it, as for torch's own functions); with an explicit seed, the stream of
  ``<fastinit.anonymous>/k``, k counting such writes from 0 in program order.
- A draw deferred during a transformers model's construction and read before the
  model's init (``weight_norm`` reading a fresh weight) is materialised from the
  stream of ``<fastinit.construction>/<model class>/k``, k counting such reads of
  that model's construction: a construction replayed by ``init_module_`` reads
  the same values.

:func:`seed_from` is the one rule for a seed taken from a torch generator.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from .. import sharding
from ._names import Names

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch
    from transformers import PreTrainedModel   # not followed: Any

    from ._names import HeldRegion, Target

__all__ = ["Streams", "seed_from", "ANONYMOUS", "CONSTRUCTION"]

ANONYMOUS = "<fastinit.anonymous>/{}"
CONSTRUCTION = "<fastinit.construction>/{}/{}"


def seed_from(generator: torch.Generator | None = None) -> int:
    """A seed drawn from ``generator`` (torch's default CPU generator when None), consuming
    it as ``torch.randint(2**63 - 1, ())`` does: one draw.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> a = seed_from()
    >>> seed_from(torch.Generator().manual_seed(0)) == a
    True
    """
    import torch
    gen = torch.default_generator if generator is None else generator
    return int(torch.randint(0, (1 << 63) - 1, (), generator=gen, device=gen.device))


class Streams:
    """The seed, the names and the counters of one session.

    Parameters
    ----------
    seed : int
    prefix : str
        Prepended to the names.
    module : torch.nn.Module, optional
        Its tensors are named from the start (``fast_init(module=)``).
    regions : mapping, optional
        ``name -> (global_shape, index)`` of plain tensors holding part of a tensor.
    follow_torch : bool
        Unnamed writes draw their seed from torch's default generator.
    """

    def __init__(self, seed: int, *, prefix: str = "", module: torch.nn.Module | None = None,
                 regions: Mapping[str, HeldRegion] | None = None,
                 follow_torch: bool = False) -> None:
        self.seed, self.prefix, self.module = seed, prefix, module
        self.regions = dict(regions or {})
        self.follow_torch = follow_torch
        self.names = Names(module, prefix, self.regions) if module is not None else None
        self.anonymous = 0
        # model -> reads materialised
        self._constructions: weakref.WeakKeyDictionary[PreTrainedModel, int] = \
            weakref.WeakKeyDictionary()

    def rooted(self, root: torch.nn.Module) -> Names:
        """Names of ``root``'s tensors (the model whose init runs), with this prefix."""
        return Names(root, self.prefix, self.regions)

    def resolve(self, tensor: torch.Tensor, *, refresh: bool = False) -> Target | None:
        """The named tensor a write of ``tensor`` reaches, or None. ``refresh``: look again
        at ``module=`` for parameters made since the block opened."""
        names = self.names
        if names is None:
            return None
        target = names.resolve(tensor)
        if target is None and refresh and self.module is not None \
                and type(tensor).__name__ == "Parameter":
            self.names = Names(self.module, self.prefix, self.regions)
            target = self.names.resolve(tensor)
        return target

    def seed_for(self, generator: torch.Generator | None) -> int:
        """The seed of a named write (the session's, or one drawn from ``generator``)."""
        return self.seed if generator is None else seed_from(generator)

    def unnamed(self, generator: torch.Generator | None) -> tuple[int, int]:
        """``(seed, stream)`` of a write to a tensor that is not named."""
        if generator is not None:
            return seed_from(generator), 0
        if self.follow_torch:
            return seed_from(None), 0
        return self.seed, self.next_anonymous()

    def next_anonymous(self) -> int:
        self.anonymous += 1
        return sharding.name_stream(ANONYMOUS.format(self.anonymous - 1))

    def construction(self, model: PreTrainedModel) -> int:
        """The stream of the next deferred draw read during ``model``'s construction."""
        k = self._constructions.get(model, 0)
        self._constructions[model] = k + 1
        return sharding.name_stream(CONSTRUCTION.format(type(model).__qualname__, k))
