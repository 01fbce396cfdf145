"""Every problem the adversarial review reported, as a test that failed before its fix.

Numbered as in the report (issue 15). Fork and thread safety (item 5) are in
``test_concurrency.py``, kills during writes in ``test_crashes.py``.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastinit.initializers as fi
import fastinit.random as fr
from fastinit import materialize as m, sharding

from helpers import assert_bits_equal

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastinit", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _spec(path, tensors, **top):
    path.write_text(json.dumps({"tensors": tensors, **top}))
    return path


# -- 1. path traversal ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../victim/esc", "/abs/path/x", "a/../../x", "..", ".",
                                  "sub/dir", "back\\slash", ".hidden", "nul\0byte"])
def test_1_names_never_leave_the_output_directory(tmp_path, name):
    spec = _spec(tmp_path / "spec.json", {name: {"shape": [2], "initializer": "ones"}})
    out = tmp_path / "out"
    before = sorted(p for p in tmp_path.rglob("*"))
    result = _cli("materialize", spec, out, "--seed", 0, "--format", "npy", "--no-progress")
    assert result.returncode == 2, result.stderr
    assert "Received" in result.stderr or "NUL" in result.stderr
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "out") == before
    assert not any(out.rglob("*.npy")) if out.exists() else True


def test_1_absolute_names_are_only_keys_in_safetensors(tmp_path):
    """In a safetensors file a name is a key, not a path: nothing is written elsewhere."""
    m.materialize({"tensors": {"/abs/x": {"shape": [2], "initializer": "ones"},
                               "../y": {"shape": [2], "initializer": "zeros"}}},
                  tmp_path / "out", seed=0)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    loaded = safetensors_numpy.load_file(tmp_path / "out" / "model.safetensors")
    assert sorted(loaded) == ["../y", "/abs/x"]


# -- 2. byte order ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8", "<f4" if sys.byteorder == "big" else ">f4"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_2_non_native_byte_orders_are_refused(dtype, backend):
    for draw in (lambda: fr.truncated_normal(4, a=-2, b=2, seed=0, dtype=dtype, backend=backend),
                 lambda: fr.normal(4, seed=0, dtype=dtype, backend=backend),
                 lambda: fi.GlorotUniform(seed=0)((2, 2), dtype)):
        with pytest.raises(TypeError, match="native byte order.*Received: dtype"):
            draw()
    out = np.zeros(4, dtype=dtype)
    with pytest.raises(TypeError, match="non-native byte order"):
        fr.normal(seed=0, out=out, backend=backend)
    assert not out.any()


def test_2_materialize_refuses_non_native_dtypes(tmp_path):
    spec = _spec(tmp_path / "spec.json", {"w": {"shape": [4], "dtype": ">f2",
                                                "initializer": "random_normal"}})
    result = _cli("materialize", spec, tmp_path / "out", "--seed", 0, "--no-progress")
    assert result.returncode == 2 and "native byte order" in result.stderr
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


# -- 3. safetensors header ----------------------------------------------------------------------


def test_3_metadata_is_not_a_tensor_name(tmp_path):
    with pytest.raises(m.SpecError, match="__metadata__"):
        m.materialize({"tensors": {"__metadata__": {"shape": [1], "initializer": "ones"}}},
                      tmp_path, seed=0)
    assert os.listdir(tmp_path) == []


def test_3_headers_the_format_cannot_load_are_refused(tmp_path):
    huge = "x" * 101_000_000
    with pytest.raises(ValueError, match="header"):
        m.materialize({"tensors": {huge: {"shape": [1], "initializer": "ones"}}}, tmp_path,
                      seed=0)
    assert os.listdir(tmp_path) == []


def test_3_spec_metadata_is_written(tmp_path):
    m.materialize({"tensors": {"w": {"shape": [2], "initializer": "ones"}},
                   "metadata": {"model": "tiny", "run": "7"}}, tmp_path, seed=3)
    from safetensors import safe_open
    with safe_open(tmp_path / "model.safetensors", "np") as f:
        meta = f.metadata()
    assert meta["model"] == "tiny" and meta["run"] == "7" and meta["fastinit_seed"] == "3"
    for bad in ({"format": "x"}, {"k": 1}, ["not", "a", "table"]):
        with pytest.raises(m.SpecError, match="metadata"):
            m.parse_spec({"tensors": {}, "metadata": bad}, seed=0)


# -- 4. npy name collisions ---------------------------------------------------------------------


@pytest.mark.parametrize("names", [("x", "./x"), ("Weight", "weight"), ("caf\u00e9", "cafe\u0301")])
def test_4_names_that_collide_as_files_are_refused(tmp_path, names):
    tensors = {n: {"shape": [2], "initializer": "ones"} for n in names}
    spec = _spec(tmp_path / "spec.json", tensors)
    result = _cli("materialize", spec, tmp_path / "out", "--seed", 0, "--format", "npy",
                  "--no-progress")
    assert result.returncode == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.npy"))


# -- 6. Dask names ------------------------------------------------------------------------------


class Fill(fi.Initializer):
    """A custom initializer without get_config."""

    elementwise = True

    def __init__(self, value):
        self.value = value

    def generate(self, request):
        return request.write(self.value)


def test_6_dask_names_are_unique_for_different_initializers():
    fd = pytest.importorskip("fastinit.dask")
    a = fd.array(Fill(1.0), (4, 4), chunks=2)
    b = fd.array(Fill(2.0), (4, 4), chunks=2)
    assert np.array_equal((a + b).compute(), np.full((4, 4), 3.0, np.float32))
    assert a.name != b.name
    assert a.name == fd.array(Fill(1.0), (4, 4), chunks=2).name       # deterministic
    assert fd.array("he_normal", (4, 4), seed=1).name == fd.array("he_normal", (4, 4), seed=1).name
    assert fd.array("he_normal", (4, 4), seed=1).name != fd.array("he_normal", (4, 4), seed=2).name


# -- 7. regions into strided outputs ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_7_regions_into_strided_outputs(backend):
    index = (slice(None), slice(None, None, 2))
    out = np.empty((700, 200), np.float32).T
    fr.normal((200, 1400), seed=1, index=index, out=out, backend=backend)
    assert_bits_equal(out, fr.normal((200, 1400), seed=1, backend=backend)[index])
    init = fi.HeNormal(seed=2)
    buf = np.empty((12, 10), np.float32)
    got = sharding.generate(init, (12, 8), sharding.ShardSpec(1, 2, 0), out=buf[..., :4],
                            backend=backend)
    assert_bits_equal(got, init((12, 8))[:, :4])


# -- 10. a staging folder of an impossible pid --------------------------------------------------


def test_10_impossible_pids_in_staging_names(tmp_path):
    """Folders named with an impossible pid do not stop a run. (Since issue 20 liveness is
    the directory's lock, never a pid: folders in an earlier release's layout are not
    fastinit's to judge and stay; an empty run folder of this release's goes.)"""
    legacy = [".fastinit-tmp-99999999999999999999-abcd", ".fastinit-old-99999999999999999999-abcd"]
    for name in legacy + [".fastinit-run-0123456789abcdef"]:
        (tmp_path / name).mkdir()
    m.materialize({"tensors": {"w": {"shape": [2], "initializer": "ones"}}}, tmp_path, seed=0)
    assert sorted(os.listdir(tmp_path)) == sorted(legacy + ["model.safetensors"])


# -- 11. overlapping outputs ---------------------------------------------------------------------


def test_11_overlapping_outputs_are_refused():
    base = np.zeros(3, np.float32)
    for out in (np.broadcast_to(base, (4, 3)), np.lib.stride_tricks.as_strided(base, (3, 3), (4, 4)),
                np.lib.stride_tricks.as_strided(base, (4,), (0,))):
        out = np.lib.stride_tricks.as_strided(base, out.shape, out.strides, writeable=True)
        with pytest.raises(ValueError, match="overlapping"):
            fr.normal(seed=0, out=out)
        with pytest.raises(ValueError, match="overlapping"):
            fi.HeNormal(seed=0)(out=out)
    assert not base.any()


def test_11_overlapping_torch_tensors_are_refused():
    torch = pytest.importorskip("torch")
    import fastinit.torch as ft
    t = torch.full((3,), 7.0)
    with pytest.raises(ValueError, match="overlap"):
        ft.normal_(t.expand(4, 3), seed=0)
    assert (t == 7).all()


# -- 12. fastinit.jax shapes and keys ------------------------------------------------------------


def test_12_jax_shapes_and_keys():
    jax = pytest.importorskip("jax")
    import fastinit.jax as fj
    key = jax.random.key(0)
    for shape in ((2.5, 3), ("3",), (-1,), (True, 2)):
        with pytest.raises(TypeError if shape != (-1,) else ValueError, match="Received"):
            fj.normal()(key, shape)
    for keys in (jax.random.split(key, 2), jax.random.split(jax.random.PRNGKey(0), 2)):
        with pytest.raises(ValueError, match="one key"):
            fj.normal()(keys, (2, 3))


# -- 13. documented: shapes share their flat prefix ---------------------------------------------


def test_13_shapes_share_their_flat_prefix_as_documented():
    assert_bits_equal(fr.normal((5,), seed=0), fr.normal((4, 5), seed=0)[0])
    page = (__import__("pathlib").Path(__file__).resolve().parents[2] / "docs"
            / "reproducibility.md").read_text()
    assert "flat prefix" in page and "changes every value" not in page


# -- 14. deep nesting ------------------------------------------------------------------------


def test_14_deeply_nested_specs_and_configs(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    result = _cli("materialize", deep, tmp_path / "out", "--seed", 0)
    assert result.returncode == 2 and "nested too deeply" in result.stderr
    toml = tmp_path / "deep.toml"
    toml.write_text("x = " + "[" * 200_000 + "]" * 200_000 + "\n")
    result = _cli("materialize", toml, tmp_path / "out", "--seed", 0)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    config = {}
    inner = config
    for _ in range(100_000):
        inner["config"] = {}
        inner = inner["config"]
    with pytest.raises(ValueError, match="nested too deeply|Received"):
        fi.deserialize(config)
    with pytest.raises(ValueError, match="Received"):
        fi.deserialize({"class_name": "Constant", "config": {"value": config}})


# -- 15. sizes against memory and disk ---------------------------------------------------------


def test_15_too_large_for_memory_or_disk_is_refused_up_front(tmp_path):
    for tensors in ({"q": {"shape": [400_000, 400_000], "initializer": "orthogonal"}},
                    {"w": {"shape": [1 << 40], "initializer": "random_normal"}}):
        with pytest.raises(ValueError, match="Nothing was written"):
            m.materialize({"tensors": tensors}, tmp_path / "out", seed=0)
        assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


# -- 16. options and values checked before writing -------------------------------------------


def test_16_bad_options_and_values_fail_before_writing(tmp_path):
    spec = _spec(tmp_path / "spec.json", {"a": {"shape": [1000], "initializer": "ones"},
                                          "b": {"shape": [4], "dtype": "uint8",
                                                "initializer": {"class_name": "Constant",
                                                                "config": {"value": 300}}}})
    for extra in (["--chunk-mb", "nan"], ["--chunk-mb", "-1"], []):
        result = _cli("materialize", spec, tmp_path / "out", "--seed", 0, "--no-progress", *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    for args in (["--size", "9**99999999"], ["--size", "1e13"],
                 ["--quick", "--json", tmp_path / "missing" / "x.json"]):
        result = _cli("bench", *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and "error" in result.stderr


# -- 17. uniform's range, and truncated normal's bounds ----------------------------------------


def test_17_uniform_bounds_beyond_the_dtype_are_refused():
    with pytest.raises(ValueError, match="finite range"):
        fr.uniform(10, -1e5, 1e5, dtype="float16", seed=0)
    x = fr.uniform(100_000, -65504.0, 65504.0, dtype="float16", seed=0)
    assert np.mean(np.abs(x) == 65504) < 1e-3
    with pytest.raises(ValueError, match=r"high - low = 6e\+38 overflows"):
        fr.uniform(10, -3e38, 3e38, seed=0)
    assert np.isfinite(fr.uniform(10, -3e38, 3e38, seed=0, dtype="float64")).all()


def test_17_truncated_normal_bounds_that_coincide_fail_at_construction():
    with pytest.raises(ValueError, match="stddev is too small"):
        fi.TruncatedNormal(mean=1e30, stddev=1.0)


# -- 18. bools as integers, constants, unused rules, zero chunks -------------------------------


def test_18_bools_are_not_integers():
    for kw in (dict(index=(True,)), dict(offset=True), dict(index=(slice(None), False))):
        with pytest.raises(TypeError, match="Received"):
            fr.normal((3, 3), seed=0, **kw)


def test_18_constants_must_fit_the_dtype():
    with pytest.raises(ValueError, match="not representable in uint8"):
        fi.Constant(-1.0)((3,), "uint8")


def test_18_zero_chunks_are_a_clear_error():
    fd = pytest.importorskip("fastinit.dask")
    with pytest.raises(ValueError, match="chunks"):
        fd.array("ones", (4, 4), chunks=(0, 3))


def test_18_rules_that_match_nothing_are_an_error(tmp_path):
    torch = pytest.importorskip("torch")
    import fastinit.torch as ft
    from fastinit.materialize import materialize_module

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    before = [p.detach().clone() for p in model.parameters()]
    for rules in ({"*.q_projj.weight": fi.Zeros()},
                  {"0.weight": fi.Zeros(), torch.nn.Conv2d: fi.Ones()},
                  {torch.nn.Linear: {"kernel": fi.Zeros()}}):
        with pytest.raises(ValueError, match="match no parameter"):
            ft.init_module_(model, seed=0, rules=rules)
        with pytest.raises(ValueError, match="match no parameter"):
            materialize_module(model, tmp_path / "out", seed=0, rules=rules)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not (tmp_path / "out").exists()
    ft.init_module_(model, seed=0, rules={"0.weight": fi.Zeros(), torch.nn.LayerNorm: fi.Ones()})
    assert not model[0].weight.any()
