"""fastinit: fast, reproducible weight initialization.

``import fastinit`` loads NumPy only; Numba, SciPy and the frameworks load on
first use. The PyTorch and JAX front ends are ``fastinit.torch`` and
``fastinit.jax`` (import them explicitly).
"""

from . import initializers, random
from .stream import STREAM_VERSION

__version__ = "0.1.0"
__all__ = ["initializers", "random", "STREAM_VERSION", "__version__"]
