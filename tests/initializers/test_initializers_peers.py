"""The parameters match the peers: fans, std and bounds equal those of Keras 3,
torch.nn.init and jax.nn.initializers, for dense, conv1d/2d/3d, vector and scalar
shapes; then a fixed-seed statistical test of the values produced.

Each peer is compared live when installed (and the recorded values in
data/peer_params.json are checked against it), otherwise against the recording.
"""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")

import fastinit.initializers as fi  # noqa: E402
from fastinit import _fans  # noqa: E402

from helpers import peers as _peers  # noqa: E402

stats = pytest.importorskip("scipy.stats")

RECORDED = _peers.recorded()
SHAPE_IDS = list(_peers.SHAPES)


def _close(ours, theirs, rel):
    if theirs == "error" or ours == "error":
        assert ours == theirs
        return
    assert set(ours) == set(theirs), (ours, theirs)
    for key, value in theirs.items():
        if isinstance(value, str):
            assert ours[key] == value
        else:
            assert ours[key] == pytest.approx(value, rel=rel, abs=1e-300), key


def _peer(framework, live, case, shape_id, *args):
    recorded = RECORDED[framework][case][shape_id]
    if _peers.have(framework):
        value = live(*args)
        _close(value, recorded, 1e-12)  # the recording is still what the peer computes
        return value
    return recorded


# -- Keras 3 -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("case, cls_name, kwargs", _peers.KERAS_CASES,
                         ids=[c[0] for c in _peers.KERAS_CASES])
def test_keras_parameters(case, cls_name, kwargs, shape_id):
    shape = _peers.SHAPES[shape_id][0]
    theirs = _peer("keras", _peers.keras_live, case, shape_id, cls_name, kwargs, shape)
    ours = _peers.ours_keras(cls_name, kwargs, shape)
    _close(ours, theirs, 1e-15)


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
def test_keras_fans(shape_id):
    shape = _peers.SHAPES[shape_id][0]
    if _peers.have("keras"):
        from keras.src.initializers.random_initializers import compute_fans
        assert _fans.keras_fans(shape) == compute_fans(shape)
    else:
        pytest.skip("keras not installed (the parameters test covers the fans)")


# -- torch.nn.init -----------------------------------------------------------------------


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("case, fn_name, kwargs", _peers.TORCH_CASES,
                         ids=[c[0] for c in _peers.TORCH_CASES])
def test_torch_parameters(case, fn_name, kwargs, shape_id):
    shape = _peers.SHAPES[shape_id][1]
    theirs = _peer("torch", _peers.torch_live, case, shape_id, fn_name, kwargs, shape)
    ours = _peers.ours_torch(fn_name, kwargs, shape)
    _close(ours, theirs, 1e-15)


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
def test_torch_fans(shape_id):
    torch = pytest.importorskip("torch")
    shape = _peers.SHAPES[shape_id][1]
    try:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    except ValueError:
        with pytest.raises(ValueError, match="Received: shape="):
            _fans.torch_fans(shape)
        return
    assert _fans.torch_fans(shape) == expected


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None),
    ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
    ("leaky_relu", 3), ("selu", None)])
def test_calculate_gain(nonlinearity, param):
    import fastinit.torch as ft
    torch = pytest.importorskip("torch")
    assert ft.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(
        nonlinearity, param)


# -- jax.nn.initializers -----------------------------------------------------------------


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("case, builder, kwargs", _peers.JAX_CASES,
                         ids=[c[0] for c in _peers.JAX_CASES])
def test_jax_parameters(case, builder, kwargs, shape_id):
    shape = _peers.SHAPES[shape_id][0]
    theirs = _peer("jax", _peers.jax_live, case, shape_id, builder, kwargs, shape)
    ours = _peers.ours_jax(builder, kwargs, shape)
    if theirs == "error":
        assert ours == "error"
        return
    # JAX multiplies a float32 draw by a float32 parameter: compare at float32 precision.
    assert ours["multiplier"] == pytest.approx(theirs["multiplier"], rel=2e-7)
    for key in set(theirs) - {"multiplier"}:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-12), key


@pytest.mark.parametrize("shape_id", SHAPE_IDS)
@pytest.mark.parametrize("case, builder, kwargs",
                         [c for c in _peers.JAX_CASES if c[1] == "variance_scaling"],
                         ids=[c[0] for c in _peers.JAX_CASES if c[1] == "variance_scaling"])
def test_jax_fans(case, builder, kwargs, shape_id):
    shape = _peers.SHAPES[shape_id][0]
    recorded = RECORDED["jax_fans"][case][shape_id]
    theirs = _peers.jax_fans_live(shape, kwargs) if _peers.have("jax") else recorded
    assert theirs == recorded
    axes = {k: v for k, v in kwargs.items() if k in ("in_axis", "out_axis", "batch_axis")}
    try:
        ours = list(_fans.jax_fans(shape, **axes))
    except ValueError:
        ours = "error"
    assert ours == theirs


# -- fixed-seed statistics of the values ----------------------------------------------------

STAT_SHAPES = [(256, 384), (3, 3, 64, 96)]


def _expected_distribution(p):
    if p["distribution"] == "uniform":
        return stats.uniform(-p["limit"], 2 * p["limit"]), math.sqrt(p["variance"])
    if p["distribution"] == "untruncated_normal":
        return stats.norm(0, p["stddev"]), math.sqrt(p["variance"])
    return stats.truncnorm(-2, 2, scale=p["stddev"]), math.sqrt(p["variance"])


@pytest.mark.parametrize("shape", STAT_SHAPES, ids=["dense", "conv2d"])
@pytest.mark.parametrize("cls", [fi.GlorotUniform, fi.GlorotNormal, fi.HeUniform, fi.HeNormal,
                                 fi.LecunUniform, fi.LecunNormal], ids=lambda c: c.__name__)
def test_variance_scaling_values(cls, shape):
    init = cls(seed=20240601)
    p = init.parameters(shape)
    dist, target_std = _expected_distribution(p)
    x = init(shape).astype(np.float64).ravel()
    # The values have the variance the method promises (that is the point of the constant).
    assert x.std() == pytest.approx(target_std, rel=0.01)
    assert abs(x.mean()) < 4 * target_std / math.sqrt(x.size)
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3
    if p["distribution"] == "uniform":
        assert np.abs(x).max() < p["limit"]
    if p["distribution"] == "truncated_normal":
        assert np.abs(x).max() <= 2 * p["stddev"]


@pytest.mark.parametrize("init, dist", [
    (fi.RandomNormal(0.5, 0.2, seed=7), stats.norm(0.5, 0.2)),
    (fi.RandomUniform(-1.0, 3.0, seed=7), stats.uniform(-1.0, 4.0)),
    (fi.TruncatedNormal(0.1, 0.3, seed=7), stats.truncnorm(-2, 2, loc=0.1, scale=0.3)),
    (fi.VarianceScaling(0.5, "fan_geo_avg", "untruncated_normal", seed=7),
     stats.norm(0, math.sqrt(0.5 / math.sqrt(256 * 384)))),
], ids=["normal", "uniform", "truncated_normal", "fan_geo_avg"])
def test_elementwise_values(init, dist):
    x = init((256, 384)).astype(np.float64).ravel()
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_front_end_values(framework):
    """Values from the front ends have the peers' distributions (KS against the
    parameters checked above)."""
    shape_t, shape_k = (96, 64, 3, 3), (3, 3, 64, 96)
    if framework == "torch":
        torch = pytest.importorskip("torch")
        import fastinit.torch as ft
        w = ft.kaiming_uniform_(torch.empty(shape_t), a=math.sqrt(5), seed=3)
        bound = 1 / math.sqrt(64 * 9)
        x = w.numpy().astype(np.float64).ravel()
        assert stats.kstest(x, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
        w = ft.xavier_normal_(torch.empty(shape_t), seed=3)
        std = math.sqrt(2 / (64 * 9 + 96 * 9))
        assert stats.kstest(w.numpy().ravel(), stats.norm(0, std).cdf).pvalue > 1e-3
    else:
        jax = pytest.importorskip("jax")
        import fastinit.jax as fj
        x = np.asarray(fj.he_normal()(jax.random.key(3), shape_k), dtype=np.float64).ravel()
        std = math.sqrt(2 / (64 * 9)) / fi.TRUNCATED_NORMAL_STDDEV
        assert stats.kstest(x, stats.truncnorm(-2, 2, scale=std).cdf).pvalue > 1e-3
        x = np.asarray(fj.variance_scaling(1.0, "fan_out", "normal")(3, shape_k)).ravel()
        assert stats.kstest(x, stats.norm(0, math.sqrt(1 / (96 * 9))).cdf).pvalue > 1e-3


def test_orthogonal_is_haar_like():
    # Columns orthonormal, and the sign fix makes the diagonal of R positive-free of bias:
    # the mean of the (0, 0) entry over many seeds is ~0 (no sign bias).
    firsts = [fi.Orthogonal(seed=s)((4, 4))[0, 0] for s in range(200)]
    assert abs(np.mean(firsts)) < 0.15
    q = fi.Orthogonal(seed=1)((50, 20)).astype(np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(20), atol=1e-5)
