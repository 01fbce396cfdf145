"""Helpers shared by the test modules: data, strategies, comparisons, reference tables."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from fastinit import _dtypes, random as fr

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
ROOT = Path(__file__).resolve().parents[2]  # the checkout
DATA = Path(__file__).resolve().parents[1] / "data"
# CI runs in a fresh clone with shared/ beside the repository.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def read_kat(path=DATA / "philox4x32-10.kat"):
    """Random123's Philox4x32-10 known-answer vectors: (counter, key, expected) word tuples."""
    vectors = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = [int(w, 16) for w in line.split()]
        assert len(words) == 10, line
        vectors.append((tuple(words[:4]), tuple(words[4:6]), tuple(words[6:])))
    return vectors


KAT = read_kat()
KAT_IDS = ["zeros", "ones", "pi"]

DTYPES = ("float16", "bfloat16", "float32", "float64")

# Truncated-normal bounds in standard deviations, one per proposal and edge:
# (name, alpha, beta).
TRUNC_BOUNDS = [
    ("sym_2sigma", -2.0, 2.0),          # normal proposal
    ("sym_1sigma", -1.0, 1.0),          # normal proposal, ~32% rejected
    ("one_sided", 0.0, math.inf),       # normal proposal (contains the mean, width >= 2)
    ("tail_8_9", 8.0, 9.0),             # exponential proposal
    ("tail_neg_inf_6", -math.inf, -6.0),  # exponential, mirrored
    ("narrow_1e-4", 1.0, 1.0 + 1e-4),  # uniform proposal off the mean
    ("narrow_at_0", -5e-5, 5e-5),       # uniform proposal containing the mean
    ("above_mean", 0.5, 1.5),           # uniform proposal, interval not containing the mean
    ("below_mean", -3.0, -1.0),         # exponential proposal, mirrored
    ("wide_off_mean", 1.0, 4.0),        # exponential proposal, alpha = 1
]


def bits(x):
    """Raw bytes of an array, for bit-for-bit comparisons (NaN and -0.0 included)."""
    return np.ascontiguousarray(x).view(np.uint8)


def assert_bits_equal(a, b):
    """``a`` and ``b`` hold the same dtype, shape and bytes; else report where they differ."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return
    ab, bb = bits(a).reshape(a.size, -1), bits(b).reshape(b.size, -1)
    wrong = np.nonzero((ab != bb).any(axis=1))[0]
    if wrong.size:
        af, bf = a.reshape(-1)[wrong[:5]], b.reshape(-1)[wrong[:5]]
        raise AssertionError(f"{wrong.size} of {a.size} elements differ, first at flat "
                             f"indices {wrong[:5].tolist()}: {af} vs {bf}")


def draw(name, shape, *, mean=0.0, std=1.0, alpha=-2.0, beta=2.0, low=0.0, high=1.0,
         **kw):
    """Call the public function ``name``; truncated-normal bounds given in std units."""
    if name == "uniform":
        return fr.uniform(shape, low, high, **kw)
    if name == "normal":
        return fr.normal(shape, mean, std, **kw)
    a, b = mean + alpha * std, mean + beta * std
    return fr.truncated_normal(shape, mean, std, a, b, **kw)


def resolve(dtype):
    return _dtypes.resolve(dtype)


# -- Hypothesis strategies ------------------------------------------------------------------


@st.composite
def shapes(draw_):
    """Shapes of 0 to 3 axes with at most a few thousand elements (zero-size included)."""
    ndim = draw_(st.integers(0, 3))
    side = {0: 1, 1: 3000, 2: 60, 3: 14}[ndim]
    return tuple(draw_(st.integers(0, side)) for _ in range(ndim))


@st.composite
def regions(draw_, shape):
    """None, or a tuple of ints and slices (positive steps) into ``shape``."""
    if not shape or draw_(st.booleans()):
        return None
    index = []
    for n in shape[:draw_(st.integers(1, len(shape)))]:
        kind = draw_(st.sampled_from(["full", "slice", "int"] if n else ["full", "slice"]))
        if kind == "int":
            index.append(draw_(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw_(st.none() | st.integers(-n - 2, n + 2))
            stop = draw_(st.none() | st.integers(-n - 2, n + 2))
            step = draw_(st.none() | st.integers(1, 5))
            index.append(slice(start, stop, step))
        else:
            index.append(slice(None))
    return tuple(index)


# Distributions (name, keywords for draw) run by the backend-parametrised suites
# (the host-compiled CUDA header, the GPU); the truncated ones cover every proposal.
DISTS = [("uniform", {}), ("uniform", dict(low=-3.0, high=5.0)), ("normal", {}),
         ("normal", dict(mean=0.5, std=0.02))] + [
    ("truncated_normal", dict(alpha=a, beta=b)) for _, a, b in TRUNC_BOUNDS]
DIST_IDS = ["uniform01", "uniform_m3_5", "normal01", "normal_small"] + [
    f"trunc_{name}" for name, _, _ in TRUNC_BOUNDS]


def exact_initializers():
    """``(name, initializer)`` pairs whose values are exact on every backend (random draws,
    constants, identity, sparse): the table of the GPU tests."""
    import fastinit.initializers as fi
    return [
        ("random_normal", fi.RandomNormal(0.1, 0.5, seed=3)),
        ("random_uniform", fi.RandomUniform(-2.0, 1.0, seed=3)),
        ("truncated_normal", fi.TruncatedNormal(stddev=0.3, seed=3)),
        ("glorot_uniform", fi.GlorotUniform(seed=3)),
        ("he_normal", fi.HeNormal(seed=3)),
        ("variance_scaling", fi.VarianceScaling(2.0, "fan_avg", "truncated_normal", seed=3)),
        ("zeros", fi.Zeros()),
        ("ones", fi.Ones()),
        ("constant", fi.Constant(0.25)),
        ("identity", fi.Identity(gain=2.0)),
        ("sparse", fi.Sparse(0.3, stddev=1.0, seed=3)),
    ]


def wait_mid_write(proc, out_dir, min_bytes=4 << 20, timeout=60.0):
    """Wait until process ``proc`` has staged a file of ``min_bytes`` in ``out_dir``
    (a checkpoint run caught in the middle of writing); True if it was caught alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        staged = [out_dir / d for d in os.listdir(out_dir)] if out_dir.exists() else []
        for folder in (d for d in staged if d.is_dir() and d.name.startswith(".")):
            for root, _, files in os.walk(folder):  # staged files, at any depth
                for f in files:
                    try:
                        if os.path.getsize(os.path.join(root, f)) > min_bytes:
                            return proc.poll() is None
                    except OSError:  # committed or removed meanwhile
                        pass
        time.sleep(0.005)
    return False


def raw_words(key, start, n, round_=0):
    """Word ``p % 4`` of round ``round_`` of Philox block ``p // 4`` for ``p`` in
    ``[start, start + n)``, from the public Philox function (the reference of the
    backends' raw-word kernels)."""
    p = np.arange(start, start + n, dtype=np.uint64)
    b = p // np.uint64(4)
    counters = np.stack([(b & np.uint64(0xFFFFFFFF)), b >> np.uint64(32),
                         np.full_like(b, round_), np.zeros_like(b)], axis=-1).astype(np.uint32)
    words = fr.philox4x32_10(counters, np.array(key, dtype=np.uint32))
    return words[np.arange(n), (p % np.uint64(4)).astype(np.int64)]


def exit_distributed_worker():
    """End a finished ``torch.multiprocessing.spawn`` worker without the interpreter's
    teardown, where gloo's C++ threads sometimes abort the process ("terminate called
    without an active exception", seen in CI under load). A worker that failed raised
    before calling this."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def start_materialize_command(tmp_path, *options, **popen_kwargs):
    """``fastinit materialize`` of four 32 MiB tensors into ``tmp_path / "out"`` in 1 MiB
    chunks (the spec in ``tmp_path / "spec.json"``), started in the background (to be
    caught mid-write); ``(process, out)``."""
    spec = {"tensors": {f"t{i}": {"shape": [2048, 4096], "initializer": "random_normal"}
                        for i in range(4)}}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fastinit", "materialize", str(spec_path),
                             str(out), "--seed", "1", "--chunk-mb", "1", "--no-progress",
                             *options], **popen_kwargs)
    return proc, out


def checkout_env(env=None):
    """The environment of a fresh interpreter that imports this checkout and the tests'
    helpers, updated with ``env`` (entries set to None are removed)."""
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    full_env.update(env or {})
    return {k: v for k, v in full_env.items() if v is not None}


def run_python(code, *args, env=None, timeout=600, cwd=None):
    """Run ``code`` (dedented; ``sys.argv[1:]`` is ``args``) in a fresh interpreter of
    :func:`checkout_env`; its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          env=checkout_env(env), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def run_in_threads(n, body):
    """``body(t)`` on ``n`` Python threads started together (a barrier); an exception in
    any of them fails the calling test."""
    errors = []
    barrier = threading.Barrier(n)

    def worker(t):
        try:
            barrier.wait()
            body(t)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def spawn_and_join(worker, args, nprocs=2, timeout=120):
    """``torch.multiprocessing.spawn(worker, args, nprocs)``, failing the test when a
    process fails or the whole takes longer than ``timeout`` seconds."""
    import pytest
    import torch.multiprocessing as mp
    ctx = mp.spawn(worker, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the spawned workers timed out")
