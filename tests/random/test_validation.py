"""Bad input: a TypeError or ValueError that names the value, raised before anything is written."""

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastinit import random as fr

from helpers import resolve

SENTINEL = 7.0


def _sentinel(shape=(2, 3), dtype="float32"):
    return np.full(shape, SENTINEL, dtype=resolve(dtype))


def _readonly():
    out = _sentinel()
    out.flags.writeable = False
    return out


# (id, function, keyword arguments, exception, text the message must contain)
CASES = [
    # shape
    ("shape_negative", "uniform", dict(shape=(-1, 3)), ValueError, "(-1, 3)"),
    ("shape_negative_int", "normal", dict(shape=-4), ValueError, "-4"),
    ("shape_float_dim", "uniform", dict(shape=(2.5, 3)), TypeError, "2.5"),
    ("shape_float", "uniform", dict(shape=3.0), TypeError, "3.0"),
    ("shape_bool_dim", "normal", dict(shape=(True, 3)), TypeError, "True"),
    ("shape_bool", "normal", dict(shape=False), TypeError, "False"),
    ("shape_np_bool_dim", "normal", dict(shape=(np.True_, 3)), TypeError, "True"),
    ("shape_str", "uniform", dict(shape="3"), TypeError, "'3'"),
    ("shape_none_dim", "uniform", dict(shape=(3, None)), TypeError, "None"),
    ("shape_overflow", "uniform", dict(shape=(2**31, 2**31)), ValueError, "2147483648"),
    ("shape_overflow_huge", "truncated_normal", dict(shape=(2**40, 2**40, 3)), ValueError,
     "1099511627776"),
    ("shape_missing", "uniform", dict(shape=None, out=None), TypeError, "shape=None"),
    # seed and stream
    ("seed_negative", "uniform", dict(seed=-1), ValueError, "seed=-1"),
    ("seed_2_64", "uniform", dict(seed=2**64), ValueError, "seed=18446744073709551616"),
    ("seed_float", "normal", dict(seed=1.0), TypeError, "seed=1.0"),
    ("seed_np_float", "normal", dict(seed=np.float64(3.0)), TypeError, "3.0"),
    ("seed_bool", "normal", dict(seed=True), TypeError, "seed=True"),
    ("seed_str", "truncated_normal", dict(seed="1"), TypeError, "seed='1'"),
    ("seed_none", "uniform", dict(seed=None), TypeError, "seed=None"),
    ("stream_negative", "uniform", dict(stream=-5), ValueError, "stream=-5"),
    ("stream_2_64", "normal", dict(stream=2**64), ValueError, "stream=18446744073709551616"),
    ("stream_float", "normal", dict(stream=0.5), TypeError, "stream=0.5"),
    ("stream_bool", "normal", dict(stream=False), TypeError, "stream=False"),
    # distribution parameters
    ("std_negative", "normal", dict(std=-1.0), ValueError, "std=-1.0"),
    ("std_negative_tiny", "truncated_normal", dict(std=-1e-300), ValueError, "std=-1e-300"),
    ("std_nan", "normal", dict(std=math.nan), ValueError, "std=nan"),
    ("std_inf", "truncated_normal", dict(std=math.inf), ValueError, "std=inf"),
    ("std_str", "normal", dict(std="1"), TypeError, "std='1'"),
    ("std_beyond_float", "normal", dict(std=10**400), ValueError, "std=1000000"),
    ("mean_beyond_float", "truncated_normal", dict(mean=-10**400), ValueError, "mean=-1000000"),
    ("low_beyond_float", "uniform", dict(low=-10**400), ValueError, "low=-1000000"),
    # values that would pass the dtype's range (inf), as uniform refuses such bounds
    ("normal_past_f16_range", "normal", dict(std=3e4, dtype="float16",
                                             out=_sentinel(dtype="float16")),
     ValueError, "std=30000.0"),
    ("normal_mean_near_f16_max", "normal", dict(mean=65000.0, std=100.0, dtype="float16",
                                                out=_sentinel(dtype="float16")),
     ValueError, "mean=65000.0, std=100.0"),
    ("normal_past_f32_range", "normal", dict(std=1e38), ValueError, "std=1e+38"),
    ("trunc_open_past_f16_range", "truncated_normal",
     dict(std=3e4, a=-math.inf, b=math.inf, dtype="float16", out=_sentinel(dtype="float16")),
     ValueError, "std=30000.0"),
    ("trunc_open_above_past_bf16_range", "truncated_normal",
     dict(std=1e38, a=0.0, b=math.inf, dtype="bfloat16", out=_sentinel(dtype="bfloat16")),
     ValueError, "std=1e+38"),
    ("mean_nan", "normal", dict(mean=math.nan), ValueError, "mean=nan"),
    ("mean_inf", "normal", dict(mean=math.inf), ValueError, "mean=inf"),
    ("mean_neg_inf", "truncated_normal", dict(mean=-math.inf), ValueError, "mean=-inf"),
    ("mean_bool", "normal", dict(mean=True), TypeError, "mean=True"),
    ("mean_none", "normal", dict(mean=None), TypeError, "mean=None"),
    ("mean_complex", "normal", dict(mean=1j), TypeError, "1j"),
    ("low_nan", "uniform", dict(low=math.nan), ValueError, "low=nan"),
    ("high_inf", "uniform", dict(high=math.inf), ValueError, "high=inf"),
    ("low_gt_high", "uniform", dict(low=2.0, high=1.0), ValueError, "low=2.0, high=1.0"),
    ("uniform_overflow", "uniform", dict(low=-3e38, high=3e38), ValueError, "6e+38"),
    ("uniform_empty_f16", "uniform", dict(low=1.0001, high=1.0002, dtype="float16",
                                          out=_sentinel(dtype="float16")),
     ValueError, "low=1.0001, high=1.0002"),
    ("a_eq_b", "truncated_normal", dict(a=1.0, b=1.0), ValueError, "a=1.0, b=1.0"),
    ("a_gt_b", "truncated_normal", dict(a=2.0, b=-2.0), ValueError, "a=2.0, b=-2.0"),
    ("a_nan", "truncated_normal", dict(a=math.nan), ValueError, "a=nan"),
    ("b_nan", "truncated_normal", dict(b=math.nan), ValueError, "b=nan"),
    ("a_inf_b_inf", "truncated_normal", dict(a=math.inf, b=math.inf), ValueError, "a=inf"),
    ("bounds_no_f16_value", "truncated_normal",
     dict(a=1.0001, b=1.0002, dtype="float16", out=_sentinel(dtype="float16")),
     ValueError, "a=1.0001, b=1.0002"),
    ("bounds_too_far", "truncated_normal", dict(a=1e20, b=1e21), ValueError, "a=1e+20"),
    ("std0_mean_outside", "truncated_normal", dict(std=0.0, mean=5.0), ValueError,
     "mean=5.0"),
    # dtype
    ("dtype_int32", "uniform", dict(dtype="int32"), TypeError, "'int32'"),
    ("dtype_np_int32", "normal", dict(dtype=np.int32), TypeError, "int32"),
    ("dtype_complex64", "normal", dict(dtype=np.complex64), TypeError, "complex64"),
    ("dtype_float8", "truncated_normal", dict(dtype="float8"), TypeError, "'float8'"),
    ("dtype_bool", "uniform", dict(dtype=bool), TypeError, "bool"),
    ("dtype_garbage", "uniform", dict(dtype=3.5), TypeError, "3.5"),
    # out
    ("out_wrong_dtype", "uniform", dict(out=_sentinel(dtype="float64"), dtype="float32"),
     TypeError, "float64"),
    ("out_wrong_shape", "normal", dict(out=_sentinel((3, 2))), ValueError, "(3, 2)"),
    ("out_wrong_region_shape", "normal",
     dict(shape=(4, 3), index=(slice(0, 3),), out=_sentinel((2, 3))), ValueError, "(2, 3)"),
    ("out_read_only", "truncated_normal", dict(out=_readonly()), ValueError, "writeable=False"),
    ("out_not_ndarray", "uniform", dict(out=[[0.0] * 3] * 2), TypeError, "list"),
    ("out_int_dtype", "uniform", dict(shape=None, dtype=None,
                                      out=np.full((2, 3), 7, np.int32)), TypeError, "int32"),
    # backend
    ("backend_unknown", "uniform", dict(backend="cuda2"), ValueError, "backend='cuda2'"),
    ("backend_not_str", "normal", dict(backend=3), TypeError, "backend=3"),
    # index and offset
    ("index_out_of_range", "uniform", dict(shape=(3, 4), index=(5,)), ValueError, "5"),
    ("index_negative_out_of_range", "normal", dict(shape=(3, 4), index=(0, -5)), ValueError,
     "-5"),
    ("index_negative_step", "normal", dict(shape=(3, 4), index=(slice(None, None, -1),)),
     ValueError, "slice(None, None, -1)"),
    ("index_zero_step", "normal", dict(shape=(3, 4), index=(slice(None, None, 0),)),
     ValueError, "slice(None, None, 0)"),
    ("index_too_long", "uniform", dict(shape=(3, 4), index=(0, 0, 0)), ValueError,
     "(0, 0, 0)"),
    ("index_float", "uniform", dict(shape=(3, 4), index=(1.5,)), TypeError, "1.5"),
    ("index_float_step", "uniform", dict(shape=(3, 4), index=(slice(0, 3, 1.5),)), TypeError,
     "1.5"),
    ("index_ellipsis", "uniform", dict(shape=(3, 4), index=(Ellipsis,)), TypeError,
     "Ellipsis"),
    ("index_without_shape", "uniform", dict(shape=None, index=(0,)), TypeError, "shape=None"),
    ("offset_negative", "uniform", dict(offset=-1), ValueError, "offset=-1"),
    ("offset_float", "normal", dict(offset=1.5), TypeError, "offset=1.5"),
    ("offset_too_big", "normal", dict(offset=2**62 - 3), ValueError, str(2**62 - 3)),
]

DEFAULTS = dict(shape=(2, 3), seed=0)


@pytest.mark.parametrize("fn, kwargs, exc, needle", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(fn, kwargs, exc, needle, backend):
    kwargs = {**DEFAULTS, **kwargs}
    kwargs.setdefault("out", _sentinel())
    kwargs.setdefault("backend", backend)
    out = kwargs["out"]
    before = np.array(out, copy=True) if isinstance(out, np.ndarray) else None
    with pytest.raises(exc, match=re.escape(needle)):
        getattr(fr, fn)(**kwargs)
    if before is not None:  # nothing was written
        assert out.tobytes() == before.tobytes()


WITHOUT_OUT = [c[1:] for c in CASES if "out" not in c[2]]


@pytest.mark.parametrize("fn, kwargs, exc, needle", WITHOUT_OUT,
                         ids=[c[0] for c in CASES if "out" not in c[2]])
def test_bad_input_without_out(fn, kwargs, exc, needle):
    kwargs = {**DEFAULTS, **kwargs}
    with pytest.raises(exc, match=re.escape(needle)):
        getattr(fr, fn)(**kwargs)


def test_overflow_error_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="overflow"):
            fr.uniform(4, -3e38, 3e38, seed=0)


@settings(max_examples=25, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64),
                 st.floats(), st.booleans(), st.text(max_size=3), st.none()))
def test_any_bad_seed(seed):
    out = _sentinel()
    with pytest.raises((TypeError, ValueError)) as info:
        fr.normal(seed=seed, out=out, backend="numpy")
    assert repr(seed) in str(info.value) or str(seed) in str(info.value)
    assert (out == SENTINEL).all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(),
                          st.none()), min_size=1, max_size=3),
       st.lists(st.integers(0, 5), max_size=2))
def test_any_bad_shape(bad, good):
    shape = tuple(good) + tuple(bad)
    with pytest.raises((TypeError, ValueError)) as info:
        fr.uniform(shape, seed=0, backend="numpy")
    assert repr(shape) in str(info.value)


# -- the low-level Philox function ---------------------------------------------------

PHILOX_CASES = [
    ("counter_float", dict(counter=[0.0, 0, 0, 0]), TypeError, "float64"),
    ("counter_width", dict(counter=[0, 0, 0]), ValueError, "(3,)"),
    ("counter_scalar", dict(counter=5), ValueError, "()"),
    ("counter_too_big", dict(counter=[2**32, 0, 0, 0]), ValueError, "4294967296"),
    ("counter_negative", dict(counter=[-1, 0, 0, 0]), ValueError, "-1"),
    ("key_width", dict(key=[0, 0, 0]), ValueError, "(3,)"),
    ("key_str", dict(key=["a", "b"]), TypeError, "<U1"),
]


@pytest.mark.parametrize("kwargs, exc, needle", [c[1:] for c in PHILOX_CASES],
                         ids=[c[0] for c in PHILOX_CASES])
def test_philox_bad_input(kwargs, exc, needle):
    kwargs = {"counter": [0, 0, 0, 0], "key": [0, 0], **kwargs}
    with pytest.raises(exc, match=re.escape(needle)):
        fr.philox4x32_10(**kwargs)


# -- inputs that look unusual but are valid ---------------------------------------------------

VALID = [
    ("numpy_ints", "uniform", dict(shape=(np.int64(2), np.uint8(3)), seed=np.uint64(2**64 - 1),
                                   stream=np.int32(4), offset=np.int16(3))),
    ("list_shape", "normal", dict(shape=[2, 3], seed=0)),
    ("int_shape", "normal", dict(shape=6, seed=0)),
    ("scalar_shape", "normal", dict(shape=(), seed=0)),
    ("zero_dim", "truncated_normal", dict(shape=(0, 2**40), seed=0)),
    ("numpy_float_params", "normal", dict(shape=3, mean=np.float32(1.5), std=np.float16(2),
                                          seed=0)),
    ("low_eq_high", "uniform", dict(shape=3, low=1.5, high=1.5, seed=0)),
    ("std_zero", "normal", dict(shape=3, mean=2.0, std=0.0, seed=0)),
    ("trunc_std_zero", "truncated_normal", dict(shape=3, mean=0.25, std=0.0, seed=0)),
    ("infinite_bounds", "truncated_normal", dict(shape=3, a=-math.inf, b=math.inf, seed=0)),
    ("bounds_beyond_float", "truncated_normal", dict(shape=3, a=-10**400, b=10**400, seed=0)),
    ("normal_just_inside_f16_range", "normal", dict(shape=3, std=9e3, dtype="float16", seed=0)),
    ("trunc_closed_past_f16_reach", "truncated_normal",
     dict(shape=3, std=3e4, a=-1e4, b=1e4, dtype="float16", seed=0)),
    ("trunc_exponential_tail_inside_f16", "truncated_normal",
     dict(shape=3, std=1e3, a=6e4, b=math.inf, dtype="float16", seed=0)),
    ("dtype_object", "uniform", dict(shape=3, dtype=np.dtype("float16"), seed=0)),
    ("negative_index", "uniform", dict(shape=(3, 4), index=(-1, slice(-3, None)), seed=0)),
]


@pytest.mark.parametrize("fn, kwargs", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_unusual_input(fn, kwargs, backend):
    x = getattr(fr, fn)(backend=backend, **kwargs)
    assert isinstance(x, np.ndarray)
    assert np.isfinite(x.astype(np.float64)).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_normal_range_rule_is_tight_and_safe(dtype):
    """The largest std that normal() accepts cannot give an infinity (its largest value, the
    stream's largest |z| times std, rounds to a finite number in the working precision and
    then the dtype), and 1% more would overflow: the rule refuses what it must, no more."""
    dt = resolve(dtype)
    wide = dt == np.float64
    z_max = fr._reach(wide)[0]
    work = np.float64 if wide else np.float32

    def accepted(std):
        try:
            fr.normal_distribution(0.0, std, dt)
            return True
        except ValueError:
            return False

    lo, hi = 0.0, float(np.finfo(work).max)
    for _ in range(200):  # bisect the largest accepted std
        mid = lo + (hi - lo) / 2
        lo, hi = (mid, hi) if accepted(mid) else (lo, mid)
    with np.errstate(over="ignore"):
        top = np.asarray(work(lo) * work(z_max)).astype(dt)
        over = np.asarray(work(lo * 1.01) * work(z_max)).astype(dt)
    assert np.isfinite(top.astype(np.float64)) and np.isinf(over.astype(np.float64))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("make", [
    lambda: np.matrix(np.zeros((4, 6), np.float32)),
    lambda: np.matrix(np.zeros((6, 4), np.float32)).T,      # a strided matrix
    lambda: np.ma.masked_array(np.zeros((4, 6), np.float32)),
], ids=["matrix", "matrix_transposed", "masked"])
def test_out_may_be_an_ndarray_subclass(make, backend):
    """np.matrix (and other subclasses) as out: filled in place and returned, the same bits as
    a plain array (the Numba kernels once failed with an internal typing error)."""
    out = make()
    got = fr.truncated_normal(mean=0.5, seed=3, out=out, backend=backend)
    assert got is out
    np.testing.assert_array_equal(np.asarray(got), fr.truncated_normal((4, 6), 0.5, seed=3))


def test_constant_cases():
    assert (fr.uniform(5, 1.5, 1.5, seed=0) == 1.5).all()
    assert (fr.normal(5, 2.0, 0.0, seed=0) == 2.0).all()
    assert (fr.truncated_normal(5, 0.25, 0.0, seed=0, dtype="float64") == 0.25).all()
