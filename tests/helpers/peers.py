"""The distribution parameters that Keras 3, torch.nn.init and JAX compute, and ours.

Each peer's initializer is run with its random functions replaced by a
recorder, so the parameters it would draw with (std, bounds) are captured
exactly, without drawing. fastinit's are captured the same way, at the call
into ``fastinit.random``. When a peer is not installed, the values recorded in
``data/peer_params.json`` stand in; ``python tests/helpers/peers.py`` re-records them
from the installed peers.

Parameters are normalised to ``{"dist": "uniform", "low", "high"}``,
``{"dist": "normal", "mean", "std"}`` or
``{"dist": "truncated_normal", "mean", "std", "a", "b"}``, or ``"error"``.
"""

import contextlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "peer_params.json"

# Shapes in Keras/JAX layout (..., in, out) and the same layers in PyTorch layout.
SHAPES = {
    "scalar": ((), ()),
    "vector": ((7,), (7,)),
    "dense_small": ((3, 5), (5, 3)),
    "dense": ((64, 128), (128, 64)),
    "conv1d": ((3, 16, 32), (32, 16, 3)),
    "conv2d": ((3, 3, 16, 32), (32, 16, 3, 3)),
    "conv3d": ((3, 3, 3, 8, 16), (16, 8, 3, 3, 3)),
}

# (case id, Keras class name, kwargs)
KERAS_CASES = [
    ("glorot_uniform", "GlorotUniform", {}),
    ("glorot_normal", "GlorotNormal", {}),
    ("he_uniform", "HeUniform", {}),
    ("he_normal", "HeNormal", {}),
    ("lecun_uniform", "LecunUniform", {}),
    ("lecun_normal", "LecunNormal", {}),
    ("vs_fan_out_untruncated", "VarianceScaling",
     {"scale": 0.5, "mode": "fan_out", "distribution": "untruncated_normal"}),
    ("vs_fan_avg_normal", "VarianceScaling",
     {"scale": 3.0, "mode": "fan_avg", "distribution": "normal"}),
    ("vs_axes_uniform", "VarianceScaling",
     {"scale": 2.0, "mode": "fan_in", "distribution": "uniform", "input_axes": [0],
      "output_axes": [-1]}),
    ("random_normal", "RandomNormal", {}),
    ("random_normal_args", "RandomNormal", {"mean": 1.0, "stddev": 0.3}),
    ("random_uniform", "RandomUniform", {}),
    ("random_uniform_args", "RandomUniform", {"minval": -2.0, "maxval": 0.5}),
    ("truncated_normal", "TruncatedNormal", {}),
    ("truncated_normal_args", "TruncatedNormal", {"mean": 0.5, "stddev": 0.1}),
]

# (case id, torch.nn.init function name, kwargs)
TORCH_CASES = [
    ("xavier_uniform", "xavier_uniform_", {}),
    ("xavier_uniform_gain", "xavier_uniform_", {"gain": 2.0}),
    ("xavier_normal", "xavier_normal_", {}),
    ("xavier_normal_gain", "xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform", "kaiming_uniform_", {}),
    ("kaiming_uniform_default_layer", "kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_relu_fan_out", "kaiming_uniform_",
     {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal", "kaiming_normal_", {}),
    ("kaiming_normal_relu", "kaiming_normal_", {"nonlinearity": "relu"}),
    ("kaiming_normal_leaky_fan_out", "kaiming_normal_",
     {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("kaiming_normal_tanh", "kaiming_normal_", {"nonlinearity": "tanh"}),
    ("uniform", "uniform_", {"a": -0.3, "b": 0.7}),
    ("normal", "normal_", {"mean": 0.1, "std": 0.02}),
]

# (case id, jax.nn.initializers builder, args)
JAX_CASES = [
    ("glorot_uniform", "glorot_uniform", {}),
    ("glorot_normal", "glorot_normal", {}),
    ("he_uniform", "he_uniform", {}),
    ("he_normal", "he_normal", {}),
    ("lecun_uniform", "lecun_uniform", {}),
    ("lecun_normal", "lecun_normal", {}),
    ("xavier_uniform", "xavier_uniform", {}),
    ("kaiming_normal", "kaiming_normal", {}),
    ("vs_geo_avg_normal", "variance_scaling",
     {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "normal"}),
    ("vs_in0_fan_out_uniform", "variance_scaling",
     {"scale": 2.0, "mode": "fan_out", "distribution": "uniform", "in_axis": 0,
      "out_axis": -1}),
    ("vs_batch_axis", "variance_scaling",
     {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal", "batch_axis": 0}),
    ("vs_multi_axes", "variance_scaling",
     {"scale": 1.0, "mode": "fan_in", "distribution": "uniform", "in_axis": [0, 1],
      "out_axis": -1}),
    ("normal", "normal", {"stddev": 0.2}),
    ("uniform", "uniform", {"scale": 3.0}),
    ("truncated_normal", "truncated_normal", {"stddev": 0.3, "lower": -1.0, "upper": 3.0}),
]


def have(name):
    """Whether a peer is installed (FASTINIT_TEST_RECORDED_PEERS=1 pretends none is)."""
    if os.environ.get("FASTINIT_TEST_RECORDED_PEERS") and name in ("keras", "torch", "jax"):
        return False
    return importlib.util.find_spec(name) is not None


# -- fastinit ----------------------------------------------------------------------------


class _EngineRecorder:
    """Stands in for ``fastinit.random``'s distributions: records what is drawn, draws nothing."""

    def __init__(self):
        self.calls = []

    def uniform_distribution(self, low, high, dtype):
        self.calls.append({"dist": "uniform", "low": low, "high": high})

    def normal_distribution(self, mean, std, dtype):
        self.calls.append({"dist": "normal", "mean": mean, "std": std})

    def truncated_normal_distribution(self, mean, std, a, b, dtype):
        self.calls.append({"dist": "truncated_normal", "mean": mean, "std": std, "a": a,
                           "b": b})


_DISTRIBUTIONS = ("uniform_distribution", "normal_distribution", "truncated_normal_distribution")


@contextlib.contextmanager
def engine_recorder():
    import fastinit.random as fr
    from fastinit import _target

    rec = _EngineRecorder()
    saved = {name: getattr(fr, name) for name in _DISTRIBUTIONS}
    saved_draw = _target.Target.draw
    for name in _DISTRIBUTIONS:
        setattr(fr, name, getattr(rec, name))
    _target.Target.draw = lambda self, dist, seed, stream: self.out
    try:
        yield rec
    finally:
        for name, fn in saved.items():
            setattr(fr, name, fn)
        _target.Target.draw = saved_draw


def _one(calls):
    assert len(calls) == 1, calls
    return calls[0]


def ours_keras(cls_name, kwargs, shape):
    import fastinit.initializers as fi

    try:
        with engine_recorder() as rec:
            getattr(fi, cls_name)(seed=1, **kwargs)(shape)
    except ValueError:
        return "error"
    return _one(rec.calls)


def ours_torch(fn_name, kwargs, shape):
    import fastinit.torch as ft

    try:
        with engine_recorder() as rec:
            # Go through the public function on a real tensor when torch is present.
            if have("torch"):
                import torch
                getattr(ft, fn_name)(torch.empty(shape), seed=1, **kwargs)
            else:
                return _ours_torch_params(fn_name, kwargs, shape)
    except ValueError:
        return "error"
    return _one(rec.calls)


def _ours_torch_params(fn_name, kwargs, shape):
    import fastinit.torch as ft

    if fn_name == "uniform_":
        return {"dist": "uniform", "low": kwargs["a"], "high": kwargs["b"]}
    if fn_name == "normal_":
        return {"dist": "normal", "mean": kwargs["mean"], "std": kwargs["std"]}
    p = ft.parameters(fn_name, shape, **kwargs)
    if "bound" in p:
        return {"dist": "uniform", "low": -p["bound"], "high": p["bound"]}
    return {"dist": "normal", "mean": 0.0, "std": p["std"]}


def ours_jax(builder, kwargs, shape):
    """fastinit.jax's parameters, in JAX's terms (the multiplier of a standard draw)."""
    import fastinit.initializers as fi

    kwargs = dict(kwargs)
    try:
        if builder in ("normal", "uniform", "truncated_normal"):
            init = _jax_simple(builder, kwargs)
        else:
            init = _jax_vs(builder, kwargs)
        with engine_recorder() as rec:
            init(shape)
    except ValueError:
        return "error"
    p = _one(rec.calls)
    if isinstance(init, fi.VarianceScaling):
        return _as_jax_multiplier(p, init.distribution)
    return _as_jax_multiplier(p, builder)


def _jax_simple(builder, kwargs):
    import fastinit.initializers as fi

    if builder == "normal":
        return fi.RandomNormal(0.0, kwargs["stddev"], seed=1)
    if builder == "uniform":
        return fi.RandomUniform(0.0, kwargs["scale"], seed=1)
    return fi.TruncatedNormal(0.0, kwargs["stddev"], seed=1, lower=kwargs["lower"],
                              upper=kwargs["upper"])


_JAX_PRESETS = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "xavier_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "kaiming_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}


def _jax_vs(builder, kwargs):
    import fastinit.jax as fj

    if builder == "variance_scaling":
        init = fj.variance_scaling(**kwargs)
    else:
        init = getattr(fj, builder)(**kwargs)
    return init.initializer


def _as_jax_multiplier(p, kind):
    """JAX draws a standard variate and multiplies: express ours the same way."""
    if p["dist"] == "uniform":
        if kind == "uniform" and p["low"] == 0.0:           # jax uniform(scale): [0, scale)
            return {"multiplier": p["high"], "low": 0.0, "high": 1.0}
        return {"multiplier": p["high"], "low": -1.0, "high": 1.0}
    if p["dist"] == "normal":
        return {"multiplier": p["std"]}
    return {"multiplier": p["std"], "lower": p["a"] / p["std"], "upper": p["b"] / p["std"]}


# -- the peers ---------------------------------------------------------------------------


def keras_live(cls_name, kwargs, shape):
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    import keras
    from keras.src.initializers import random_initializers as kri

    calls = []

    class Rec:
        @staticmethod
        def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
            calls.append({"dist": "normal", "mean": float(mean), "std": float(stddev)})
            return np.zeros(shape)

        @staticmethod
        def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
            # Keras' truncated normal re-draws beyond two standard deviations.
            calls.append({"dist": "truncated_normal", "mean": float(mean), "std": float(stddev),
                          "a": float(mean) - 2 * float(stddev),
                          "b": float(mean) + 2 * float(stddev)})
            return np.zeros(shape)

        @staticmethod
        def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
            calls.append({"dist": "uniform", "low": float(minval), "high": float(maxval)})
            return np.zeros(shape)

        make_default_seed = staticmethod(lambda: 1)
        SeedGenerator = kri.random.SeedGenerator

    saved = kri.random
    kri.random = Rec
    try:
        try:
            getattr(keras.initializers, cls_name)(seed=1, **kwargs)(shape)
        except (ValueError, IndexError):
            return "error"
    finally:
        kri.random = saved
    return _one(calls)


def torch_live(fn_name, kwargs, shape):
    import torch

    calls = []
    orig_u, orig_n = torch.Tensor.uniform_, torch.Tensor.normal_

    def uniform_(self, a=0.0, b=1.0, generator=None):
        calls.append({"dist": "uniform", "low": float(a), "high": float(b)})
        return self

    def normal_(self, mean=0.0, std=1.0, generator=None):
        calls.append({"dist": "normal", "mean": float(mean), "std": float(std)})
        return self

    torch.Tensor.uniform_, torch.Tensor.normal_ = uniform_, normal_
    try:
        try:
            getattr(torch.nn.init, fn_name)(torch.empty(shape), **kwargs)
        except ValueError:
            return "error"
    finally:
        torch.Tensor.uniform_, torch.Tensor.normal_ = orig_u, orig_n
    return _one(calls)


def jax_live(builder, kwargs, shape):
    import jax
    import jax.numpy as jnp
    from jax._src.nn import initializers as jinit

    calls = []

    class Rec:
        @staticmethod
        def uniform(key, shape, dtype=None, minval=0.0, maxval=1.0, **kw):
            calls.append({"low": float(minval), "high": float(maxval)})
            return jnp.ones(shape, dtype)

        @staticmethod
        def normal(key, shape, dtype=None, **kw):
            calls.append({})
            return jnp.ones(shape, dtype)

        @staticmethod
        def truncated_normal(key, lower, upper, shape, dtype=None, **kw):
            calls.append({"lower": float(lower), "upper": float(upper)})
            return jnp.ones(shape, dtype)

    saved = jinit.random
    jinit.random = Rec
    try:
        try:
            init = getattr(jax.nn.initializers, builder)(**kwargs)
            out = init(jax.random.key(0), shape, jnp.float32)
        except (ValueError, IndexError):
            return "error"
    finally:
        jinit.random = saved
    p = dict(_one(calls))
    p["multiplier"] = float(np.asarray(out).reshape(-1)[0])
    return p


def jax_fans_live(shape, kwargs):
    keys = ("in_axis", "out_axis", "batch_axis")
    axes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items() if k in keys}
    try:
        from jax._src.nn import initializers as jinit
        return [float(f) for f in jinit._compute_fans(shape, **axes)]
    except (ValueError, IndexError):
        return "error"


def record():
    """Capture every case from the installed peers (all three must be installed)."""
    out = {"keras": {}, "torch": {}, "jax": {}, "jax_fans": {}}
    for case, cls_name, kwargs in KERAS_CASES:
        out["keras"][case] = {s: keras_live(cls_name, kwargs, kshape)
                              for s, (kshape, _) in SHAPES.items()}
    for case, fn_name, kwargs in TORCH_CASES:
        out["torch"][case] = {s: torch_live(fn_name, kwargs, tshape)
                              for s, (_, tshape) in SHAPES.items()}
    for case, builder, kwargs in JAX_CASES:
        out["jax"][case] = {s: jax_live(builder, kwargs, kshape)
                            for s, (kshape, _) in SHAPES.items()}
        out["jax_fans"][case] = {s: jax_fans_live(kshape, kwargs)
                                 for s, (kshape, _) in SHAPES.items()}
    return out


def recorded():
    return json.loads(DATA.read_text())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA}")
