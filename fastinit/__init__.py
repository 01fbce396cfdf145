"""fastinit: fast, reproducible weight initialization.

``import fastinit`` loads NumPy only; Numba, SciPy and the frameworks load on
first use.
"""

from . import random
from .stream import STREAM_VERSION

__version__ = "0.1.0"
__all__ = ["random", "STREAM_VERSION", "__version__"]
