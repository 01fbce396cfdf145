"""The CUDA per-element code, compiled as host C++, is bit-identical to the NumPy backend.

``fastinit/kernels/fastinit_stream.cuh`` is the math of the CUDA kernels
(Philox, bits to floats, Box-Muller, truncated-normal rejection, the output
stage and the float16/bfloat16 rounding, and the per-item work split). It also
compiles as host C++; this module builds ``tests/cuda_host_driver.cpp`` with
the system compiler (``-ffp-contract=off``, no fast-math) and plugs it into the
public API as a backend, so that CI, which has no GPU, checks the GPU code
against the NumPy backend bit for bit. Skipped when no C++ compiler is found.
"""

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastinit.backends as backends
from fastinit import _dtypes, random as fr, stream

from _util import DIST_IDS, DISTS, DTYPES, KAT, assert_bits_equal, draw, regions, shapes

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "fastinit" / "kernels"
DRIVER = Path(__file__).resolve().parent / "cuda_host_driver.cpp"
OUT_CODES = {"float32": 0, "float16": 1, "bfloat16": 2, "float64": 3}
FLAGS = ("-std=c++14", "-ffp-contract=off", "-fno-fast-math")


def _compiler():
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(directory, opt):
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) found")
    exe = Path(directory) / f"cuda_host_driver{opt}"
    cmd = [cxx, opt, *FLAGS, "-Wall", "-Werror", f"-I{KERNELS}", str(DRIVER), "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    return exe


class HostBackend:
    """The fill contract of ``fastinit.backends``, computed by the host-compiled header."""

    def __init__(self, exe):
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.order = 0
        self.misalign = 0
        self.calls = 0

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def _ask(self, line, nbytes, payload=b""):
        self.proc.stdin.write(line.encode() + b"\n" + payload)
        self.proc.stdin.flush()
        data = self.proc.stdout.read(nbytes)
        assert len(data) == nbytes, f"driver answered {len(data)} of {nbytes} bytes ({line[:80]})"
        return data

    def fill(self, dist, key, out, run_starts, run_length):
        self.calls += 1
        params = dist.params()
        width = np.uint64 if dist.wide else np.uint32
        hexes = " ".join(f"{int(b):x}" for b in params.view(width))
        starts = " ".join(str(int(s)) for s in np.asarray(run_starts))
        code = OUT_CODES[out.dtype.name]
        line = (f"fill {dist.kind} {code} {key[0]} {key[1]} {dist.proposal} {len(run_starts)} "
                f"{run_length} {self.order} {self.misalign} {hexes} {starts}")
        data = self._ask(line, out.nbytes)
        out.view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)

    def philox(self, counter, key):
        words = " ".join(str(w) for w in (*counter, *key))
        return tuple(int(w) for w in np.frombuffer(self._ask(f"philox {words}", 16), np.uint32))

    def raw(self, key, start, n, round_=0):
        return np.frombuffer(self._ask(f"raw {key[0]} {key[1]} {start} {n} {round_}", 4 * n),
                             dtype=np.uint32)

    def round16(self, f32_bits):
        f32_bits = np.ascontiguousarray(f32_bits, dtype=np.uint32)
        n = f32_bits.size
        data = np.frombuffer(self._ask(f"round16 {n}", 4 * n, f32_bits.tobytes()), np.uint16)
        return data[:n], data[n:]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    backend = HostBackend(_build(tmp_path_factory.mktemp("cuda_host"), "-O2"))
    yield backend
    backend.close()


@pytest.fixture
def hostcpp(host, monkeypatch):
    """Name of a backend, "hostcpp", that runs the host-compiled CUDA header."""
    original = backends.get
    monkeypatch.setattr(backends, "get", lambda name="auto": host if name == "hostcpp"
                        else original(name))
    host.order, host.misalign = 0, 0
    return "hostcpp"


def both(name, shape, **kw):
    expected = draw(name, shape, backend="numpy", **kw)
    got = draw(name, shape, backend="hostcpp", **kw)
    assert_bits_equal(got, expected)
    return got




# -- Philox ----------------------------------------------------------------------------------


@pytest.mark.parametrize("counter, key, expected", KAT, ids=["zeros", "ones", "pi"])
def test_kat(host, counter, key, expected):
    assert host.philox(counter, key) == expected


def test_raw_words_match_philox(host):
    key = stream.derive_key(12345, 7)
    for start, n in [(0, 64), (3, 61), (2**34 - 6, 13), (2**62 - 9, 9)]:
        p = np.arange(start, start + n, dtype=np.uint64)
        b = p // np.uint64(4)
        counters = np.stack([(b & np.uint64(0xFFFFFFFF)), b >> np.uint64(32),
                             np.full_like(b, 5), np.zeros_like(b)], axis=-1).astype(np.uint32)
        words = fr.philox4x32_10(counters, np.array(key, dtype=np.uint32))
        expected = words[np.arange(n), (p % np.uint64(4)).astype(np.int64)]
        np.testing.assert_array_equal(host.raw(key, start, n, round_=5), expected)


# -- every distribution and dtype against the NumPy backend -----------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", DISTS, ids=DIST_IDS)
def test_bit_identical_to_numpy(hostcpp, name, params, dtype):
    for seed, offset in [(0, 0), (2**64 - 1, 3), (987654321, 2**34 - 1001)]:
        both(name, (2001,), seed=seed, stream=seed % 11, offset=offset, dtype=dtype, **params)
    # A region: many runs, unaligned starts.
    both(name, (37, 41), seed=5, index=(slice(3, None, 2), slice(1, 30)), dtype=dtype, **params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, params", [("normal", {}), ("uniform", {})] + [
    ("truncated_normal", dict(alpha=a, beta=b)) for a, b in
    [(-2.0, 2.0), (-1.0, 1.0), (8.0, 9.0), (0.5, 1.5), (1.0, 4.0)]])
def test_many_words(hostcpp, name, params, dtype):
    """Enough values to cover the log, angle and rejection paths widely."""
    both(name, (1 << 18,), seed=2024, offset=12345, dtype=dtype, **params)


def test_golden_worked_example(hostcpp):
    """docs/stream.md, section 11."""
    x = fr.normal(4, seed=0, backend="hostcpp")
    assert [f"{b:08X}" for b in x.view(np.uint32)] == [
        "BFD5CEC5", "BF2B8258", "C00D4833", "3CDAC1CE"]
    t = fr.truncated_normal(8, a=2.0, b=3.0, seed=0, backend="hostcpp")
    assert [f"{b:08X}" for b in t.view(np.uint32)] == [
        "402AEEA8", "400F5659", "40161686", "40127A35", "40280AC8", "4000E9EB", "403AE45F",
        "400B4DD5"]


@pytest.mark.parametrize("order", [0, -1, 1, 7, 1000])
@pytest.mark.parametrize("misalign", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_order_and_alignment_invariance(hostcpp, host, order, misalign, dtype):
    """Items in any order (a grid-stride loop over G threads) and the unaligned store path."""
    host.order, host.misalign = order, misalign
    for name, params in [("normal", {}), ("truncated_normal", dict(alpha=-1.0, beta=1.0)),
                         ("truncated_normal", dict(alpha=2.0, beta=3.0))]:
        both(name, (513,), seed=11, offset=1, dtype=dtype, **params)
        both(name, (9, 13), seed=11, index=(slice(None), slice(2, 11)), dtype=dtype, **params)


def test_regions_equal_whole(hostcpp):
    whole = fr.truncated_normal((64, 96), a=-0.5, b=1.0, seed=4, backend="hostcpp")
    part = fr.truncated_normal((64, 96), a=-0.5, b=1.0, seed=4, backend="hostcpp",
                               index=(slice(5, 60, 3), slice(7, 90)))
    assert_bits_equal(part, whole[5:60:3, 7:90])


def test_rounding_to_16_bits(host):
    """float16 and bfloat16 rounding of the header against NumPy and ml_dtypes."""
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    edges = []
    for v in (0.0, 5.96e-8, 2.98e-8, 6.1e-5, 6.097e-5, 65504.0, 65519.99, 65520.0, 1e30, 3.4e38,
              1.0, 1.0009765625, 1.00048828125, 2049.0):
        b = int(np.float32(v).view(np.uint32))
        edges += [max(b + d, 0) for d in range(-3, 4)]
    edges = np.array(edges, dtype=np.uint32)
    bits = np.concatenate([sample, edges, edges | np.uint32(0x80000000)])
    values = bits.view(np.float32)
    finite = np.isfinite(values)
    bits, values = bits[finite], values[finite]
    half, bf = host.round16(bits)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(half, values.astype(np.float16).view(np.uint16))
        np.testing.assert_array_equal(bf, values.astype(_dtypes.bfloat16()).view(np.uint16))


# -- property test: random shapes, regions, offsets, seeds and parameters -----------------------

MAX_FLAT = 1 << 62
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
offsets = st.one_of(st.just(0), st.integers(0, 2**40), st.integers(2**33 - 3000, 2**33 + 10),
                    st.integers(2**34 - 3000, 2**34 + 10),
                    st.integers(MAX_FLAT - 10_000, MAX_FLAT - 4_001))


@SETTINGS
@given(data=st.data())
def test_property(hostcpp, data):
    shape = data.draw(shapes())
    offset = data.draw(offsets)
    if offset + math.prod(shape) >= MAX_FLAT:
        offset = 0
    kw = dict(index=data.draw(regions(shape)), offset=offset,
              seed=data.draw(st.integers(0, 2**64 - 1)), stream=data.draw(st.integers(0, 99)),
              dtype=data.draw(st.sampled_from(DTYPES)))
    name = data.draw(st.sampled_from(["uniform", "normal", "truncated_normal"]))
    if name == "truncated_normal":
        a = data.draw(st.floats(-12, 12))
        b = a + data.draw(st.floats(1e-4, 20))
        kw.update(mean=data.draw(st.floats(-100, 100)), std=data.draw(st.floats(1e-2, 100)),
                  alpha=a, beta=b)
    elif name == "normal":
        kw.update(mean=data.draw(st.floats(-1e3, 1e3)), std=data.draw(st.floats(0.0, 1e3)))
    else:
        low = data.draw(st.floats(-1e3, 1e3))
        kw.update(low=low, high=low + data.draw(st.floats(0.0, 1e3)))
    try:
        expected = draw(name, shape, backend="numpy", **kw)
    except ValueError as exc:
        with pytest.raises(ValueError, match=None) as info:
            draw(name, shape, backend="hostcpp", **kw)
        assert str(info.value) == str(exc)
        return
    assert_bits_equal(draw(name, shape, backend="hostcpp", **kw), expected)


# -- optimisation level does not matter ---------------------------------------------------------


def test_unoptimised_build_agrees(tmp_path, monkeypatch):
    """-O0 (no inlining, no constant folding) gives the same bits as the NumPy backend."""
    backend = HostBackend(_build(tmp_path, "-O0"))
    original = backends.get
    monkeypatch.setattr(backends, "get", lambda name="auto": backend if name == "hostcpp"
                        else original(name))
    try:
        for dtype in DTYPES:
            for name, params in [("normal", {}), ("uniform", {}),
                                 ("truncated_normal", dict(alpha=-1.0, beta=1.0)),
                                 ("truncated_normal", dict(alpha=8.0, beta=9.0)),
                                 ("truncated_normal", dict(alpha=0.5, beta=1.5))]:
                both(name, (4099,), seed=3, offset=5, dtype=dtype, **params)
    finally:
        backend.close()
