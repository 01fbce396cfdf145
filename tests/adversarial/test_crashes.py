"""Interrupted at any point, a checkpoint directory holds the old set of files or the new one.

The runs are real processes, killed with SIGKILL while writing (``.npy``), or
interrupted at every step of a re-run over an existing multi-file checkpoint (an
exception, SIGINT, SIGTERM, or dead: ``os._exit``). After an exception or a signal
the directory holds the old set or the new one; after a death a reader finds no
index, or an index whose files are all of one run, and recovery restores the old
set or completes the new one.
"""

import json
import os
import signal

import numpy as np
import pytest

from fastinit import materialize as m
from fastinit.materialize import _staging

from helpers import run_python, start_materialize_command, wait_mid_write

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


# Re-runs a checkpoint (seed 2 over seed 1) once per step, interrupted at that step: every
# call of a function that changes the file system, made by the run's main thread, is a
# step. Kinds: an exception instead of the call ("exception"), the call then SIGINT or
# SIGTERM (the command's handler: SystemExit) to the process, or the call then the
# process dead (os._exit, in a forked child: "crash"). Prints one JSON record per step.
_INTERRUPT_EVERY_STEP = """
import json, os, signal, sys, threading, warnings
from fastinit import materialize as m
from fastinit.materialize import _staging

spec, kind, root = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
STEPS = ("open", "write", "pwrite", "fsync", "close", "replace", "rename", "unlink", "rmdir",
         "mkdir", "ftruncate")
real = {name: getattr(os, name) for name in STEPS if hasattr(os, name)}
state = {"armed": None, "calls": 0, "fired": None}

def hook(name):
    fn = real[name]
    def step(*args, **kwargs):
        if state["armed"] is None or threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)
        state["calls"] += 1
        if state["calls"] != state["armed"]:
            return fn(*args, **kwargs)
        state["fired"] = name
        if kind == "exception":
            if name == "close":  # Linux frees the descriptor even when close() fails
                fn(*args, **kwargs)
            raise OSError(5, "injected at os." + name)
        try:
            return fn(*args, **kwargs)
        finally:  # also after a call that failed (mkdir of an existing folder)
            if kind == "crash":  # the exit status says which step
                real["_exit"](70 + STEPS.index(name))
            signal.raise_signal(signal.SIGINT if kind == "sigint" else signal.SIGTERM)
    return step

real["_exit"] = os._exit
for name in STEPS:
    if name in real:
        setattr(os, name, hook(name))

def terminate(signum, frame):  # what `fastinit materialize` installs
    raise SystemExit(128 + signum)
signal.signal(signal.SIGTERM, terminate)

def seeds(out):
    "None: no checkpoint; 'broken': an index naming a missing file; else the seeds."
    def seed(f):
        with open(os.path.join(out, f), "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            return json.loads(fh.read(n))["__metadata__"]["fastinit_seed"]
    index = os.path.join(out, m.INDEX_NAME)
    if os.path.exists(index):
        with open(index) as fh:
            files = sorted(set(json.load(fh)["weight_map"].values()))
        if any(not os.path.exists(os.path.join(out, f)) for f in files):
            return "broken"
        return sorted({seed(f) for f in files})
    single = os.path.join(out, "model.safetensors")
    return [seed("model.safetensors")] if os.path.exists(single) else None

records, k = [], 1
while True:
    out = os.path.join(root, f"{kind}-{k}")
    m.materialize(spec, out, seed=1, progress=False)
    outcome = None
    if kind == "crash":
        pid = os.fork()
        if pid == 0:
            state["armed"] = k
            try:
                m.materialize(spec, out, seed=2, progress=False)
            finally:
                real["_exit"](0)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        fired = STEPS[code - 70] if code >= 70 else None
    else:
        state.update(armed=k, calls=0, fired=None)
        try:
            m.materialize(spec, out, seed=2, progress=False)
            outcome = "ok"
        except BaseException as exc:
            outcome = type(exc).__name__
        finally:
            state["armed"] = None
        fired = state["fired"]
    seen = seeds(out)
    left = sorted(f for f in os.listdir(out) if f.startswith("."))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _staging.recover(out)
    records.append(dict(k=k, step=fired, outcome=outcome, seen=seen, left=left,
                        after=seeds(out), files=sorted(os.listdir(out))))
    if not fired:
        break
    k += 1
print(json.dumps(records))
"""


@pytest.mark.parametrize("kind", ["exception", "sigint", "sigterm", "crash"])
def test_a_rerun_interrupted_at_every_step_leaves_the_old_or_the_new_set(tmp_path, kind):
    """Never a mix, never nothing once the run has ended (exception, SIGINT, SIGTERM) or
    recovery has run (crash); a crashed commit shows no checkpoint only while its index is
    away, never a broken one."""
    records = json.loads(run_python(_INTERRUPT_EVERY_STEP, json.dumps(SPEC), kind, tmp_path,
                                    timeout=900).splitlines()[-1])
    assert len(records) > 30  # every step of a run, the commit's renames among them
    shards = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    expected = {"exception": ("OSError", "ok"), "sigint": ("KeyboardInterrupt",),
                "sigterm": ("SystemExit",), "crash": (None,)}[kind]

    def problems(r):
        if r["seen"] not in ((None, ["1"], ["2"]) if kind == "crash" else (["1"], ["2"])):
            yield "the run left neither set"  # a crash: an absent index at most
        if r["after"] not in (["1"], ["2"]) or (r["seen"] and r["after"] != r["seen"]):
            yield "recovery did not keep or restore a set"
        if r["files"] != sorted(shards + [m.INDEX_NAME]):
            yield "files other than the checkpoint's after recovery"
        if r["step"] and r["outcome"] not in expected:
            yield "the interruption did not end the run"
        if r["outcome"] == "ok" and r["seen"] != ["2"]:
            yield "a run that returned did not commit"
        if kind in ("sigint", "sigterm") and r["left"]:
            yield "a signal stopped the cleanup"

    bad = [(r["k"], r["step"], r["seen"], list(problems(r))) for r in records]
    assert [b for b in bad if b[3]] == []
    steps = {r["step"] for r in records}
    assert {"replace", "unlink", "fsync", "mkdir", "rmdir"} <= steps, steps


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
    m.materialize_npy_files(m.parse_spec({"tensors": TENSORS}, 1)[0], tmp_path, progress=False)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    calls = [0]

    def full(real):
        def write(*args):
            calls[0] += 1
            if calls[0] > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args)
        return write

    for name in ("write", "pwrite"):
        monkeypatch.setattr(os, name, full(getattr(os, name)))
    with pytest.raises(OSError, match="No space"):
        m.materialize_npy_files(m.parse_spec({"tensors": TENSORS}, 2)[0], tmp_path,
                                progress=False)
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM on this platform")
def test_sigterm_and_sigint_held_together_end_as_a_termination():
    """Ctrl-C then SIGTERM during a held section: the termination (the command's
    handler: exit status 143) is what comes out, not the KeyboardInterrupt (130) that
    used to be raised first and lose the SIGTERM."""
    from fastinit.materialize._signals import held

    def terminate(signum, frame):  # what `fastinit materialize` installs
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        for first, second in ((signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)):
            with pytest.raises(SystemExit) as caught:
                with held():
                    signal.raise_signal(first)
                    signal.raise_signal(second)
            assert caught.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
