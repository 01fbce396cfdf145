"""How fastinit's annotations read to a user's type checker: checked by mypy in
tests/tools/test_types.py (never run). ``assert_type`` pins what a call returns; a
``# type: ignore[code]`` marks a call that must be an error (the project's mypy settings
report an ignore that is not needed, so each one fails if the error goes away)."""

from typing import Any, Callable

import numpy as np
import numpy.typing as npt
from typing_extensions import assert_type

import fastinit
import fastinit.initializers as fi
from fastinit import gpu, sharding

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
assert_type(gpu.is_available(), bool)

fi.VarianceScaling(mode="fan_sideways")         # type: ignore[arg-type]
fi.VarianceScaling(distribution="gaussian")     # type: ignore[arg-type]
fi.Orthogonal(method="svd")                     # type: ignore[arg-type]
fi.RandomNormal(stddev="0.1")                   # type: ignore[arg-type]
fi.TruncatedNormal(seed=1.5)                    # type: ignore[arg-type]
init((3, 4), out=[0.0, 1.0])                    # type: ignore[arg-type]
gpu.set_allocator("tensorflow")                 # type: ignore[arg-type]
sharding.name_stream(7)                         # type: ignore[arg-type]
