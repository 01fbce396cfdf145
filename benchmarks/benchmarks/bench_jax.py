"""Benchmarks of ``fastinit.jax`` on the XLA backend against ``jax.random``, under jit."""

import importlib.util

DISTRIBUTIONS = ["normal", "truncated_normal"]
IMPLEMENTATIONS = ["fastinit.jax", "jax.random"]
SIZES = [10**6, 10**7]


def _sampler(distribution, implementation, size):
    """A compiled ``key -> array`` of ``size`` float32 values, and its key."""
    import jax
    if implementation == "jax.random":
        draw = (jax.random.normal if distribution == "normal" else
                lambda k, s: jax.random.truncated_normal(k, -2.0, 2.0, s))
    else:
        import fastinit.jax as fj
        draw = fj.normal(1.0) if distribution == "normal" else fj.truncated_normal(1.0)
    key = jax.random.key(0)
    return jax.jit(lambda k: draw(k, (size,))).lower(key).compile(), key


class Sample:
    """One jitted draw of ``size`` float32 values (compiled and run once in setup)."""

    params = (DISTRIBUTIONS, IMPLEMENTATIONS, SIZES)
    param_names = ["distribution", "implementation", "size"]
    timeout = 300

    def setup(self, distribution, implementation, size):
        if importlib.util.find_spec("jax") is None:
            raise NotImplementedError("jax is not installed")
        self.fn, self.key = _sampler(distribution, implementation, size)
        self.fn(self.key).block_until_ready()

    def time_sample(self, distribution, implementation, size):
        self.fn(self.key).block_until_ready()

    def track_temporaries_per_output_byte(self, distribution, implementation, size):
        return self.fn.memory_analysis().temp_size_in_bytes / (4 * size)

    track_temporaries_per_output_byte.unit = "bytes per output byte"
