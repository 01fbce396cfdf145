"""``fast_init``: a model's own init code, drawing with fastinit (``fastinit.torch.fast_init``).

Inside the block, in the calling thread only, the 14 ``torch.nn.init`` functions
keep their formulas and in-place semantics but draw from fastinit's streams, and
so do the writes of the model being initialised however its code makes them
(``weight.data.normal_()``, ``weight.normal_()`` under ``no_grad``, ``copy_``,
``fill_``, transformers' ``_init_weights``). How the writes are seen is in
``fastinit.torch._intercept``, what each does in ``fastinit.torch._session``;
the rules (naming, seeds, construction, threads) are in ``docs/models.md``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

from .._checks import check_uint64
from . import _hf, _intercept
from ._session import LiveSession
from ._streams import seed_from

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

    from .._typing import Seed

__all__ = ["fast_init"]


@contextlib.contextmanager
def fast_init(seed: Seed = None, *, module: torch.nn.Module | None = None, prefix: str = "",
              backend: Literal["auto", "numba", "numpy"] = "auto",
              torch_rng: bool = True) -> Iterator[None]:
    """Run a model's own init code (``torch.nn.init``, transformers' ``_init_weights``,
    in-place writes of its tensors) on fastinit's kernels, in this thread.

    Parameters
    ----------
    seed : int, optional
        In ``[0, 2**64)``; one seed for everything the block initialises. None
        (the default): drawn from torch's default generator when the block opens
        (one ``torch.randint(2**63 - 1, ())`` draw), so
        ``torch.manual_seed`` makes the block reproducible; writes to tensors that
        are not named then draw their seed from torch's generator at each call, as
        torch's own functions do.
    module : torch.nn.Module, optional
        Name the tensors of this module (as in ``init_module_``): a write to one
        of them draws from the stream of its name.
    prefix : str
        Prepended to the names.
    backend : {"auto", "numba", "numpy"}
    torch_rng : bool
        Seed torch's own generator from (seed, module name) while a transformers
        ``_init_weights`` runs, for code that draws with ``torch.rand`` directly.
        That generator is the process's: pass False when other threads draw from it
        meanwhile (``docs/guarantees.md``).

    Notes
    -----
    A tensor of a transformers model being built, or of ``module``, draws from
    the stream of its fully-qualified name, the one ``save_pretrained`` keeps.
    So a model built in the block equals the same model built on the meta
    device and filled by ``init_module_`` with the same seed. A write with a
    ``generator=`` argument takes its seed from that generator. Any other
    random ``torch.nn.init`` call draws from the stream of
    ``<fastinit.anonymous>/k`` (k-th such call, with an explicit ``seed``), or
    with a seed from torch's generator (``seed=None``). Nothing is replaced
    for other threads; blocks do not nest. See ``docs/models.md`` and
    ``docs/guarantees.md``.

    Examples
    --------
    >>> import torch
    >>> from fastinit.sharding import name_stream
    >>> import fastinit.torch as ft
    >>> model = torch.nn.Linear(4, 3)
    >>> with fast_init(seed=0, module=model):
    ...     with torch.no_grad():
    ...         _ = model.weight.data.normal_(0.0, 0.02)
    >>> w = ft.normal_(torch.empty(3, 4), std=0.02, seed=0, stream=name_stream("weight"))
    >>> torch.equal(model.weight.detach(), w)
    True
    """
    fixed = None if seed is None else check_uint64(seed, "seed", TypeError)
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'. Received: {backend!r}")
    if module is not None:
        import torch
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module. Received: "
                            f"{type(module).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string. Received: prefix={prefix!r}")
    if _intercept.current() is not None:
        raise RuntimeError("fast_init blocks do not nest (one is already open in this thread)")
    follow = fixed is None
    session = LiveSession(seed_from() if fixed is None else fixed, backend=backend, prefix=prefix,
                          module=module, torch_rng=torch_rng, follow_torch=follow,
                          construction=True)
    with _intercept.activated(session):
        if module is not None:
            for sub in module.modules():
                if _hf.is_pretrained(sub):
                    session.hook(sub)
        yield
        session.finish()
