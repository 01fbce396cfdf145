"""Benchmarks of ``fastinit.initializers``: Keras-style initializers into a preallocated kernel.

Axes: initializer, backend, dtype and size (elements of a ``(size // 4096, 4096)``
kernel, the shape ``fastinit bench`` uses for its Glorot case); the orthogonal
initializer has its own class, parametrised by the side of its square matrix.
"""

import importlib.util

import numpy as np

INITIALIZERS = ["glorot_uniform", "he_normal", "lecun_normal", "truncated_normal"]
BACKENDS = ["numpy", "numba"]
DTYPES = ["float32", "float64"]
SIZES = [2**20, 2**24]   # elements: 4 / 64 MiB of float32
SIDES = [256, 1024]      # the orthogonal matrix is SIDE x SIDE
COLUMNS = 4096
SEED = 0

_CLASSES = {"glorot_uniform": "GlorotUniform", "he_normal": "HeNormal",
            "lecun_normal": "LecunNormal", "truncated_normal": "TruncatedNormal"}


def kernel_shape(size):
    """``(size // 4096, 4096)`` (``(1, size)`` below 4096 elements)."""
    cols = min(COLUMNS, size)
    return (size // cols, cols)


def _check_backend(backend):
    if backend == "numba" and importlib.util.find_spec("numba") is None:
        raise NotImplementedError("numba is not installed")


class Initializers:
    """``Initializer(seed=0)(shape, out=..., backend=...)`` of the variance-scaling and
    truncated-normal initializers (Keras' default arguments)."""

    params = (INITIALIZERS, BACKENDS, DTYPES, SIZES)
    param_names = ["initializer", "backend", "dtype", "size"]
    timeout = 300

    def setup(self, initializer, backend, dtype, size):
        import fastinit.initializers as fi
        _check_backend(backend)
        init = getattr(fi, _CLASSES[initializer])(seed=SEED)
        out = self.out = np.empty(kernel_shape(size), dtype=dtype)
        self.fill = lambda: init(out.shape, out=out, backend=backend)
        self.fill()  # warm-up: Numba compile / cache load and page faults excluded

    def time_init(self, initializer, backend, dtype, size):
        self.fill()

    def peakmem_init(self, initializer, backend, dtype, size):
        self.fill()


class Orthogonal:
    """``Orthogonal(seed=0)((side, side), out=..., backend=...)``: the Gaussian draw by
    ``backend``, then the orthogonalisation (SciPy's LAPACK when installed)."""

    params = (BACKENDS, DTYPES, SIDES)
    param_names = ["backend", "dtype", "side"]
    timeout = 300

    def setup(self, backend, dtype, side):
        import fastinit.initializers as fi
        _check_backend(backend)
        init = fi.Orthogonal(seed=SEED)
        out = self.out = np.empty((side, side), dtype=dtype)
        self.fill = lambda: init(out.shape, out=out, backend=backend)
        self.fill()

    def time_init(self, backend, dtype, side):
        self.fill()

    def peakmem_init(self, backend, dtype, side):
        self.fill()
