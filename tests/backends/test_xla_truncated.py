"""The XLA truncated normal's resources: temporaries under a quarter of the block in
every dtype (``memory_analysis``), list capacities never below their floor, and
blocks of 2**31 elements refused clearly (lowering only: nothing is allocated)."""

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import fastinit.jax as fj  # noqa: E402
from fastinit import _dtypes  # noqa: E402
from fastinit import random as fr  # noqa: E402
from fastinit.backends.xla import _truncated  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])


@pytest.mark.parametrize("lower, upper", [(-2.0, 2.0), (2.0, 3.0)])


def test_temporaries_stay_under_a_quarter_of_the_block(dtype, lower, upper):
    n = 1 << 22      # the list path
    init = fj.truncated_normal(1.0, lower=lower, upper=upper)
    compiled = jax.jit(lambda k: init(k, (n,), jnp.dtype(dtype))).lower(
        jax.random.key(0)).compile()
    ratio = compiled.memory_analysis().temp_size_in_bytes / (n * np.dtype(dtype).itemsize)
    assert ratio < 0.25, (dtype, ratio)


DISTS = [fr.truncated_normal_distribution(0.0, 1.0, a, b, np.dtype(np.float32))
         for a, b in ((-2.0, 2.0), (2.0, 3.0), (0.0, 2.0), (-1e-4, 1e-4))]


@pytest.mark.parametrize("itemsize", [2, 4, 8])


def test_list_capacity_is_never_below_its_floor(itemsize):
    for dist in DISTS:
        for n in [2**k for k in range(10, 31)] + [3 * 2**k + 1 for k in range(10, 29)]:
            wanted = int(1.25 * _truncated._rejection_rate(dist) * n) + _truncated.MIN_CAPACITY
            for budget in (None, 2 * n):
                step, scan, capacity = _truncated._sizes(dist, n, itemsize, budget)
                assert capacity >= min(n, wanted, _truncated._capacity_floor(n)), (n, dist)
                assert 256 <= step <= _truncated.ROUND_CHUNK and 0 < scan <= n


def test_a_block_of_2_31_elements_is_a_clear_error():
    init = fj.truncated_normal(1.0)
    with pytest.raises(ValueError, match=r"Received: shape=\(2147483656,\)"):
        jax.jit(lambda k: init(k, (2**31 + 8,))).lower(jax.random.key(0))


def test_a_block_just_below_2_31_elements_counts_its_chunks_in_python():
    """n = 2**31 - 1 is no multiple of the compaction chunk: ``c * chunk`` past the
    last chunk would wrap negative in int32 and keep the loop going; the loops compare
    the chunk index with the number of chunks instead."""
    n = 2**31 - 1
    dist = fr.truncated_normal_distribution(0.0, 1.0, -2.0, 2.0, _dtypes.resolve("float32"))
    _, scan, _ = _truncated._sizes(dist, n, 4)
    chunks = -(-n // scan)
    assert (chunks * scan) > 2**31 - 1            # the product the loops no longer form
    text = jax.jit(lambda k: fj.truncated_normal(1.0)(k, (n,))).lower(
        jax.random.key(0)).as_text()
    assert f"dense<{chunks}> : tensor<i32>" in text
