"""Element i depends only on (seed, stream, i): not on threads, pieces, layout or chunking."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fastinit import _region, _target, random as fr
from fastinit.backends import numpy_backend

from helpers import DTYPES, assert_bits_equal, draw, regions, shapes

# One configuration per distribution; truncated normal with ~32% rejections so
# that resampling happens in every piece.
CASES = [
    ("uniform", dict(low=-2.0, high=3.0)),
    ("normal", dict(mean=0.5, std=2.0)),
    ("truncated_normal", dict(mean=0.5, std=2.0, alpha=-1.0, beta=1.0)),
    ("truncated_normal", dict(mean=0.0, std=1.0, alpha=8.0, beta=9.0)),
]
CASE_IDS = ["uniform", "normal", "trunc_sym1", "trunc_tail"]
SEED, STREAM = 2**64 - 1, 11


def gen(name, shape, params, **kw):
    kw.setdefault("seed", SEED)
    kw.setdefault("stream", STREAM)
    return draw(name, shape, **params, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_numba_thread_count(name, params, dtype, cpu_threads):
    """1 vs 2 Numba threads, over several 8192-element tasks and many runs."""
    shape = (5, 7, 9001)
    index = (slice(None), slice(1, None, 2), slice(3, 8999))
    results = []
    for n in (1, 2):
        cpu_threads(n)
        results.append(gen(name, shape, params, dtype=dtype, backend="numba"))
        results.append(gen(name, shape, params, dtype=dtype, backend="numba", index=index))
    assert_bits_equal(results[0], results[2])
    assert_bits_equal(results[1], results[3])
    assert_bits_equal(results[0][index], results[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_pieces_by_offset(name, params, dtype, backend):
    """A flat tensor equals its pieces generated at the matching offsets."""
    n, base = 20_011, 2**34 - 10_000  # crosses the block counter's hi-word boundary
    whole = gen(name, n, params, dtype=dtype, backend=backend, offset=base)
    cuts = [0, 1, 2, 5, 8, 13, 100, 8192 + 3, 9000, 17_777, n]
    pieces = [gen(name, b - a, params, dtype=dtype, backend=backend, offset=base + a)
              for a, b in zip(cuts[:-1], cuts[1:])]
    assert_bits_equal(whole, np.concatenate(pieces))
    # rows of a 2-D tensor are flat pieces too
    rows = gen(name, (7, 3), params, dtype=dtype, backend=backend, offset=base)
    for r in range(7):
        assert_bits_equal(rows[r], gen(name, 3, params, dtype=dtype, backend=backend,
                                       offset=base + 3 * r))


INDICES_2D = [
    (slice(0, 3),),
    (slice(3, None),),
    (slice(None), slice(0, 5)),
    (slice(None), slice(5, None)),
    (slice(1, None, 2), slice(None, None, 3)),
    (4,),
    (-1, slice(2, 9)),
    (slice(None), 6),
    (2, 3),
    (slice(2, 2),),
]
INDICES_3D = [
    (slice(0, 2),),
    (slice(None), slice(1, 4)),
    (slice(None), slice(None), slice(0, 6)),
    (1, slice(None), slice(0, 11, 3)),
    (slice(None, None, 2), 0, slice(1, None)),
    (slice(1, 3), slice(None, None, 4), 10),
    (-2, -1, -1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_regions_by_index(name, params, dtype, backend):
    for shape, indices in (((9, 13), INDICES_2D), ((3, 5, 11), INDICES_3D)):
        whole = gen(name, shape, params, dtype=dtype, backend=backend, offset=7)
        for index in indices:
            part = gen(name, shape, params, dtype=dtype, backend=backend, offset=7, index=index)
            assert_bits_equal(whole[index], part)


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_shards_reassemble(name, params, axis, backend):
    """Shard(0) and Shard(1) of a 2-D and a 3-D tensor reassemble to the whole."""
    for shape in ((12, 10), (6, 9, 5)):
        whole = gen(name, shape, params, backend=backend)
        bounds = np.linspace(0, shape[axis], 4).astype(int)
        shards = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            index = (slice(None),) * axis + (slice(int(a), int(b)),)
            shards.append(gen(name, shape, params, backend=backend, index=index))
        assert_bits_equal(whole, np.concatenate(shards, axis=axis))


def _outs(shape, dtype):
    """Output buffers of every layout, each with a sentinel-filled parent to check."""
    dt = fr._dtypes.resolve(dtype)
    c = np.empty(shape, dt)
    f = np.empty(shape, dt, order="F")
    big = np.full((2 * shape[0], 3 * shape[1]) + shape[2:], 7, dt)
    strided = big[::2, 1::3]
    rev_parent = np.full(shape, 7, dt)
    reversed_ = rev_parent[::-1, ::-1]
    t_parent = np.full(shape[::-1], 7, dt)
    transposed = t_parent.T
    return {"C": (c, None), "F": (f, None), "strided": (strided, big),
            "reversed": (reversed_, None), "transposed": (transposed, None)}


@pytest.mark.parametrize("shape", [(6, 5, 7), (37, 70)], ids=["3d", "2d"])  # 2-D: tiled copy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_out_layouts(name, params, dtype, backend, shape):
    expected = gen(name, shape, params, dtype=dtype, backend=backend)
    for layout, (out, parent) in _outs(shape, dtype).items():
        returned = gen(name, None, params, dtype=None, backend=backend, out=out)
        assert returned is out, layout
        assert_bits_equal(np.ascontiguousarray(out), expected)
        if parent is not None:  # nothing outside the view was written
            mask = np.ones(parent.shape, bool)
            mask[::2, 1::3] = False
            assert (parent[mask].astype(np.float64) == 7).all(), layout
    # out= together with index=: a non-contiguous view receives a region
    index = (slice(1, 5), 2, slice(None, None, 2)) if len(shape) == 3 else \
        (slice(3, 30), slice(1, None, 2))
    region = expected[index]
    parent = np.full((region.shape[1], region.shape[0]), 7, expected.dtype)
    gen(name, shape, params, dtype=dtype, backend=backend, index=index, out=parent.T)
    assert_bits_equal(np.ascontiguousarray(parent.T), region)


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_chunk_sizes(name, params, backend, monkeypatch):
    """Tiny NumPy pieces, scratch buffers and run batches give the same bits."""
    shape = (9, 37)
    index = (slice(1, None, 3), slice(2, 35))
    expected = gen(name, shape, params, backend=backend)
    expected_f = gen(name, shape, params, backend=backend, out=np.empty(shape, np.float32, "F"))
    expected_i = gen(name, shape, params, backend=backend, index=index)
    monkeypatch.setattr(numpy_backend, "PIECE_BLOCKS", 3)
    monkeypatch.setattr(_target, "CPU_SCRATCH_ELEMENTS", 5)
    monkeypatch.setattr(_region, "MAX_RUNS_PER_PIECE", 2)
    assert_bits_equal(gen(name, shape, params, backend=backend), expected)
    assert_bits_equal(gen(name, shape, params, backend=backend,
                          out=np.empty(shape, np.float32, "F")), expected_f)
    assert_bits_equal(gen(name, shape, params, backend=backend, index=index), expected_i)
    assert_bits_equal(expected[index], expected_i)


def test_dtype_default_and_out_dtype(backend):
    a = fr.uniform((4, 4), seed=1, backend=backend)
    assert a.dtype == np.float32
    out = np.empty((4, 4), np.float64)
    b = fr.uniform(seed=1, out=out, backend=backend)
    assert b.dtype == np.float64
    assert_bits_equal(b, fr.uniform((4, 4), seed=1, dtype="float64", backend=backend))


@st.composite
def region_cases(draw_):
    shape = draw_(shapes())
    return (shape, draw_(regions(shape)), draw_(st.integers(0, 2**40)),
            draw_(st.sampled_from(CASES)), draw_(st.sampled_from(DTYPES)),
            draw_(st.integers(0, 2**64 - 1)))


# `backend` is a plain string, the same for every example.
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(region_cases(), st.data())
def test_any_region_and_split(backend, case, data):
    """Any region equals that part of the whole; any flat split gives the same pieces."""
    shape, index, offset, (name, params), dtype, seed = case
    kw = dict(dtype=dtype, backend=backend, seed=seed, offset=offset)
    whole = gen(name, shape, params, **kw)
    if index is not None:
        assert_bits_equal(whole[index], gen(name, shape, params, index=index, **kw))
    n = math.prod(shape)
    cut = data.draw(st.integers(0, n))
    head = gen(name, cut, params, **kw)
    tail = gen(name, n - cut, params, **{**kw, "offset": offset + cut})
    assert_bits_equal(whole.reshape(-1), np.concatenate([head, tail]))
