"""Baselines in the same suite: PyTorch's ``nn.init`` and JAX's initializers.

The same sizes as ``bench_initializers`` (a ``(size // 4096, 4096)`` kernel, an
orthogonal matrix of side 256 or 1024), so that asv's results sit next to
fastinit's. Each class is skipped (``NotImplementedError`` in ``setup``) when
its package is not installed; JAX's float64 rows are skipped unless
``jax_enable_x64`` is on (it is not switched on here: it is process-wide).
"""

import functools
import importlib
import importlib.util

from .bench_initializers import DTYPES, SEED, SIDES, SIZES, kernel_shape

TORCH_INITS = ["normal_", "uniform_", "trunc_normal_", "xavier_uniform_"]
JAX_INITS = ["normal", "truncated_normal", "glorot_uniform"]
STDDEV = 0.05   # Keras' RandomNormal / TruncatedNormal default; truncated at 2 std


def _require(module):
    if importlib.util.find_spec(module) is None:
        raise NotImplementedError(f"{module} is not installed")
    return importlib.import_module(module)


# -- PyTorch ---------------------------------------------------------------------


def _torch_tensor(shape, dtype):
    torch = _require("torch")
    torch.manual_seed(SEED)
    return torch, torch.empty(shape, dtype=getattr(torch, dtype))


class Torch:
    """``torch.nn.init.<init>(t)`` in place on a CPU tensor (PyTorch's own threads)."""

    params = (TORCH_INITS, DTYPES, SIZES)
    param_names = ["init", "dtype", "size"]
    timeout = 300

    def setup(self, init, dtype, size):
        torch, t = _torch_tensor(kernel_shape(size), dtype)
        fn = getattr(torch.nn.init, init)
        if init == "normal_":
            self.fill = lambda: fn(t, mean=0.0, std=STDDEV)
        elif init == "trunc_normal_":
            self.fill = lambda: fn(t, mean=0.0, std=STDDEV, a=-2 * STDDEV, b=2 * STDDEV)
        else:
            self.fill = lambda: fn(t)
        self.t = t
        self.fill()

    def time_init(self, init, dtype, size):
        self.fill()

    def peakmem_init(self, init, dtype, size):
        self.fill()


class TorchOrthogonal:
    """``torch.nn.init.orthogonal_`` of a square CPU tensor."""

    params = (DTYPES, SIDES)
    param_names = ["dtype", "side"]
    timeout = 300

    def setup(self, dtype, side):
        torch, t = _torch_tensor((side, side), dtype)
        self.t = t
        self.fill = lambda: torch.nn.init.orthogonal_(t)
        self.fill()

    def time_init(self, dtype, side):
        self.fill()

    def peakmem_init(self, dtype, side):
        self.fill()


# -- JAX -------------------------------------------------------------------------


_JAX_INITS = {"normal": lambda inits: inits.normal(stddev=STDDEV),
              "truncated_normal": lambda inits: inits.truncated_normal(stddev=STDDEV),
              "glorot_uniform": lambda inits: inits.glorot_uniform(),
              "orthogonal": lambda inits: inits.orthogonal()}


@functools.lru_cache(maxsize=None)
def _jitted(init, shape, dtype):
    """``jax.jit(lambda key: initializer(key, shape, dtype))``, one per process and
    arguments (asv runs each benchmark in its own process; a test run reuses it)."""
    import jax
    import jax.numpy as jnp
    initializer, jdtype = _JAX_INITS[init](jax.nn.initializers), getattr(jnp, dtype)
    return jax.jit(lambda k: initializer(k, shape, jdtype))


def _jax_fill(init, shape, dtype):
    """A call of the jitted initializer that blocks until its result is ready."""
    jax = _require("jax")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise NotImplementedError("float64 needs jax_enable_x64")
    fn, key = _jitted(init, tuple(shape), dtype), jax.random.PRNGKey(SEED)

    def fill():
        return fn(key).block_until_ready()
    fill()  # warm-up: tracing and XLA compilation excluded
    return fill


class Jax:
    """``jax.nn.initializers.<init>()`` jitted, on JAX's default (CPU) device."""

    params = (JAX_INITS, DTYPES, SIZES)
    param_names = ["init", "dtype", "size"]
    timeout = 300

    def setup(self, init, dtype, size):
        self.fill = _jax_fill(init, kernel_shape(size), dtype)

    def time_init(self, init, dtype, size):
        self.fill()

    def peakmem_init(self, init, dtype, size):
        self.fill()


class JaxOrthogonal:
    """``jax.nn.initializers.orthogonal()`` of a square matrix, jitted."""

    params = (DTYPES, SIDES)
    param_names = ["dtype", "side"]
    timeout = 300

    def setup(self, dtype, side):
        self.fill = _jax_fill("orthogonal", (side, side), dtype)

    def time_init(self, dtype, side):
        self.fill()

    def peakmem_init(self, dtype, side):
        self.fill()
