"""fastinit: fast, reproducible weight initialization.

``import fastinit`` loads NumPy only; Numba, SciPy and the frameworks load on
first use. The PyTorch and JAX front ends are ``fastinit.torch`` and
``fastinit.jax`` (import them explicitly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import initializers, random
from ._threads import get_num_threads, set_num_threads
from .stream import STREAM_VERSION

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

__version__ = "0.1.0"
__all__ = ["initializers", "random", "STREAM_VERSION", "__version__", "get_num_threads",
           "set_num_threads", "warmup"]


def warmup(distributions: str | Sequence[str] | None = None,
           dtypes: npt.DTypeLike | Sequence[npt.DTypeLike] | None = None, *,
           processes: int = 1, verbose: bool = False) -> dict[str, float]:
    """Compile, or load from the disk cache, the Numba kernels ahead of use.

    Each distribution, output dtype (and truncated-normal proposal) has its own
    small kernel, compiled on its first use and cached on disk; this compiles
    the named ones now, so that no later process pays for it (container
    images, CI caches, cluster workers: ``fastinit warmup --all`` on the
    command line). Imports Numba.

    Parameters
    ----------
    distributions : str or sequence of str, optional
        Some of ``"uniform"``, ``"normal"``, ``"truncated_normal"`` (every
        proposal of it: which one a call uses depends on its bounds); ``None``
        or ``"all"``: all of them.
    dtypes : dtype, str or sequence of them, optional
        Output dtypes, some of float16, bfloat16, float32, float64; ``None`` or
        ``"all"``: all of them. The tiled copy for strided outputs is included.
    processes : int, default 1
        Compile in up to this many processes at once, this one included (they
        fill the same disk cache; this process then loads the kernels from it).
        Never more than the usable cores, nor than half the kernels not cached
        yet (a helper process costs about one compilation to start).
    verbose : bool, default False
        Print each kernel's name and seconds.

    Returns
    -------
    dict
        Seconds per kernel name, as this process compiled or loaded it.

    Raises
    ------
    RuntimeError
        Under ``NUMBA_DISABLE_JIT=1`` (nothing can be compiled; fastinit then
        computes with NumPy).
    ImportError
        Without Numba.
    """
    from .backends import numba_available
    if not numba_available():
        raise ImportError("fastinit.warmup compiles the Numba kernels: it needs the numba "
                          "package (pip install numba)")
    from .backends.numba._warmup import warmup as _warmup
    return _warmup(distributions, dtypes, processes=processes, verbose=verbose)
