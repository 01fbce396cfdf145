"""A standing adversarial suite: hostile arguments to every public entry point.

Each case either raises a TypeError or ValueError whose message names the bad
value ("Received: ...") with ``out`` left untouched, or returns exactly what
the same call gives into a fresh C-ordered array (the reference). Hypothesis
draws shapes, dtypes (byte orders included), seeds, parameters, ``out``
arrays with odd strides, overlaps and read-only flags, and ``index`` forms.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastinit.initializers as fi
import fastinit.random as fr
from fastinit import sharding
from fastinit.initializers.base import SeededInitializer

from helpers import assert_bits_equal

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

odd_numbers = st.sampled_from([math.nan, math.inf, -math.inf, True, "1", None, [1.0], 1e308,
                               -1e308, 2**70, 1j])
shapes = st.one_of(
    st.lists(st.integers(0, 6), max_size=3).map(tuple),
    st.integers(0, 20),
    st.sampled_from([(-1,), (2.5,), ("3",), (True, 2), ((2,),), None, "3", 2**63, (2**31,) * 3,
                     np.int64(4), (np.int32(2), 3)]),
)
dtypes = st.sampled_from(["float32", "float64", "float16", "bfloat16", ">f4", ">f8", "<f2",
                          ">f2", "int32", "uint8", "complex64", "object", "U3", "V4",
                          np.dtype([("a", "f4")]), "float", None, 3, "bogus"])
seeds = st.one_of(st.integers(-2, 2**64 + 1), odd_numbers, st.just(np.uint64(7)))
index_forms = st.one_of(
    st.none(),
    st.sampled_from([(0,), (slice(1, 3),), (slice(None, None, 2),), (-1,), (slice(3, 1),),
                     (True,), (1.0,), (slice(None, None, -1),), (slice(None, None, 0),),
                     (5, 5, 5, 5), (Ellipsis,), ([0, 1],), (np.int64(1),), (slice(0, 2.5),),
                     99, (slice(None), False)]))


def _outs(shape, dtype):
    """``out`` candidates for a call of ``shape`` and ``dtype``: fine ones and hostile ones."""
    try:
        dt = np.dtype(dtype) if dtype != "bfloat16" else np.dtype("float32")
        shape = tuple(shape)
        base = np.full(shape, 7, dt)
    except Exception:  # noqa: BLE001 - not an array shape or dtype: no out
        return [None]
    outs = [None, base, np.asfortranarray(base)]
    if len(shape) >= 1 and base.size and dt.kind in "biufc":
        wide = np.full(shape[:-1] + (2 * shape[-1],), 7, dt)
        outs.append(wide[..., ::2])                              # strided
        ro = base.copy()
        ro.flags.writeable = False
        outs.append(ro)                                          # read-only
        outs.append(np.lib.stride_tricks.as_strided(             # overlapping
            base, shape, (0,) * len(shape), writeable=True))
        outs.append(np.full(shape, 7, dt.newbyteorder()))        # non-native
        outs.append(np.full(shape[::-1] + (1,), 7, dt))          # wrong shape
        outs.append(np.full(shape, 7, np.int16))                 # wrong dtype
    outs.append(list(np.zeros(3)))                               # not an array
    return outs


def _call_or_error(call, out):
    """``call()``'s result, or None after checking the error is clear and ``out`` untouched."""
    before = None if not isinstance(out, np.ndarray) else out.copy()
    try:
        return call()
    except (TypeError, ValueError) as exc:
        assert "Received" in str(exc) or "received" in str(exc), repr(exc)
        if before is not None:
            assert before.tobytes() == out.tobytes() if out.dtype.kind != "O" \
                else (before == out).all()
        return None


def _check_equal_to_fresh(result, reference_call):
    expected = reference_call()
    if expected.dtype.name == "bfloat16":
        result, expected = result.view(np.uint16), expected.view(np.uint16)
    assert_bits_equal(np.array(result, order="C"), expected)


DRAWS = {
    "uniform": lambda shape, p, **kw: fr.uniform(shape, p[0], p[1], **kw),
    "normal": lambda shape, p, **kw: fr.normal(shape, p[0], p[1], **kw),
    "truncated_normal": lambda shape, p, **kw: fr.truncated_normal(shape, p[0], p[1], p[2], p[3],
                                                                    **kw),
}
params = st.lists(st.one_of(st.floats(-5, 5), odd_numbers), min_size=4, max_size=4)


@SETTINGS
@given(name=st.sampled_from(sorted(DRAWS)), shape=shapes, dtype=dtypes, seed=seeds,
       p=params, index=index_forms, stream=seeds, backend=st.sampled_from(["numpy", "numba"]),
       which_out=st.integers(0, 9), offset=st.one_of(st.integers(-1, 5), odd_numbers))
def test_random_functions(name, shape, dtype, seed, p, index, stream, backend, which_out,
                          offset):
    outs = _outs(shape if isinstance(shape, tuple) else (), dtype)
    out = outs[which_out % len(outs)]
    if index is not None:
        out = None
    draw = DRAWS[name]
    kw = dict(dtype=dtype, seed=seed, stream=stream, index=index, offset=offset,
              backend=backend)
    result = _call_or_error(lambda: draw(shape, p, out=out, **kw), out)
    if result is None:
        return
    if out is not None:
        assert result is out
    shape = shape if shape is not None else result.shape   # None: out's shape
    _check_equal_to_fresh(result, lambda: draw(shape, p, **{**kw, "dtype": result.dtype}))


INITIALIZERS = [fi.GlorotUniform(seed=1), fi.HeNormal(seed=1), fi.RandomNormal(seed=1),
                fi.TruncatedNormal(seed=1), fi.Constant(2), fi.Zeros(), fi.Identity(),
                fi.Orthogonal(seed=1), fi.Sparse(0.5, seed=1), fi.Dirac(),
                fi.VarianceScaling(2.0, "fan_avg", "uniform", seed=1)]


@SETTINGS
@given(init=st.sampled_from(INITIALIZERS), shape=shapes, dtype=dtypes, index=index_forms,
       stream=seeds, which_out=st.integers(0, 9))
def test_initializer_calls(init, shape, dtype, index, stream, which_out):
    outs = _outs(shape if isinstance(shape, tuple) else (), dtype)
    out = outs[which_out % len(outs)]
    if index is not None:
        out = None
    result = _call_or_error(lambda: init(shape, dtype, out=out, index=index, stream=stream), out)
    if result is None:
        return
    shape = shape if shape is not None else result.shape   # None: out's shape
    _check_equal_to_fresh(result, lambda: init(shape, result.dtype, index=index, stream=stream))


@SETTINGS
@given(value=st.one_of(st.floats(allow_nan=True), odd_numbers, st.integers(-2**70, 2**70)),
       name=st.sampled_from(["mean", "stddev", "minval", "scale", "gain", "sparsity", "value"]))
def test_initializer_configs(value, name):
    cls = {"mean": fi.RandomNormal, "stddev": fi.TruncatedNormal, "minval": fi.RandomUniform,
           "scale": fi.VarianceScaling, "gain": fi.Orthogonal, "sparsity": fi.Sparse,
           "value": fi.Constant}[name]
    seeded = {"seed": 1} if issubclass(cls, SeededInitializer) else {}
    try:
        init = cls(**{name: value}, **seeded)
    except (TypeError, ValueError) as exc:
        assert "Received" in str(exc), repr(exc)
        return
    assert fi.deserialize(fi.serialize(init)) == init


@SETTINGS
@given(shape=st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple),
       axis=st.integers(-4, 4), shards=st.one_of(st.integers(-1, 5), odd_numbers),
       index=st.integers(-1, 5))
def test_shard_specs(shape, axis, shards, index):
    init = fi.HeNormal(seed=0)
    try:
        spec = sharding.ShardSpec(axis, shards, index)
        part = sharding.generate(init, shape, spec)
    except (TypeError, ValueError) as exc:
        assert "Received" in str(exc), repr(exc)
        return
    assert_bits_equal(part, init(shape)[spec.slices(shape)])


def test_torch_fills_refuse_hostile_tensors():
    torch = pytest.importorskip("torch")
    import fastinit.torch as ft
    t = torch.zeros(4, 3)
    for bad in (lambda: ft.normal_(t.expand(2, 4, 3), seed=0),
                lambda: ft.normal_(torch.zeros(3, dtype=torch.int64), seed=0),
                lambda: ft.normal_(t, seed=-1),
                lambda: ft.normal_(t, std=math.nan, seed=0),
                lambda: ft.uniform_(t, 1.0, 0.0, seed=0),
                lambda: ft.normal_(t, seed=0, generator=torch.Generator()),
                lambda: ft.normal_(np.zeros(3), seed=0),
                lambda: ft.fill_(t, "no_such_initializer")):
        with pytest.raises((TypeError, ValueError), match="Received|seed= and stream="):
            bad()
    assert not t.any()
