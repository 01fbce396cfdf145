"""fastinit.jax sharded on 4 CPU devices: each device computes its own shard only.

JAX fixes its device count when it starts, so the checks run in a fresh interpreter
with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``, which reports them as
JSON. They read the compiled program: no collective, no host callback, temporaries
under a quarter of a shard (``memory_analysis``), and the values of the unsharded
array, bit for bit.
"""

import json

import pytest

pytest.importorskip("jax")

from helpers import run_python  # noqa: E402

SCRIPT = r"""
import json, sys
import numpy as np
import jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import fastinit.jax as fj

assert jax.device_count() == 4, jax.devices()
COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all",
               "reduce-scatter", "callback")
INITS = {"normal": fj.normal(0.02), "truncated_normal": fj.truncated_normal(1.0),
         "truncated_exponential": fj.truncated_normal(1.0, lower=2.0, upper=3.0),
         "zeros": fj.zeros}
rows = jax.make_mesh((4,), ("x",))
grid = jax.make_mesh((2, 2), ("a", "b"))
# Shards of 42 elements (not whole 4-element blocks) but for the columns.
LAYOUTS = {
    "rows": (NamedSharding(rows, P("x", None)), (12, 14)),
    "columns": (NamedSharding(rows, P(None, "x")), (8, 12)),
    "grid": (NamedSharding(grid, P("a", "b")), (12, 14)),
    "both_axes_one_dim": (NamedSharding(grid, P(("a", "b"), None)), (12, 14)),
}
key = jax.random.key(42)
report = {}
for name, init in INITS.items():
    wants = {shape: np.asarray(init(key, shape)) for shape in ((12, 14), (8, 12))}
    for layout, (sharding, shape) in LAYOUTS.items():
        f = jax.jit(lambda k: init(k, shape), out_shardings=sharding)
        text = f.lower(key).compile().as_text()
        got = f(key)
        result = {"collectives": [c for c in COLLECTIVES if c in text],
                  "equal": bool(np.array_equal(np.asarray(got), wants[shape])),
                  "sharding": got.sharding == sharding}
        if layout == "rows":   # the initializer's own out_sharding= (eager)
            own = init(key, shape, out_sharding=sharding)
            result["own"] = [bool(np.array_equal(np.asarray(own), wants[shape])),
                             own.sharding == sharding]
        report[f"{name}/{layout}"] = result
# Temporaries of a shard against the shard's size: 1M elements (the truncated normal's
# lists) and 64K (its rounds over the whole shard).
for name in ("normal", "truncated_normal", "truncated_exponential"):
    for size, shape in (("large", (4096, 1024)), ("small", (1024, 256))):
        sharding = NamedSharding(rows, P("x", None))
        compiled = jax.jit(lambda k: INITS[name](k, shape), out_shardings=sharding).lower(
            key).compile()
        shard_bytes = 4 * shape[0] * shape[1] // 4
        report[f"memory/{name}/{size}"] = (compiled.memory_analysis().temp_size_in_bytes
                                           / shard_bytes)
# A sharding constraint under jax.set_mesh (what Flax's partitioning annotations make):
# the partitioner hands the truncated normal's rule a sharding without a mesh.
auto = jax.make_mesh((4,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
with jax.set_mesh(auto):
    f = jax.jit(lambda k: jax.lax.with_sharding_constraint(
        INITS["truncated_normal"](k, (12, 14)), P("x", None)))
    text = f.lower(key).compile().as_text()
    got = np.asarray(f(key))
report["set_mesh"] = {"collectives": [c for c in COLLECTIVES if c in text],
                      "equal": bool(np.array_equal(got, np.asarray(
                          INITS["truncated_normal"](key, (12, 14)))))}
# Keys batched by vmap, sharded along the batch.
keys = jax.random.split(key, 4)
sharding = NamedSharding(rows, P("x", None, None))
f = jax.jit(jax.vmap(lambda k: INITS["truncated_normal"](k, (8, 5))), out_shardings=sharding)
text = f.lower(keys).compile().as_text()
got = f(keys)
got = np.asarray(got)
report["vmap"] = {"collectives": [c for c in COLLECTIVES if c in text],
                  "equal": all(np.array_equal(got[i], np.asarray(
                      INITS["truncated_normal"](keys[i], (8, 5)))) for i in range(4))}
# The list path (large shards) on small ones: thresholds forced down, tiny lists and
# chunks; sharded by rows, by columns, bfloat16 (a float32 copy a sixteenth of a shard
# at a time) and a vmapped batch sharded along it.
from fastinit.backends.xla import _truncated
_truncated.FULL_PASS_WORK = 0
_truncated._sizes = lambda dist, n, itemsize, budget=None: (32, 64, 100)
_truncated._mapped.cache_clear()
_truncated._partitioned.cache_clear()
listed = {}
for shape, spec, dtype in (((64, 100), P("x", None), jnp.float32),
                           ((40, 96), P(None, "x"), jnp.float32),
                           ((64, 100), P("x", None), jnp.bfloat16)):
    for bounds in ((-2.0, 2.0), (2.0, 3.0)):
        init = fj.truncated_normal(1.0, lower=bounds[0], upper=bounds[1])
        want = np.asarray(init(key, shape, dtype))
        got = jax.jit(lambda k: init(k, shape, dtype),
                      out_shardings=NamedSharding(rows, spec))(key)
        listed[f"{shape}/{spec}/{np.dtype(dtype)}/{bounds}"] = bool(
            np.array_equal(np.asarray(got).view(np.uint16 if dtype == jnp.bfloat16 else
                                                np.uint32),
                           want.view(np.uint16 if dtype == jnp.bfloat16 else np.uint32)))
init = fj.truncated_normal(1.0)
for shape, spec in (((40, 50), P("x", None, None)), ((40, 52), P(None, "x", None))):
    got = np.asarray(jax.jit(jax.vmap(lambda k: init(k, shape)),
                             out_shardings=NamedSharding(rows, spec))(keys))
    listed[f"vmap/{shape}/{spec}"] = all(
        np.array_equal(got[i], np.asarray(init(keys[i], shape))) for i in range(4))
report["listed"] = listed
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report():
    out = run_python(SCRIPT, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                                  "JAX_PLATFORMS": "cpu"})
    return json.loads(out.strip().splitlines()[-1])


CASES = [f"{name}/{layout}" for name in ("normal", "truncated_normal",
                                          "truncated_exponential", "zeros")
         for layout in ("rows", "columns", "grid", "both_axes_one_dim")]


@pytest.mark.parametrize("case", CASES)
def test_each_device_computes_its_shard_alone(report, case):
    result = report[case]
    assert result["collectives"] == []
    assert result["equal"] and result["sharding"]
    assert result.get("own", [True, True]) == [True, True]


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("name", ["normal", "truncated_normal", "truncated_exponential"])
def test_temporaries_stay_under_a_quarter_of_the_shard(report, name, size):
    assert report[f"memory/{name}/{size}"] < 0.25


def test_sharding_constraint_under_set_mesh(report):
    assert report["set_mesh"] == {"collectives": [], "equal": True}


def test_keys_mapped_and_sharded(report):
    assert report["vmap"] == {"collectives": [], "equal": True}


def test_the_list_path_sharded_equals_the_unsharded_array(report):
    assert report["listed"] and all(report["listed"].values()), report["listed"]
