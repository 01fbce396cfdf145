"""Killed at any point, a checkpoint directory holds the old set of files or the new one.

The runs are real processes, killed with SIGKILL while writing (``.npy``) or
stopped dead (``os._exit``) right after the k-th rename of the commit, for
every k, while re-running with another seed over an existing multi-file
checkpoint. A reader then finds no index, or an index whose files are all of
one run; the next run in the directory restores the old set or completes the
new one.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastinit import materialize as m
from fastinit.materialize import _staging

from helpers import start_materialize_command, wait_mid_write

safetensors_numpy = pytest.importorskip("safetensors.numpy")

TENSORS = {f"t{i}": {"shape": [64, 32], "initializer": "random_normal"} for i in range(3)}
SPEC = {"tensors": TENSORS, "max_shard_size": 64 * 32 * 4}   # one tensor per file


def _seed_of(out, files):
    """The seed every named file was written with (their metadata), as a set."""
    from safetensors import safe_open
    seeds = set()
    for f in files:
        with safe_open(os.path.join(out, f), "np") as handle:
            seeds.add(handle.metadata()["fastinit_seed"])
    return seeds


def _visible_checkpoint(out):
    """``None`` if no checkpoint can be loaded from ``out``, else the set of seeds in it."""
    index = os.path.join(out, m.INDEX_NAME)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        missing = [f for f in files if not os.path.exists(os.path.join(out, f))]
        return None if missing else _seed_of(out, files)
    single = os.path.join(out, "model.safetensors")
    return _seed_of(out, ["model.safetensors"]) if os.path.exists(single) else None


def _run_dying_after(out, seed, renames):
    """Materialise SPEC with ``seed`` in a process that dies after ``renames`` os.replace calls."""
    code = textwrap.dedent(f"""
        import os, sys
        from fastinit import materialize as m
        calls = [0]
        real = os.replace
        def replace(*args, **kw):
            real(*args, **kw)
            calls[0] += 1
            if calls[0] == {renames}:
                os._exit(9)
        os.replace = replace
        m.materialize({json.dumps(SPEC)}, sys.argv[1], seed={seed}, progress=False)
    """)
    return subprocess.run([sys.executable, "-c", code, str(out)], timeout=120).returncode


def test_a_rerun_killed_at_each_rename_never_leaves_a_mix(tmp_path):
    n_files = len(TENSORS) + 1                  # three shards and the index
    for k in range(1, 2 * n_files + 1):         # old files moved aside, then new ones in
        out = tmp_path / f"k{k}"
        m.materialize(SPEC, out, seed=1, progress=False)
        assert _visible_checkpoint(out) == {"1"}
        code = _run_dying_after(out, 2, k)
        visible = _visible_checkpoint(out)
        assert visible in (None, {"1"}, {"2"}), (k, visible)   # never {"1", "2"}
        if code == 0:  # fewer renames than k: the run completed
            assert visible == {"2"}
        _staging.recover(str(out))
        after = _visible_checkpoint(out)
        assert after in ({"1"}, {"2"}), (k, after)
        if visible is not None:
            assert after == visible
        hidden = [f for f in os.listdir(out) if f.startswith(".")]
        assert hidden == [], (k, hidden)
        files = sorted(f for f in os.listdir(out))
        assert files == sorted([f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
                               + [m.INDEX_NAME]), (k, files)


def test_a_single_file_run_replaces_a_sharded_checkpoint_whole(tmp_path):
    m.materialize(SPEC, tmp_path, seed=1, progress=False)
    m.materialize({"tensors": TENSORS}, tmp_path, seed=2, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]
    m.materialize(SPEC, tmp_path, seed=3, progress=False)
    assert "model.safetensors" not in os.listdir(tmp_path)
    assert _visible_checkpoint(tmp_path) == {"3"}


def test_other_files_in_the_directory_are_left_alone(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "other-00001-of-00002.safetensors").write_bytes(b"x")
    m.materialize(SPEC, tmp_path, seed=1, progress=False)
    m.materialize({"tensors": TENSORS}, tmp_path, seed=2, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors",
                                           "other-00001-of-00002.safetensors"]


def test_npy_killed_mid_write_leaves_no_partial_file(tmp_path):
    proc, out = start_materialize_command(tmp_path, "--format", "npy")
    assert wait_mid_write(proc, out), "did not catch the run mid-write"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [f for f in os.listdir(out) if f.endswith(".npy")] == []
    m.materialize_npy_files(m.parse_spec(tmp_path / "spec.json", 1)[0], out, progress=False)
    assert sorted(os.listdir(out)) == [f"t{i}.npy" for i in range(4)]
    import fastinit.initializers as fi
    from fastinit.sharding import name_stream
    np.testing.assert_array_equal(
        np.load(out / "t3.npy", mmap_mode="r")[:2],
        fi.RandomNormal(seed=1)((2048, 4096), index=(slice(0, 2),), stream=name_stream("t3")))


def test_a_full_disk_leaves_nothing_under_final_names(tmp_path, monkeypatch):
    """An error while writing (ENOSPC here) leaves the directory as it was."""
    import errno
    from fastinit.materialize import _writer
    m.materialize_npy_files(m.parse_spec({"tensors": TENSORS}, 1)[0], tmp_path, progress=False)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    calls = [0]
    real = os.write

    def write(fd, data):
        calls[0] += 1
        if calls[0] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(_writer.os, "write", write)
    with pytest.raises(OSError, match="No space"):
        m.materialize_npy_files(m.parse_spec({"tensors": TENSORS}, 2)[0], tmp_path,
                                progress=False)
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before
