"""Out-of-core checkpoint materialisation (fastinit.materialize)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit import materialize as m
from fastinit.sharding import name_stream

from helpers import assert_bits_equal, start_materialize_command, wait_mid_write

safetensors_numpy = pytest.importorskip("safetensors.numpy")

SPEC = {"tensors": {
    "embed.weight": {"shape": [300, 70], "dtype": "bfloat16",
                     "initializer": {"class_name": "RandomNormal", "config": {"stddev": 0.02}}},
    "layers.0.w": {"shape": [70, 90], "initializer": "glorot_uniform"},
    "layers.0.q": {"shape": [40, 30], "dtype": "float64", "initializer": "orthogonal"},
    "layers.0.norm": {"shape": [70], "initializer": "ones"},
    "layers.0.conv": {"shape": [3, 3, 8, 16], "dtype": "float16", "initializer": "he_normal"},
    "steps": {"shape": [], "dtype": "int64", "initializer": "zeros"},
    "empty": {"shape": [0, 4], "initializer": "lecun_uniform"},
}}


def expected(spec, seed):
    tensors, _ = m.parse_spec(spec, seed)
    return {t.name: t.initializer(t.shape, t.dtype, stream=name_stream(t.name)) for t in tensors}


def load_dir(out_dir):
    files = [f for f in os.listdir(out_dir) if f.endswith(".safetensors")]
    out = {}
    for f in files:
        out.update(safetensors_numpy.load_file(os.path.join(out_dir, f)))
    return out


def assert_same(loaded, want):
    assert set(loaded) == set(want)
    for name, value in want.items():
        got = loaded[name]
        if got.dtype != value.dtype:  # bfloat16: compare the bits
            got = got.view(np.uint16)
            value = value.view(np.uint16)
        assert_bits_equal(got, value)


def test_round_trip_single_file(tmp_path):
    paths = m.materialize(SPEC, tmp_path, seed=11, chunk_bytes=4096)
    assert [os.path.basename(p) for p in paths] == ["model.safetensors"]
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]
    assert_same(load_dir(tmp_path), expected(SPEC, 11))


def test_round_trip_sharded_with_index(tmp_path):
    paths = m.materialize(SPEC, tmp_path, seed=11, max_shard_size="30KB", chunk_bytes=8192)
    names = [os.path.basename(p) for p in paths]
    assert names[-1] == m.INDEX_NAME and len(names) > 3
    index = json.loads((tmp_path / m.INDEX_NAME).read_text())
    want = expected(SPEC, 11)
    assert set(index["weight_map"]) == set(want)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in want.values())
    for name, file in index["weight_map"].items():
        assert name in safetensors_numpy.load_file(tmp_path / file)
    assert_same(load_dir(tmp_path), want)
    with open(tmp_path / names[0], "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    assert header["__metadata__"]["fastinit_seed"] == "11"


def test_toml_spec_and_torch_loader(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent("""
        seed = 5
        [tensors."a.weight"]
        shape = [64, 32]
        dtype = "float32"
        initializer = { class_name = "TruncatedNormal", config = { stddev = 0.02 } }
        [tensors."a.bias"]
        shape = [32]
        initializer = "zeros"
    """))
    m.materialize(spec, tmp_path / "out")
    import safetensors.torch
    loaded = safetensors.torch.load_file(tmp_path / "out" / "model.safetensors")
    want = fi.TruncatedNormal(stddev=0.02, seed=5)((64, 32), stream=name_stream("a.weight"))
    assert np.array_equal(loaded["a.weight"].numpy(), want)


def test_names_fix_the_streams(tmp_path):
    base = {"tensors": {"a": {"shape": [50], "initializer": "he_uniform"},
                        "b": {"shape": [4, 5], "initializer": "random_normal"}}}
    more = {"tensors": {"z": {"shape": [7], "initializer": "random_uniform"},
                        "b": {"shape": [4, 5], "initializer": "random_normal"},
                        "a": {"shape": [50], "initializer": "he_uniform"}}}
    m.materialize(base, tmp_path / "1", seed=1)
    m.materialize(more, tmp_path / "2", seed=1)
    one, two = load_dir(tmp_path / "1"), load_dir(tmp_path / "2")
    for name in ("a", "b"):
        assert_bits_equal(one[name], two[name])
    assert not np.array_equal(one["a"][:7], two["z"])


def test_npy_output(tmp_path):
    p = m.materialize_npy("glorot_normal", (33, 17), tmp_path / "w.npy", seed=2, name="w",
                          chunk_bytes=4096)
    assert_bits_equal(np.load(p), fi.GlorotNormal(seed=2)((33, 17), stream=name_stream("w")))
    assert os.listdir(tmp_path) == ["w.npy"]
    with pytest.raises(ValueError, match="bfloat16"):
        m.materialize_npy("zeros", (3,), tmp_path / "b.npy", dtype="bfloat16")


@pytest.mark.parametrize("stream, error", [(1.5, TypeError), (-1, ValueError),
                                           (2**64, ValueError), ("7", TypeError)])
def test_npy_bad_stream_is_refused_before_the_directory_is_made(tmp_path, stream, error):
    with pytest.raises(error, match=r"stream.*Received: stream="):
        m.materialize_npy("glorot_uniform", (3, 4), tmp_path / "new" / "w.npy", stream=stream)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("flag, value", [("progress", "no"), ("progress", 1),
                                         ("check_space", "yes"), ("check_space", None),
                                         ("dry_run", "False")])
def test_a_yes_no_option_that_is_not_a_bool_writes_nothing(tmp_path, flag, value):
    """A string such as "no" is truthy: refused by name, not taken as yes."""
    for write in (lambda **kw: m.materialize(SPEC, tmp_path / "new", seed=1, **kw),
                  lambda **kw: m.materialize_npy("zeros", (3,), tmp_path / "new" / "w.npy",
                                                 **kw) if flag != "dry_run" else
                  m.materialize_npy_files([], tmp_path / "new", **kw)):
        with pytest.raises(TypeError, match=f"Received: {flag}="):
            write(**{flag: value})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("tensors, match", [
    ({"a": {"shape": [3], "initializer": "no_such_init"}}, r"tensor 'a'.*Unknown initializer"),
    ({"a": {"shape": [3, -1], "initializer": "zeros"}}, r"tensor 'a'.*negative"),
    ({"a": {"shape": "3x4", "initializer": "zeros"}}, r"tensor 'a'.*list of integers"),
    ({"a": {"shape": [2.5], "initializer": "zeros"}}, r"tensor 'a'.*list of integers"),
    ({"a": {"initializer": "zeros"}}, r"tensor 'a'.*'shape' and 'initializer'"),
    ({"a": {"shape": [3], "initializer": "he_normal", "dtype": "int32"}}, r"tensor 'a'.*dtype"),
    ({"a": {"shape": [3], "initializer": "zeros", "dtype": "complex64"}}, r"tensor 'a'"),
    ({"a": {"shape": [3], "initializer": {"class_name": "RandomNormal",
                                          "config": {"stddev": -1}}}}, r"tensor 'a'.*stddev"),
    ({"a": {"shape": [3], "initializer": "zeros", "shpe": 1}}, r"tensor 'a'.*unknown keys"),
    ([{"name": "a", "shape": [1], "initializer": "zeros"},
      {"name": "a", "shape": [2], "initializer": "zeros"}], r"Duplicate.*'a'"),
])
def test_bad_specs_write_nothing(tmp_path, tensors, match):
    out = tmp_path / "out"
    with pytest.raises(m.SpecError, match=match):
        m.materialize({"tensors": tensors}, out, seed=0)
    assert not out.exists()


def test_duplicate_names_in_json_file(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text('{"tensors": {"a": {"shape": [1], "initializer": "zeros"},'
                    ' "a": {"shape": [2], "initializer": "ones"}}}')
    with pytest.raises(m.SpecError, match="Duplicate name 'a'"):
        m.materialize(spec, tmp_path / "out", seed=0)
    spec.write_text('{"tensors": ')
    with pytest.raises(m.SpecError, match="Invalid JSON"):
        m.parse_spec(spec, 0)
    with pytest.raises(m.SpecError, match="seed"):
        m.parse_spec({"tensors": {}})


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="Nothing was written"):
        m.materialize(SPEC, blocker / "out", seed=0)
    with pytest.raises(NotADirectoryError):
        m.materialize(SPEC, blocker, seed=0)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="not writable"):
                m.materialize(SPEC, ro, seed=0)
            assert os.listdir(ro) == []
        finally:
            ro.chmod(0o700)


def test_error_during_write_leaves_nothing(tmp_path):
    class Boom(fi.Initializer):
        def generate(self, request):
            raise RuntimeError("boom")
    spec = {"tensors": {"ok": {"shape": [1000], "initializer": "ones"},
                        "bad": {"shape": [10], "initializer": "boom"}}}
    fi.register(Boom, name="test_materialize>Boom")
    spec["tensors"]["bad"]["initializer"] = "test_materialize>Boom"
    (tmp_path / "model.safetensors").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        m.materialize(spec, tmp_path, seed=0)
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes() == b"old"


def test_chunks_cover_in_order():
    from fastinit import _region
    for shape, n in [((3, 4), 8), ((2, 5), 3), ((7,), 2), ((2, 3, 4), 5), ((4, 1, 6), 100)]:
        flat = np.arange(np.prod(shape)).reshape(shape)
        pieces = [flat[i].reshape(-1) for i, s in _region.boxes(shape, n)]
        assert all(p.size <= max(n, shape[-1]) for p in pieces)
        assert np.array_equal(np.concatenate(pieces), flat.reshape(-1))


def _spawn(spec_path, out_dir, *extra):
    code = ("import sys; from fastinit import materialize as m; "
            "m.materialize(sys.argv[1], sys.argv[2], seed=3, chunk_bytes=1 << 20, progress=False"
            + "".join(extra) + ")")
    return subprocess.Popen([sys.executable, "-c", code, str(spec_path), str(out_dir)])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_mid_write_leaves_no_partial_file(tmp_path, sig):
    spec = {"tensors": {f"t{i}": {"shape": [2048, 4096], "initializer": "random_normal"}
                        for i in range(6)}, "max_shard_size": "64MiB"}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    proc = _spawn(spec_path, out)
    assert wait_mid_write(proc, out), "did not catch the run mid-write"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    finals = [f for f in os.listdir(out) if not f.startswith(".")]  # run folder, lock file
    assert finals == []
    # (A plain SIGTERM kills the library call like SIGKILL; the CLI turns it into a clean
    # exit, see test_cli_sigterm_cleans_up.) The next run removes the stale staging directory.
    m.materialize(spec_path, out, seed=3, progress=False)
    assert sorted(os.listdir(out)) == sorted(
        [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)] + [m.INDEX_NAME])
    loaded = load_dir(out)
    assert_bits_equal(loaded["t5"][:2], fi.RandomNormal(seed=3)((2048, 4096), index=(slice(0, 2),),
                                                            stream=name_stream("t5")))


def test_cli_sigterm_cleans_up(tmp_path):
    proc, out = start_materialize_command(tmp_path, stderr=subprocess.PIPE)
    assert wait_mid_write(proc, out), "did not catch the run mid-write"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert os.listdir(out) == []


def test_cli(tmp_path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(SPEC))
    r = subprocess.run([sys.executable, "-m", "fastinit", "materialize", str(spec_path),
                        str(tmp_path / "out"), "--seed", "11", "--max-shard-size", "30KB"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_same(load_dir(tmp_path / "out"), expected(SPEC, 11))
    r = subprocess.run([sys.executable, "-m", "fastinit", "materialize", str(spec_path),
                        str(tmp_path / "npy"), "--seed", "11", "--format", "npy"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "bfloat16" in r.stderr  # .npy has no bfloat16
    bad = tmp_path / "bad.json"
    bad.write_text('{"tensors": {"a": {"shape": [3], "initializer": "nope"}}}')
    r = subprocess.run([sys.executable, "-m", "fastinit", "materialize", str(bad),
                        str(tmp_path / "o2"), "--seed", "1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "tensor 'a'" in r.stderr and "nope" in r.stderr
    assert not (tmp_path / "o2").exists()


def test_peak_rss_with_a_2gib_tensor(tmp_path):
    spec = {"tensors": {"big": {"shape": [1 << 29], "initializer": "random_normal"},
                        "small": {"shape": [1000], "initializer": "ones"}}}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    # Warm up first (a Numba compile, if the cache is stale, is not what we measure), then
    # reset the peak-RSS counter (Linux: clear_refs 5) and read VmHWM after the run.
    code = textwrap.dedent("""
        import resource, sys, tempfile
        from fastinit import materialize as m
        m.materialize({"tensors": {"w": {"shape": [10], "initializer": "random_normal"}}},
                      tempfile.mkdtemp(), seed=0, progress=False)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        m.materialize(sys.argv[1], sys.argv[2], seed=0, progress=False)
        try:
            hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
            print(int(hwm.split()[1]))
        except (OSError, IndexError):
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    r = subprocess.run([sys.executable, "-c", code, str(spec_path), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peak_mib = int(r.stdout.split()[-1]) / 1024
    size = os.path.getsize(tmp_path / "out" / "model.safetensors")
    assert size > 2 << 30
    assert peak_mib < 512, peak_mib
    with open(tmp_path / "out" / "model.safetensors", "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(8 + n + 4 * ((1 << 29) - 5))
        tail = np.frombuffer(f.read(20), dtype=np.float32)
    want = fi.RandomNormal(seed=0)((1 << 29,), index=(slice((1 << 29) - 5, None),),
                                   stream=name_stream("big"))
    assert_bits_equal(tail, want)
