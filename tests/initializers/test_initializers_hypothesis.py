"""Property tests: random valid configurations round-trip and give the right shape;
invalid ones raise ValueError naming the value ("Received: ...")."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastinit.initializers as fi

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

seeds = st.one_of(st.none(), st.integers(0, 2**64 - 1))
reals = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
positives = st.floats(1e-6, 1e3, allow_nan=False, allow_infinity=False)
# Locations and spreads for which float16/bfloat16 have values inside every range drawn.
locations = st.floats(-10, 10, allow_nan=False)
spreads = st.floats(0.05, 1e3, allow_nan=False)
shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from(["float16", "bfloat16", "float32", "float64"])


def _axes_kwargs(draw, ndim):
    style = draw(st.sampled_from(["default", "keras", "jax"]))
    if style == "keras" and ndim >= 2:
        return {"input_axes": [0], "output_axes": [ndim - 1]}
    if style == "jax" and ndim >= 2:
        return {"in_axis": draw(st.sampled_from([0, -2])), "out_axis": -1,
                "batch_axis": draw(st.sampled_from([(), ()] if ndim < 3 else [(), 1]))}
    return {}


@st.composite
def configs(draw):
    """(class, config, shape) for a random valid configuration."""
    shape = draw(shapes)
    kind = draw(st.sampled_from(["normal", "uniform", "truncated", "vs", "preset", "constant",
                                 "orthogonal", "identity"]))
    seed = draw(seeds)
    if kind == "normal":
        return fi.RandomNormal, {"mean": draw(locations), "stddev": draw(spreads),
                                 "seed": seed}, shape
    if kind == "uniform":
        a, b = sorted([draw(locations), draw(locations)])
        return fi.RandomUniform, {"minval": a, "maxval": b + 0.1, "seed": seed}, shape
    if kind == "truncated":
        return fi.TruncatedNormal, {"mean": draw(locations), "stddev": draw(spreads),
                                    "seed": seed}, shape
    if kind == "vs":
        config = {"scale": draw(positives),
                  "mode": draw(st.sampled_from(["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])),
                  "distribution": draw(st.sampled_from(["truncated_normal", "untruncated_normal",
                                                        "uniform"])),
                  "seed": seed, **_axes_kwargs(draw, len(shape))}
        if "in_axis" in config or "input_axes" in config or len(shape) >= 2:
            return fi.VarianceScaling, config, shape
        config.pop("in_axis", None)
        return fi.VarianceScaling, {k: v for k, v in config.items()
                                    if k not in ("out_axis", "batch_axis")}, shape
    if kind == "preset":
        cls = draw(st.sampled_from([fi.GlorotUniform, fi.GlorotNormal, fi.HeUniform,
                                    fi.HeNormal, fi.LecunUniform, fi.LecunNormal]))
        return cls, {"seed": seed}, shape
    if kind == "constant":
        return fi.Constant, {"value": draw(reals)}, shape
    if kind == "orthogonal":
        shape = shape + (2,) * max(0, 2 - len(shape))
        return fi.Orthogonal, {"gain": draw(reals), "seed": seed}, shape
    return fi.Identity, {"gain": draw(reals)}, draw(st.tuples(st.integers(1, 5),
                                                              st.integers(1, 5)))


@SETTINGS
@given(configs(), dtypes)
def test_valid_configs_round_trip(item, dtype):
    cls, config, shape = item
    init = cls(**config)
    got = init.get_config()
    assert json.loads(json.dumps(got)) == got
    again = cls.from_config(got)
    assert again.get_config() == got
    assert fi.deserialize(fi.serialize(init)).get_config() == got
    x = init(shape, dtype)
    assert x.shape == shape and x.dtype.name == dtype
    if got.get("seed") is not None:
        np.testing.assert_array_equal(again(shape, dtype), x)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda s: not s > 0)
       | st.floats(max_value=0.0))
def test_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match=r"Received: scale="):
        fi.VarianceScaling(scale=scale)


@SETTINGS
@given(st.text(max_size=12).filter(lambda m: m not in ("fan_in", "fan_out", "fan_avg",
                                                        "fan_geo_avg")))
def test_unknown_mode(mode):
    with pytest.raises(ValueError, match=r"Received: mode="):
        fi.VarianceScaling(mode=mode)


@SETTINGS
@given(st.text(max_size=20).filter(lambda d: d.lower() not in (
    "normal", "truncated_normal", "untruncated_normal", "uniform")))
def test_unknown_distribution(distribution):
    with pytest.raises(ValueError, match=r"Received: distribution="):
        fi.VarianceScaling(distribution=distribution)


@SETTINGS
@given(st.floats(max_value=-1e-300, allow_infinity=True))
def test_negative_stddev(stddev):
    for cls in (fi.RandomNormal, fi.TruncatedNormal):
        with pytest.raises(ValueError, match=r"Received: stddev="):
            cls(stddev=stddev)


@SETTINGS
@given(reals, positives)
def test_minval_above_maxval(maxval, gap):
    minval = maxval + gap
    if minval == maxval:
        return
    with pytest.raises(ValueError, match=r"Received: minval=.*maxval="):
        fi.RandomUniform(minval=minval, maxval=maxval)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=3, max_size=5).map(tuple)
       | st.lists(st.integers(1, 4), min_size=0, max_size=1).map(tuple))
def test_identity_needs_2d(shape):
    with pytest.raises(ValueError, match=r"Received: shape="):
        fi.Identity()(shape)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
def test_wrong_shape_array_identifier(array_shape, call_shape):
    init = fi.get(np.ones(array_shape))
    if array_shape == call_shape:
        assert init(call_shape).shape == call_shape
        return
    with pytest.raises(ValueError, match=r"Received: shape="):
        init(call_shape)


@pytest.mark.parametrize("factory, match", [
    (lambda: fi.VarianceScaling(input_axes=[0]), "Received: input_axes="),
    (lambda: fi.VarianceScaling(input_axes=[0], output_axes=[1], in_axis=0),
     "Received: input_axes="),
    (lambda: fi.VarianceScaling(in_axis="0"), "Received: in_axis="),
    (lambda: fi.VarianceScaling(distribution=3), "Received: distribution="),
    (lambda: fi.TruncatedNormal(lower=2.0, upper=1.0), "Received: lower="),
    (lambda: fi.RandomNormal(mean=math.nan), "Received: mean="),
    (lambda: fi.Constant("a"), "Received: value="),
    (lambda: fi.Orthogonal(gain="x"), "Received: gain="),
    (lambda: fi.Orthogonal(column_axis=1.0), "Received: column_axis="),
    (lambda: fi.Dirac(groups=0), "Received: groups="),
    (lambda: fi.Sparse(1.5), "Received: sparsity="),
    (lambda: fi.STFT(side="both"), "Received: side="),
    (lambda: fi.STFT(scaling="l2"), "Received: scaling="),
    (lambda: fi.STFT(window="no-such-window"), "Received: window="),
    (lambda: fi.Orthogonal(seed=0)((5,)), "Received: shape="),
    (lambda: fi.VarianceScaling(in_axis=3)((2, 2)), "Received: in_axis"),
    (lambda: fi.deserialize({"class_name": "GlorotUniform", "config": {"scale": 2.0}}),
     "Received: config="),
    (lambda: fi.deserialize({"class_name": "os.system", "config": {}}),
     "Received: class_name="),
    (lambda: fi.get(42), "Received: identifier="),
])
def test_invalid_configs(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()
