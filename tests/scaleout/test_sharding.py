"""Region and shard invariance of every initializer (fastinit.sharding)."""

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastinit.initializers as fi
from fastinit import sharding

from helpers import assert_bits_equal

ELEMENTWISE = [
    fi.RandomNormal(0.5, 2.0, seed=3), fi.RandomUniform(-1.0, 2.0, seed=3),
    fi.TruncatedNormal(0.0, 1.0, seed=3), fi.TruncatedNormal(0.0, 1.0, seed=3, lower=1.0, upper=1.5),
    fi.VarianceScaling(2.0, "fan_avg", "untruncated_normal", seed=3),
    fi.GlorotUniform(seed=3), fi.GlorotNormal(seed=3), fi.HeUniform(seed=3), fi.HeNormal(seed=3),
    fi.LecunUniform(seed=3), fi.LecunNormal(seed=3), fi.Zeros(), fi.Ones(), fi.Constant(0.25),
]
GLOBAL = [fi.Orthogonal(seed=3), fi.Sparse(0.3, seed=3)]
DTYPES = ["float32", "float64", "bfloat16", "float16"]


@st.composite
def shape_and_region(draw):
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=1, max_size=4)))
    index = []
    for n in shape:
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, n))
        step = draw(st.sampled_from([None, 1, 2, 3]))
        index.append(draw(st.sampled_from([slice(a, b, step), slice(None)]))
                     if n else slice(None))
    cut = draw(st.integers(0, len(shape)))
    return shape, tuple(index[:cut])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shape_and_region(), which=st.integers(0, len(ELEMENTWISE) - 1),
       dtype=st.sampled_from(DTYPES), stream=st.integers(0, 2**64 - 1))
def test_region_equals_slice_of_whole(case, which, dtype, stream):
    shape, index = case
    init = ELEMENTWISE[which]
    whole = init(shape, dtype, stream=stream)
    assert_bits_equal(sharding.generate(init, shape, index, dtype, stream=stream), whole[index])


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 11), min_size=1, max_size=3).map(tuple),
       axis=st.integers(0, 2), num_shards=st.integers(1, 6),
       which=st.integers(0, len(ELEMENTWISE) - 1))
def test_shards_concatenate_to_whole(shape, axis, num_shards, which):
    axis %= len(shape)
    init = ELEMENTWISE[which]
    whole = init(shape)
    parts = [sharding.generate(init, shape, sharding.ShardSpec(axis, num_shards, k))
             for k in range(num_shards)]
    assert sum(p.shape[axis] for p in parts) == shape[axis]
    assert_bits_equal(np.concatenate(parts, axis=axis), whole)
    # torch.chunk semantics
    import torch
    sizes = [c.shape[axis] for c in torch.chunk(torch.empty(shape), num_shards, dim=axis)] \
        if shape[axis] else []
    assert [p.shape[axis] for p in parts if p.shape[axis]] == sizes


@pytest.mark.parametrize("init", GLOBAL, ids=lambda i: type(i).__name__)
def test_global_initializers_cut_from_whole(init):
    shape = (12, 7)
    whole = init(shape)
    assert not sharding.is_elementwise(init)
    for k in range(3):
        spec = sharding.ShardSpec(0, 3, k)
        assert_bits_equal(sharding.generate(init, shape, spec), whole[spec.slices(shape)])


def test_complex_regions():
    init = fi.VarianceScaling(1.0, "fan_in", "truncated_normal", seed=1)
    whole = init((6, 5), "complex64")
    assert_bits_equal(sharding.generate(init, (6, 5), (slice(1, 4), 2), "complex64"),
                      whole[1:4, 2])


def test_name_stream_definition():
    for name in ["", "w", "layers.0.attn.q_proj.weight", "ünïcødé"]:
        expect = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(),
                                "little")
        assert sharding.name_stream(name) == expect
    assert sharding.name_stream("a.weight") != sharding.name_stream("a.bias")
    with pytest.raises(TypeError, match="name"):
        sharding.name_stream(3)


def test_bad_shard_specs():
    with pytest.raises(ValueError, match="num_shards"):
        sharding.shard_bounds(10, 0, 0)
    with pytest.raises(ValueError, match="shard index"):
        sharding.shard_bounds(10, 2, 2)
    with pytest.raises(ValueError, match="axis"):
        sharding.shard_slices((3, 4), 2, 2, 0)
    with pytest.raises(TypeError, match="region"):
        sharding.to_index((3,), [0, 1])
