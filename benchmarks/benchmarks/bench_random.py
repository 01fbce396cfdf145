"""Benchmarks of ``fastinit.random``: fills by distribution, backend, dtype and size."""

import importlib.util
import subprocess
import sys

import numpy as np

DISTRIBUTIONS = ["normal", "uniform", "truncated_normal"]
BACKENDS = ["numpy", "numba"]
DTYPES = ["float32", "float64"]
SIZES = [10**6, 10**7]
SEED = 0


def _filler(distribution, backend, out):
    """A no-argument call that fills ``out`` with fastinit."""
    import fastinit.random as fr
    fn = getattr(fr, distribution)
    if distribution == "truncated_normal":
        return lambda: fn(out=out, a=-2.0, b=2.0, seed=SEED, backend=backend)
    return lambda: fn(out=out, seed=SEED, backend=backend)


def _prepare(bench_obj, distribution, backend, dtype, size):
    """Output and warmed-up filler of a fill benchmark (Numba compile, page faults excluded)."""
    if backend == "numba" and importlib.util.find_spec("numba") is None:
        raise NotImplementedError("numba is not installed")
    bench_obj.out = np.empty(size, dtype=dtype)
    bench_obj.fill = _filler(distribution, backend, bench_obj.out)
    bench_obj.fill()


class Fill:
    """``fastinit.random.<distribution>(out=...)`` into a preallocated array."""

    params = (DISTRIBUTIONS, BACKENDS, DTYPES, SIZES)
    param_names = ["distribution", "backend", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, backend, dtype, size):
        _prepare(self, distribution, backend, dtype, size)

    def time_fill(self, distribution, backend, dtype, size):
        self.fill()

    def peakmem_fill(self, distribution, backend, dtype, size):
        self.fill()


class FillMemory:
    """Peak RSS of one fill above the RSS before it: should stay a small constant."""

    params = (DISTRIBUTIONS, BACKENDS, DTYPES, SIZES)
    param_names = ["distribution", "backend", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, backend, dtype, size):
        from fastinit import bench
        _prepare(self, distribution, backend, dtype, size)
        if bench.peak_rss_above(lambda: None) is None:
            raise NotImplementedError("peak RSS cannot be reset on this system")

    def track_peak_above_output(self, distribution, backend, dtype, size):
        from fastinit import bench
        return bench.peak_rss_above(self.fill) / 2**20

    track_peak_above_output.unit = "MiB"


class NumpyBaseline:
    """NumPy's ``Generator(PCG64)`` into a preallocated array (the truncated normal by
    vectorised rejection, as ``fastinit.bench`` does)."""

    params = (DISTRIBUTIONS, DTYPES, SIZES)
    param_names = ["distribution", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, dtype, size):
        from fastinit import bench
        self.out = np.empty(size, dtype=dtype)
        gen = np.random.Generator(np.random.PCG64(SEED))
        out = self.out
        if distribution == "normal":
            self.fill = lambda: gen.standard_normal(out.size, dtype=out.dtype, out=out)
        elif distribution == "uniform":
            self.fill = lambda: gen.random(out.size, dtype=out.dtype, out=out)
        else:
            self.fill = lambda: bench.numpy_truncated_normal(gen, out)
        self.fill()

    def time_fill(self, distribution, dtype, size):
        self.fill()

    def peakmem_fill(self, distribution, dtype, size):
        self.fill()


class Import:
    """Cost of ``import fastinit`` (it should load NumPy only)."""

    timeout = 60

    def time_import(self):
        """A fresh interpreter importing fastinit (interpreter start-up included)."""
        subprocess.run([sys.executable, "-c", "import fastinit"], check=True)

    def timeraw_import(self):
        """The import alone, timed by asv in a fresh interpreter."""
        return "import fastinit"
