"""How fastinit's annotations read to a user's type checker: checked by mypy in
tests/tools/test_types.py (never run). ``assert_type`` pins what a call returns; a
``# type: ignore[code]`` marks a call that must be an error (the project's mypy settings
report an ignore that is not needed, so each one fails if the error goes away)."""

from typing import Any, Callable

import dask.array
import jax
import numpy as np
import numpy.typing as npt
import torch
from typing_extensions import assert_type

import fastinit
import fastinit.dask
import fastinit.initializers as fi
import fastinit.jax as fj
import fastinit.random as fr
import fastinit.torch as ft
from fastinit import gpu, sharding
from fastinit.materialize import materialize, materialize_module, materialize_npy
from fastinit.materialize._plan import Plan

init = fi.GlorotUniform(seed=0)
assert_type(init((3, 4)), npt.NDArray[Any])
assert_type(init((3, 4), dtype=np.float64, stream=2, index=(slice(0, 1),)), npt.NDArray[Any])
assert_type(init.clone(), fi.GlorotUniform)
assert_type(fi.Orthogonal.from_config({"gain": 2.0}), fi.Orthogonal)
assert_type(fi.get("he_normal"), Callable[..., Any])
assert_type(fi.get(None), None)
assert_type(fi.VarianceScaling(2.0, "fan_out", "uniform").parameters((3, 4)), dict[str, Any])
assert_type(fi.resolve_seed(np.uint64(3)), int)
assert_type(sharding.name_stream("w"), int)
assert_type(sharding.shard_bounds(10, 4, 1), tuple[int, int])
assert_type(fastinit.warmup(["normal"], ["float32"]), dict[str, float])
assert_type(fastinit.warmup("all", np.float32, processes=2, verbose=True), dict[str, float])
assert_type(fastinit.set_num_threads(2), None)
assert_type(fastinit.set_num_threads(None), None)
assert_type(fastinit.get_num_threads(), int)
assert_type(gpu.is_available(), bool)

# fastinit.random: a new NumPy array, or out= itself, typed as given.
f32: npt.NDArray[np.float32] = np.empty((3, 4), dtype=np.float32)
assert_type(fr.uniform((3, 4), seed=0), npt.NDArray[Any])
assert_type(fr.normal(1024, 0.0, 0.02, dtype="bfloat16", seed=np.uint64(1), stream=7),
            npt.NDArray[Any])
assert_type(fr.truncated_normal((4, 4), std=0.02, a=-0.04, b=0.04, seed=0,
                                index=(slice(None), slice(2, 4)), offset=8), npt.NDArray[Any])
assert_type(fr.uniform(low=-0.1, high=0.1, seed=3, out=f32), npt.NDArray[np.float32])
assert_type(fr.normal(seed=0, out=f32, backend="numba"), npt.NDArray[np.float32])
# A torch tensor is typed as a CUDA buffer (at run time out= takes one on a GPU):
assert_type(fr.truncated_normal(seed=0, out=torch.empty(3, 4)), torch.Tensor)
assert_type(fr.philox4x32_10([0, 0, 0, 0], [0, 0]), npt.NDArray[np.uint32])

fi.VarianceScaling(mode="fan_sideways")         # type: ignore[arg-type]
fi.VarianceScaling(distribution="gaussian")     # type: ignore[arg-type]
fi.Orthogonal(method="svd")                     # type: ignore[arg-type]
fi.RandomNormal(stddev="0.1")                   # type: ignore[arg-type]
fi.TruncatedNormal(seed=1.5)                    # type: ignore[arg-type]
init((3, 4), out=[0.0, 1.0])                    # type: ignore[arg-type]
gpu.set_allocator("tensorflow")                 # type: ignore[arg-type]
sharding.name_stream(7)                         # type: ignore[arg-type]
fastinit.set_num_threads("2")                   # type: ignore[arg-type]
fastinit.warmup(processes="2")                  # type: ignore[arg-type]
fr.uniform((3, 4))                              # type: ignore[call-overload]
fr.normal((3, 4), seed=None)                    # type: ignore[call-overload]
fr.normal((3, 4), std="0.1", seed=0)            # type: ignore[call-overload]
fr.uniform((3, 4), seed=0, out=[0.0, 1.0])      # type: ignore[call-overload]
fr.truncated_normal((3, 4), seed=0, backend=3)  # type: ignore[call-overload]

# fastinit.torch: a function returns the tensor it fills (a Parameter as a Parameter).
w = torch.empty(3, 4)
weight = torch.nn.Parameter(torch.empty(3, 4))
assert_type(ft.normal_(w, std=0.02, seed=0), torch.Tensor)
assert_type(ft.kaiming_uniform_(weight, a=5 ** 0.5, seed=0), torch.nn.Parameter)
assert_type(ft.trunc_normal_(w, std=0.02, a=-0.04, b=0.04, stream=np.uint64(3)), torch.Tensor)
assert_type(ft.orthogonal_(weight, gain=2.0, seed=1), torch.nn.Parameter)
assert_type(ft.fill_(w, fi.GlorotUniform(seed=0)), torch.Tensor)
assert_type(ft.fill_(w, "he_normal", layout="torch"), torch.Tensor)
assert_type(ft.calculate_gain("leaky_relu", 0.2), float)
assert_type(ft.parameters("xavier_uniform_", (3, 4), gain=2.0), dict[str, float])
linear = torch.nn.Linear(4, 3)
assert_type(ft.init_module_(linear, seed=0, rules={"bias": "zeros_"}), torch.nn.Linear)
with ft.fast_init(seed=0, module=linear) as opened:   # a context manager
    assert_type(opened, None)

# Checkpoints: the paths written (a dry run's plan), and Dask arrays.
assert_type(materialize({"tensors": {}}, "out", seed=0), list[str])
assert_type(materialize("model.json", "out", dry_run=True), Plan)
assert_type(materialize_module(linear, "out", max_shard_size="5GB"), list[str])
assert_type(materialize_npy("zeros", (2, 3), "w.npy"), str)
assert_type(fastinit.dask.array("glorot_uniform", (4, 4), chunks=2, seed=0), dask.array.Array)

ft.normal_(w, generator=0)                      # type: ignore[arg-type]
ft.kaiming_normal_(w, mode="fan_sideways")      # type: ignore[arg-type]
ft.kaiming_normal_(w, nonlinearity="gelu")      # type: ignore[arg-type]
ft.fill_(w, fi.Zeros(), layout="jax")           # type: ignore[arg-type]
ft.normal_([0.0, 1.0])                          # type: ignore[type-var]
ft.fast_init(backend="cupy")                    # type: ignore[arg-type]
ft.init_module_(linear, seed=0, missing="skip")  # type: ignore[arg-type]
materialize_module(linear, "out", mode="lazy")  # type: ignore[call-overload]

# fastinit.jax: a builder returns jax.nn.initializers' protocol; a call returns a jax.Array.
key = jax.random.key(0)
assert_type(fj.glorot_uniform()(key, (3, 4)), jax.Array)
assert_type(fj.normal(0.02, dtype="bfloat16")(jax.random.PRNGKey(1), (3, 4)), jax.Array)
assert_type(fj.truncated_normal(lower=-1.0)(7, 5, jax.numpy.float16), jax.Array)
assert_type(fj.orthogonal(column_axis=0)(key, [4, 4], out_sharding=None), jax.Array)
assert_type(fj.constant(np.ones(3))(key, (2, 3)), jax.Array)
assert_type(fj.zeros(None, (2, 3)), jax.Array)
assert_type(fj.he_uniform(in_axis=0, out_axis=(1, 2)).initializer, fi.VarianceScaling)
assert_type(fj.delta_orthogonal().initializer, fi.DeltaOrthogonal)
assert_type(fj.wrap(fi.HeNormal(), backend="host").initializer, fi.HeNormal)
assert_type(fj.wrap("he_normal").initializer, Callable[..., Any])
assert_type(fj.key_to_seed(key), int)
kernel_init: Callable[..., jax.Array] = fj.lecun_normal()   # where flax takes an init

fj.variance_scaling(1.0, "fan_sideways", "uniform")   # type: ignore[arg-type]
fj.wrap(fi.Zeros(), backend="numba")                # type: ignore[call-overload]
fj.normal()(key, (3, 4), out_sharding=jax.sharding.PartitionSpec())  # type: ignore[arg-type]
fj.uniform()(1.5, (3, 4))                           # type: ignore[arg-type]
