"""GPU benchmarks: fastinit's CuPy backend against ``cupy.random``.

Skipped (``NotImplementedError`` in ``setup``) unless CuPy is installed and
CUDA reports a GPU. Every timed call ends with
``cupy.cuda.get_current_stream().synchronize()``: kernel launches return
before the GPU is done, and asv's timer runs on the host. The first call in
``setup`` compiles the kernels (NVRTC) and is not timed.
"""

DISTRIBUTIONS = ["normal", "uniform", "truncated_normal"]
DTYPES = ["float32", "float64"]
SIZES = [2**24, 2**27]   # elements: 64 MiB / 512 MiB of float32
TRUNCATION = 2.0         # the truncated normal on [-2, 2] std, as fastinit.bench
SEED = 0


def _cupy():
    """CuPy, or ``NotImplementedError`` (asv's skip) without CuPy or a GPU."""
    from fastinit import gpu
    if not gpu.is_available():
        raise NotImplementedError("needs CuPy and an NVIDIA GPU")
    import cupy
    return cupy


def _fastinit_call(distribution, **kw):
    import fastinit.random as fr
    fn = getattr(fr, distribution)
    if distribution == "truncated_normal":
        kw.update(a=-TRUNCATION, b=TRUNCATION)
    return lambda: fn(seed=SEED, **kw)


class _Synchronised:
    """``self.call()`` then a stream synchronise, timed together."""

    def _prepare(self, cupy, call):
        stream = cupy.cuda.get_current_stream()

        def run():
            result = call()
            stream.synchronize()
            return result
        self.run = run
        self.run()  # warm-up: kernel compilation (or its cache load) excluded


class Fill(_Synchronised):
    """``fastinit.random.<distribution>(out=...)`` into a preallocated CuPy array."""

    params = (DISTRIBUTIONS, DTYPES, SIZES)
    param_names = ["distribution", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, dtype, size):
        cupy = _cupy()
        self.out = cupy.empty(size, dtype=dtype)
        self._prepare(cupy, _fastinit_call(distribution, out=self.out))

    def teardown(self, distribution, dtype, size):
        self.out = None

    def time_fill(self, distribution, dtype, size):
        self.run()


class Allocate(_Synchronised):
    """``fastinit.random.<distribution>(size, device="cuda")``: a new CuPy array each call
    (CuPy's memory pool makes the allocation cheap after the first)."""

    params = (DISTRIBUTIONS, DTYPES, SIZES)
    param_names = ["distribution", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, dtype, size):
        cupy = _cupy()
        self._prepare(cupy, _fastinit_call(distribution, shape=size, dtype=dtype,
                                           device="cuda"))

    def time_allocate(self, distribution, dtype, size):
        self.run()


def cupy_truncated_normal(cupy, rs, size, dtype, a=-TRUNCATION, b=TRUNCATION):
    """A standard normal conditioned on ``[a, b]`` with ``cupy.random`` by rejection
    (what a CuPy user writes: CuPy has no truncated normal)."""
    out = rs.standard_normal(size, dtype=dtype)
    redo = cupy.flatnonzero((out < a) | (out > b))
    while redo.size:
        draw = rs.standard_normal(int(redo.size), dtype=dtype)
        out[redo] = draw
        redo = redo[(draw < a) | (draw > b)]
    return out


class CupyBaseline(_Synchronised):
    """``cupy.random.RandomState`` (cuRAND): ``standard_normal``, ``random_sample``, and
    rejection for the truncated normal; each call returns a new array."""

    params = (DISTRIBUTIONS, DTYPES, SIZES)
    param_names = ["distribution", "dtype", "size"]
    timeout = 300

    def setup(self, distribution, dtype, size):
        cupy = _cupy()
        rs = cupy.random.RandomState(SEED)
        if distribution == "normal":
            call = lambda: rs.standard_normal(size, dtype=dtype)  # noqa: E731
        elif distribution == "uniform":
            call = lambda: rs.random_sample(size, dtype=dtype)  # noqa: E731
        else:
            call = lambda: cupy_truncated_normal(cupy, rs, size, dtype)  # noqa: E731
        self._prepare(cupy, call)

    def time_fill(self, distribution, dtype, size):
        self.run()
