"""Hostile output directories: crafted leftovers, directories and links under checkpoint
names, two writers at once, a writer on another host, a failed write's queued chunks.

Each test failed before the commit protocol of ``fastinit.materialize._staging``
(one writer per directory under a lock, recovery limited to what fastinit wrote).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import fastinit.initializers as fi
from fastinit import materialize as m
from fastinit.materialize import _staging
from fastinit.sharding import name_stream

from helpers import checkout_env, run_python, start_materialize_command, wait_mid_write

safetensors_numpy = pytest.importorskip("safetensors.numpy")

SMALL = {"tensors": {"w": {"shape": [8, 4], "initializer": "random_normal"}}}
SHARDED = {"tensors": {f"t{i}": {"shape": [16, 8], "initializer": "random_normal"}
                       for i in range(3)}, "max_shard_size": 16 * 8 * 4}


def _snapshot(root):
    """Every path under ``root`` with its bytes (files) or None (folders, links)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = (
                None if os.path.islink(path) or os.path.isdir(path) else open(path, "rb").read())
    return out


def _new_files(before, after):
    return sorted(set(after) - set(before))


# -- leftovers crafted to make recovery leave the directory ------------------------------------


def _craft_leftovers(out, victim):
    """Folders named as fastinit's staging folders (this release's and the previous
    one's) whose records name files outside ``out``, and a user's file inside."""
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rel = os.path.relpath(victim, out)
    # The previous release's layout (a pid that cannot exist): a backup with a manifest,
    # a staging folder, a staged file.
    (out / ".fastinit-old-99999999-abcd").mkdir()
    (out / ".fastinit-old-99999999-abcd" / "manifest.json").write_text(
        json.dumps({"new": [rel, "x"], "old": ["../../" + victim.name]}))
    (out / ".fastinit-tmp-99999999-abcd").mkdir()
    (out / ".fastinit-tmp-99999999-abcd" / "x").write_text("x")
    (out / ".fastinit-tmp-99999999-abcd-notes.txt").write_text("a user's file, oddly named")
    # This release's layout: records naming paths outside, a link to the victim.
    run = out / ".fastinit-run-0123456789abcdef"
    (run / "new").mkdir(parents=True)
    (run / "plan.json").write_text(json.dumps({"version": 1, "new": [rel, "notes.txt"]}))
    st = os.stat(victim)
    ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]  # the victim's true identity
    (run / "commit.json").write_text(json.dumps({"new": [[rel, ident]], "old": [[rel, ident]]}))
    os.symlink(victim, run / "new" / "notes.txt")
    os.symlink(victim.parent, out / ".fastinit-run-fedcba9876543210")


def _write_materialize(out):
    m.materialize(SMALL, out, seed=0, progress=False)
    return "model.safetensors"


def _write_store_npy(out):
    pytest.importorskip("dask")
    import fastinit.dask as fd
    fd.store_npy(fd.array("ones", (10, 3), chunks=(4, 3)), out / "w.npy")
    assert np.array_equal(np.load(out / "w.npy"), np.ones((10, 3), np.float32))
    return "w.npy"


@pytest.mark.parametrize("write", [_write_materialize, _write_store_npy],
                         ids=["materialize", "store_npy"])
def test_crafted_leftovers_never_reach_outside_the_directory(tmp_path, write):
    """Leftovers naming files outside the directory (``../x``, links): the run writes
    only its own file and warns; nothing else changes (``dask.store_npy`` too, which
    once ran recovery on its target's parent directory)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    out = tmp_path / "out"
    _craft_leftovers(out, victim)
    before = _snapshot(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        name = write(out)
    after = _snapshot(tmp_path)
    assert _new_files(before, after) == [os.path.join("out", name)]
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else changed
    assert any("not a folder fastinit wrote" in str(w.message) for w in caught)


def test_a_closed_commit_refuses_to_stage_or_commit(tmp_path):
    staging = _staging.Transaction(tmp_path, ["w.npy"]).open()
    staging.close()
    for call in (lambda: staging.path("w.npy"), staging.commit):
        with pytest.raises(ValueError, match="This commit is closed"):
            call()
    assert os.listdir(tmp_path) == []


# -- directories and links under a checkpoint file's name --------------------------------------


@pytest.mark.parametrize("blocker", ["model.safetensors", "model-00002-of-00004.safetensors",
                                     "model.safetensors.index.json"])
@pytest.mark.parametrize("spec", [SMALL, SHARDED], ids=["single", "sharded"])
def test_a_directory_named_like_a_checkpoint_file_is_refused(tmp_path, blocker, spec):
    (tmp_path / blocker).mkdir()
    (tmp_path / blocker / "keep.txt").write_text("keep")
    before = _snapshot(tmp_path)
    with pytest.raises(IsADirectoryError, match=rf"{blocker}.*is a directory.*Nothing was written"):
        m.materialize(spec, tmp_path, seed=0, progress=False)
    assert _snapshot(tmp_path) == before


def test_npy_targets_that_are_directories_or_links_are_refused(tmp_path):
    (tmp_path / "w.npy").mkdir()
    (tmp_path / "w.npy" / "keep.txt").write_text("keep")
    elsewhere = tmp_path / "elsewhere.npy"
    np.save(elsewhere, np.zeros(3))
    os.symlink(elsewhere, tmp_path / "v.npy")
    before = _snapshot(tmp_path)
    with pytest.raises(IsADirectoryError, match="w.npy"):
        m.materialize_npy("ones", (3,), tmp_path / "w.npy")
    with pytest.raises(FileExistsError, match="v.npy.*symbolic link"):
        m.materialize_npy("ones", (3,), tmp_path / "v.npy")
    tensors, _ = m.parse_spec({"tensors": {"w": {"shape": [3], "initializer": "ones"}}}, 0)
    with pytest.raises(IsADirectoryError, match="w.npy"):
        m.materialize_npy_files(tensors, tmp_path, progress=False)
    pytest.importorskip("dask")
    import fastinit.dask as fd
    with pytest.raises(IsADirectoryError, match="w.npy"):
        fd.store_npy(fd.array("ones", (3,), chunks=2), tmp_path / "w.npy")
    assert _snapshot(tmp_path) == before


def test_a_lock_file_that_is_a_directory_or_a_link_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    for i, make in enumerate((lambda p: p.mkdir(), lambda p: os.symlink(victim, p))):
        out = tmp_path / f"out{i}"
        out.mkdir()
        make(out / ".fastinit-lock")
        with pytest.raises(FileExistsError, match="lock file"):
            m.materialize(SMALL, out, seed=0, progress=False)
        assert os.listdir(out) == [".fastinit-lock"]
    assert victim.read_text() == "victim"


# -- two writers, one directory -----------------------------------------------------------------


class _Blocking(fi.Initializer):
    """Zeros, after waiting for ``release`` (keeps a run in the middle of its writing)."""

    started = threading.Event()
    release = threading.Event()

    def generate(self, request):
        self.started.set()
        assert self.release.wait(60)
        return request.write(np.zeros(request.region.shape, request.dtype))


fi.register(_Blocking, name="test_checkpoint_dirs>Blocking")
BLOCKING = {"tensors": {"a": {"shape": [4], "initializer": "test_checkpoint_dirs>Blocking"}}}


def test_two_writers_in_one_process_never_share_a_directory(tmp_path):
    _Blocking.started.clear()
    _Blocking.release.clear()
    results = {}

    def first():
        results["first"] = m.materialize(BLOCKING, tmp_path, seed=0, progress=False)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert _Blocking.started.wait(60)
        with pytest.raises(BlockingIOError, match="Another run is writing to"):
            m.materialize(SHARDED, tmp_path, seed=1, progress=False)

        def second():
            results["second"] = m.materialize(SHARDED, tmp_path, seed=1, progress=False,
                                              lock_timeout=60)
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        assert "second" not in results  # waiting for the first run
    finally:
        _Blocking.release.set()
        thread.join()
    waiter.join()
    assert len(results["second"]) == 4
    index = json.loads((tmp_path / m.INDEX_NAME).read_text())
    assert sorted(set(index["weight_map"].values())) == sorted(
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3))
    assert sorted(os.listdir(tmp_path)) == sorted(list(index["weight_map"].values())
                                                  + [m.INDEX_NAME])


# A command held in the middle of its writing until the file RELEASE exists; ``prelude`` runs
# first (in the new interpreter).
_HELD_RUN = """
import os, sys, time
import numpy as np
import fastinit.initializers as fi
spec, out, flag = sys.argv[1:4]

class Held(fi.Initializer):
    def generate(self, request):
        open(flag + ".started", "w").close()
        while not os.path.exists(flag):
            time.sleep(0.01)
        return request.write(np.ones(request.region.shape, request.dtype))

fi.register(Held, name="held")
from fastinit import cli
sys.exit(cli.main(["materialize", spec, out, "--seed", "1", "--no-progress"]))
"""


def _start_held_run(tmp_path, out, prelude=""):
    spec = {"tensors": {"a": {"shape": [64, 8], "initializer": "random_normal"},
                        "b": {"shape": [4], "initializer": "held"}}}
    (tmp_path / "held.json").write_text(json.dumps(spec))
    flag = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", prelude + _HELD_RUN, str(tmp_path / "held.json"),
                             str(out), str(flag)], env=checkout_env(), stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(str(flag) + ".started"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    return proc, flag


def _check_held_run(out):
    loaded = safetensors_numpy.load_file(out / "model.safetensors")
    assert sorted(loaded) == ["a", "b"] and (loaded["b"] == 1).all()
    want = fi.RandomNormal(seed=1)((64, 8), stream=name_stream("a"))
    assert np.array_equal(loaded["a"], want)


def test_a_second_command_fails_clearly_or_waits(tmp_path):
    out = tmp_path / "out"
    proc, release = _start_held_run(tmp_path, out)
    try:
        spec = tmp_path / "small.json"
        spec.write_text(json.dumps(SMALL))
        cmd = [sys.executable, "-m", "fastinit", "materialize", str(spec), str(out), "--seed",
               "1", "--no-progress"]
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env=checkout_env())
        assert busy.returncode == 2, busy.stderr
        assert busy.stderr.startswith("fastinit materialize: error: Another run is writing to")
        assert busy.stderr.count("\n") == 1
        waiting = subprocess.Popen(cmd + ["--lock-timeout", "300"], stderr=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=checkout_env())
        time.sleep(2)
        assert waiting.poll() is None  # it waits for the first run
        release.write_text("")
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        assert waiting.wait(timeout=120) == 0, waiting.stderr.read()
    finally:
        proc.kill()
    loaded = safetensors_numpy.load_file(out / "model.safetensors")
    assert sorted(loaded) == ["w"]  # the second run's, committed after the first
    assert sorted(os.listdir(out)) == ["model.safetensors"]


# -- a live run whose pid means nothing here (another host or container) ------------------------


def test_a_live_run_of_another_host_is_never_recovered(tmp_path):
    """The run's pid is made one that does not exist here, as on another host."""
    out = tmp_path / "out"
    proc, release = _start_held_run(tmp_path, out, "import os; os.getpid = lambda: 999_999_999\n")
    try:
        with contextlib.suppress(OSError):
            _staging.recover(out)
        with contextlib.suppress(OSError):
            m.materialize(SMALL, out, seed=2, progress=False)
        release.write_text("")
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        proc.kill()
    _check_held_run(out)


# -- a failed write: its queued chunks reach no other file -------------------------------------


class _Fails(fi.Initializer):
    def generate(self, request):
        raise RuntimeError("boom")


fi.register(_Fails, name="test_checkpoint_dirs>Fails")


def test_after_a_failed_write_no_queued_chunk_reaches_another_file(tmp_path, monkeypatch):
    """The writer is held at its first write while the run fails; every descriptor the
    library closes meanwhile is at once reused for a file of the user's. None of them
    may receive a byte."""
    spec = {"tensors": {"ok": {"shape": [4096], "initializer": "ones"},
                        "bad": {"shape": [16], "initializer": "test_checkpoint_dirs>Fails"}}}
    gate = threading.Event()
    victims = []
    real = {name: getattr(os, name) for name in ("write", "pwrite", "pwritev", "close")
            if hasattr(os, name)}

    def held_write(name):
        def write(*args):
            if threading.current_thread() is not threading.main_thread():
                gate.wait(1.0)
            return real[name](*args)
        return write

    def close(fd):
        real["close"](fd)
        if not gate.is_set():
            path = tmp_path / f"victim-{len(victims)}"
            victims.append((path, os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)))
            gate.set()

    for name in ("write", "pwrite", "pwritev"):
        if name in real:
            monkeypatch.setattr(os, name, held_write(name))
    monkeypatch.setattr(os, "close", close)
    with pytest.raises(RuntimeError, match="boom"):
        m.materialize(spec, tmp_path / "out", seed=0, chunk_bytes=4096, progress=False)
    monkeypatch.undo()
    for path, fd in victims:
        os.close(fd)
    assert victims and all(os.path.getsize(path) == 0 for path, _ in victims)


def test_sigint_to_a_command_leaves_the_old_checkpoint(tmp_path):
    """Ctrl-C while writing: exit status 130, one line, the old files as they were."""
    out = tmp_path / "out"
    m.materialize(SMALL, out, seed=5, progress=False)
    before = (out / "model.safetensors").read_bytes()
    proc, _ = start_materialize_command(tmp_path, stderr=subprocess.PIPE, text=True,
                                        env=checkout_env())
    assert wait_mid_write(proc, out), "did not catch the run mid-write"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert proc.stderr.read().strip() == "fastinit materialize: interrupted"
    assert os.listdir(out) == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == before


# -- a signal while waiting for another run's lock ---------------------------------------------

_LOCK_HOLDER = """
import sys
from fastinit.materialize._lock import DirectoryLock
with DirectoryLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""

_NPY_WAITER = """
import sys
import dask.array as da
import fastinit.dask
try:
    fastinit.dask.store_npy(da.ones(8, chunks=4), sys.argv[1], lock_timeout=300)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("writer", ["command", "store_npy"])
def test_ctrl_c_while_waiting_for_the_lock_ends_the_run_at_once(tmp_path, writer):
    """SIGINT to a run that waits (lock timeout 300 s) for another process's lock: it
    ends within seconds, status 130, and leaves nothing. Before, signals were held for
    the whole wait: the run went on waiting until the timeout."""
    if writer == "store_npy":
        pytest.importorskip("dask.array")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(out)], env=checkout_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        if writer == "command":
            spec = tmp_path / "small.json"
            spec.write_text(json.dumps(SMALL))
            cmd = [sys.executable, "-m", "fastinit", "materialize", str(spec), str(out),
                   "--seed", "1", "--no-progress", "--lock-timeout", "300"]
        else:
            cmd = [sys.executable, "-c", _NPY_WAITER, str(out / "w.npy")]
        waiter = subprocess.Popen(cmd, env=checkout_env(), stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(4)  # started (imports) and waiting for the lock
            assert waiter.poll() is None, waiter.stderr.read()
            waiter.send_signal(signal.SIGINT)
            start = time.monotonic()
            assert waiter.wait(timeout=60) == 130, waiter.stderr.read()
            assert time.monotonic() - start < 10
        finally:
            waiter.kill()
            waiter.wait()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert os.listdir(out) == []


# -- a child forked in the middle of a run -----------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_leaves_its_parents_run_alone(tmp_path):
    """A child forked by an initializer mid-run unwinds through the run's clean-up (an
    exception) and exits; the parent's run commits every file. Before, the child's
    clean-up deleted the parent's staged files and the parent's commit failed."""
    out = run_python("""
        import os, sys
        import numpy as np
        import fastinit.initializers as fi
        from fastinit import materialize as m

        parent = os.getpid()

        class Forks(fi.Initializer):
            def generate(self, request):
                if os.getpid() == parent:
                    pid = os.fork()
                    if pid == 0:
                        raise RuntimeError("the child unwinds")
                    os.waitpid(pid, 0)
                return request.write(np.ones(request.region.shape, request.dtype))

        fi.register(Forks, name="forks")
        spec = {"tensors": {"a": {"shape": [64, 8], "initializer": "random_normal"},
                            "b": {"shape": [4], "initializer": "forks"},
                            "c": {"shape": [300, 300], "initializer": "random_normal"}}}
        try:
            files = m.materialize(spec, sys.argv[1], seed=1, progress=False,
                                  max_shard_size=2000)
        except RuntimeError:
            os._exit(0 if os.getpid() != parent else 3)
        print(len(files), sorted(os.listdir(sys.argv[1])))
    """, tmp_path / "out", timeout=300)
    listing = sorted(os.listdir(tmp_path / "out"))
    assert out.strip() == f"{len(listing)} {listing}"
    assert m.INDEX_NAME in listing and len(listing) > 2
    loaded = {}
    for name in listing:
        if name.endswith(".safetensors"):
            loaded.update(safetensors_numpy.load_file(tmp_path / "out" / name))
    assert sorted(loaded) == ["a", "b", "c"] and (loaded["b"] == 1).all()
