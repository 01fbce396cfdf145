"""The checkpoint engine (fastinit.materialize._writer): direct I/O where the file system
allows it, the same bytes through the page cache where it does not, chunk boundaries
anywhere in a tensor, files every loader reads."""

import json
import os
import signal

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastinit.initializers as fi
from fastinit import materialize as m
from fastinit.materialize import _writer
from fastinit.sharding import name_stream

from helpers import assert_bits_equal

safetensors_numpy = pytest.importorskip("safetensors.numpy")

# Odd layouts: a 3-byte bool tensor puts the next tensors off their dtype's alignment, a
# 0-d and an empty tensor, a tensor computed whole (orthogonal) across chunks, bfloat16
# and float16 elements split by chunk boundaries.
ODD = {"tensors": [
    {"name": "flags", "shape": [3], "dtype": "bool", "initializer": "zeros"},
    {"name": "w", "shape": [37, 129], "dtype": "float32", "initializer": "glorot_uniform"},
    {"name": "scalar", "shape": [], "dtype": "float64", "initializer": "ones"},
    {"name": "empty", "shape": [0, 5], "initializer": "he_normal"},
    {"name": "q", "shape": [40, 33], "dtype": "float64", "initializer": "orthogonal"},
    {"name": "b", "shape": [3001], "dtype": "bfloat16",
     "initializer": {"class_name": "RandomNormal", "config": {"stddev": 0.02}}},
    {"name": "h", "shape": [7, 5, 3], "dtype": "float16", "initializer": "lecun_normal"},
    {"name": "i", "shape": [999], "dtype": "int64", "initializer": "zeros"},
], "max_shard_size": 40_000}


def _files(out):
    return {f: (out / f).read_bytes() for f in sorted(os.listdir(out))}


def _expected(spec, seed):
    tensors, _ = m.parse_spec(spec, seed)
    return {t.name: t.initializer(t.shape, t.dtype, stream=name_stream(t.name)) for t in tensors}


def _check_values(out, spec, seed):
    loaded = {}
    for f in os.listdir(out):
        if f.endswith(".safetensors"):
            loaded.update(safetensors_numpy.load_file(out / f))
    want = _expected(spec, seed)
    assert set(loaded) == set(want)
    for name, value in want.items():
        got = loaded[name]
        assert_bits_equal(got.view(np.uint16) if value.dtype.name == "bfloat16" else got,
                          value.view(np.uint16) if value.dtype.name == "bfloat16" else value)


def _record_direct(monkeypatch):
    """The ``direct`` flag of every file the engine opens, once written."""
    files = []
    real = _writer._File

    def record(path, size, direct=True):
        f = real(path, size, direct)
        files.append(f)
        return f
    monkeypatch.setattr(_writer, "_File", record)
    return files


@pytest.mark.parametrize("chunk", [4096, 8192, 1 << 20])
def test_direct_and_buffered_writes_give_the_same_bytes(tmp_path, monkeypatch, chunk):
    files = _record_direct(monkeypatch)
    m.materialize(ODD, tmp_path / "direct", seed=3, chunk_bytes=chunk, progress=False)
    direct = [f.direct for f in files]
    monkeypatch.setattr(_writer, "_enable_direct", lambda fd: False)
    m.materialize(ODD, tmp_path / "buffered", seed=3, chunk_bytes=chunk, progress=False)
    assert all(not f.direct for f in files[len(direct):])
    assert _files(tmp_path / "direct") == _files(tmp_path / "buffered")
    _check_values(tmp_path / "direct", ODD, 3)
    fd = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    try:
        if _writer._enable_direct(fd):
            assert all(direct)  # this file system takes O_DIRECT: the engine used it
    finally:
        os.close(fd)


def test_a_file_system_that_refuses_direct_io_gets_the_same_bytes(tmp_path, monkeypatch):
    """Setting O_DIRECT fails with EINVAL (tmpfs before Linux 6.6, some network file
    systems): the files are written through the page cache, with the same bytes."""
    import errno
    import fcntl
    files = _record_direct(monkeypatch)
    m.materialize(ODD, tmp_path / "ref", seed=4, chunk_bytes=8192, progress=False)
    real = fcntl.fcntl

    def refuse(fd, cmd, arg=0):
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)
    monkeypatch.setattr(fcntl, "fcntl", refuse)
    count = len(files)
    m.materialize(ODD, tmp_path / "refused", seed=4, chunk_bytes=8192, progress=False)
    assert files[count:] and not any(f.direct for f in files[count:])
    assert _files(tmp_path / "ref") == _files(tmp_path / "refused")


def test_direct_io_refused_by_a_write_falls_back_mid_file(tmp_path, monkeypatch):
    """EINVAL from a direct write (an alignment the device wants larger): the rest of the
    file goes through the page cache, with the same bytes."""
    import errno
    m.materialize(ODD, tmp_path / "ref", seed=5, chunk_bytes=4096, progress=False)
    files = _record_direct(monkeypatch)
    real, calls = os.pwrite, [0]

    def pwrite(fd, data, offset):
        calls[0] += 1
        if calls[0] == 3 and _is_direct(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)
    m.materialize(ODD, tmp_path / "fallback", seed=5, chunk_bytes=4096, progress=False)
    assert _files(tmp_path / "ref") == _files(tmp_path / "fallback")
    if any(f.direct for f in files):  # direct I/O here: one file fell back, the rest did not
        assert sum(not f.direct for f in files) == 1


def _is_direct(fd):
    import fcntl
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))


def test_tensor_data_start_on_a_block_boundary(tmp_path):
    m.materialize(ODD, tmp_path, seed=1, progress=False)
    for f in os.listdir(tmp_path):
        if f.endswith(".safetensors"):
            with open(tmp_path / f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = fh.read(n)
            assert (8 + n) % 4096 == 0
            assert header.rstrip(b" ").endswith(b"}")
            json.loads(header)


def test_the_torch_loaders_and_mmap_read_the_files(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from safetensors import safe_open
    m.materialize(ODD, tmp_path, seed=6, progress=False)
    want = _expected(ODD, 6)
    for f in os.listdir(tmp_path):
        if not f.endswith(".safetensors"):
            continue
        loaded = safetensors_torch.load_file(tmp_path / f)
        with safe_open(str(tmp_path / f), framework="pt") as handle:  # mmap
            for name in handle.keys():
                t = handle.get_tensor(name)
                assert torch.equal(t, loaded[name])
                got = t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 \
                    else t.numpy()
                exp = want[name].view(np.uint16) if want[name].dtype.name == "bfloat16" \
                    else want[name]
                assert_bits_equal(got, exp)


def test_npy_files_through_the_engine(tmp_path, monkeypatch):
    files = _record_direct(monkeypatch)
    spec = {"tensors": [t for t in ODD["tensors"] if t.get("dtype") != "bfloat16"]}
    tensors, _ = m.parse_spec(spec, 2)
    m.materialize_npy_files(tensors, tmp_path, chunk_bytes=4096, progress=False)
    assert files
    for name, value in _expected(spec, 2).items():
        assert_bits_equal(np.load(tmp_path / f"{name}.npy"), value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=0, max_size=4), st.data())
def test_flat_boxes_cover_a_flat_range_in_order(shape, data):
    shape = tuple(shape)
    size = int(np.prod(shape))
    start = data.draw(st.integers(0, size))
    stop = data.draw(st.integers(start, size))
    flat = np.arange(size).reshape(shape)
    pieces = [np.asarray(flat[index]).reshape(-1) for index, box in
              _writer.flat_boxes(shape, start, stop)]
    for (index, box), piece in zip(_writer.flat_boxes(shape, start, stop), pieces):
        assert piece.size == int(np.prod(box))
    got = np.concatenate(pieces) if pieces else np.empty(0, flat.dtype)
    assert np.array_equal(got, np.arange(start, stop))
    assert len(pieces) <= max(1, 2 * len(shape) - 1)


def test_the_engine_keeps_memory_to_its_buffers(tmp_path):
    """A whole-tensor initializer aside, nothing tensor-sized is allocated: the buffers
    are the engine's only large memory."""
    engine = _writer.Engine(1 << 20)
    try:
        assert len(engine._maps) == _writer.N_BUFFERS
        assert all(len(buf) == 1 << 20 for buf in engine._maps)
    finally:
        engine.close()
    spec = {"tensors": {"w": {"shape": [4096, 1024], "initializer": "random_normal"}}}
    m.materialize(spec, tmp_path, seed=0, chunk_bytes=1 << 20, progress=False)
    assert_bits_equal(safetensors_numpy.load_file(tmp_path / "model.safetensors")["w"],
                      fi.RandomNormal(seed=0)((4096, 1024), stream=name_stream("w")))


def test_a_transformers_checkpoint_is_the_same_either_way_and_loads(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM

    from fastinit.materialize import materialize_module
    from helpers import hf_models as hm
    materialize_module(hm.build("llama", "meta"), tmp_path / "direct", 0, chunk_bytes=8192,
                       max_shard_size="100KB", progress=False)
    monkeypatch.setattr(_writer, "_enable_direct", lambda fd: False)
    materialize_module(hm.build("llama", "meta"), tmp_path / "buffered", 0, chunk_bytes=8192,
                       max_shard_size="100KB", progress=False)
    assert _files(tmp_path / "direct") == _files(tmp_path / "buffered")
    loaded, info = AutoModelForCausalLM.from_pretrained(tmp_path / "direct",
                                                        output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    assert hm.differ(hm.tensors(loaded), hm.tensors(hm.meta_init("llama", 0))) == []


def test_a_dry_run_plans_the_files_a_run_writes_and_writes_nothing(tmp_path):
    plan = m.materialize(ODD, tmp_path / "planned", seed=1, dry_run=True)
    assert not (tmp_path / "planned").exists()
    paths = m.materialize(ODD, tmp_path / "written", seed=1, progress=False)
    assert [name for name, _ in plan.files] == [os.path.basename(p) for p in paths]
    assert [n for _, n in plan.files] == [os.path.getsize(p) for p in paths]
    text = plan.describe()
    assert "nothing written" in text and "memory: about" in text and "time: about" in text
    assert not (tmp_path / "planned").exists()


def test_the_dry_run_command_plans_a_transformers_config(tmp_path):
    pytest.importorskip("transformers")
    import subprocess
    import sys

    from helpers import checkout_env, hf_models as hm
    config = hm.llama_config()
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(tmp_path / "cfg")
    result = subprocess.run([sys.executable, "-m", "fastinit", "materialize", str(tmp_path / "cfg"),
                             str(tmp_path / "out"), "--dry-run", "--max-shard-size", "100KB"],
                            capture_output=True, text=True, timeout=300, env=checkout_env())
    assert result.returncode == 0, result.stderr
    assert "model.safetensors.index.json" in result.stdout and "config.json" in result.stdout
    assert "memory: about" in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("where", ["opening the file", "queueing a chunk"])
def test_ctrl_c_in_the_engine_leaks_no_descriptor(tmp_path, monkeypatch, where):
    """A KeyboardInterrupt while a file is opened or a chunk queued: after the abort every
    descriptor is closed. Before, the file's descriptor (and its unlinked file's space)
    stayed open until the process ended."""
    engine = _writer.Engine(4096)
    if where == "opening the file":
        real = _writer._enable_direct

        def enable_direct(fd):
            signal.raise_signal(signal.SIGINT)
            return real(fd)
        monkeypatch.setattr(_writer, "_enable_direct", enable_direct)
    else:  # a Ctrl-C that lands as the first chunk is queued
        put, fired = engine.todo.put, []

        def interrupting_put(item, *args, **kwargs):
            if item is not None and item[2] is not None and not fired:
                fired.append(True)
                signal.raise_signal(signal.SIGINT)
            put(item, *args, **kwargs)
        monkeypatch.setattr(engine.todo, "put", interrupting_put)
    before = set(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.write_file(str(tmp_path / "f.bin"), b"x" * 10000, [])
    finally:
        engine.abort()
    assert set(os.listdir("/proc/self/fd")) == before
