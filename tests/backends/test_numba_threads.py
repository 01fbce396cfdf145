"""The Numba backend's threads, processes and disk cache.

fastinit runs its serial, GIL-free kernels on its own small thread pool
(``fastinit.set_num_threads``), never on Numba's threading layer; kernels are
compiled per specialisation and cached on disk in a directory named after a
hash of ``stream.py`` and the kernel sources. Where process-level state
matters (fork, environment, cache directories, first compilation) the tests
run in fresh interpreters.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastinit
import fastinit.random as fr
from fastinit import stream

from helpers import DTYPES, ROOT, assert_bits_equal, checkout_env, draw, run_in_threads, \
    run_python

numba = pytest.importorskip("numba")

from fastinit.backends.numba import _cache, _jit, _math, _pool  # noqa: E402

CASES = [
    ("uniform", dict(low=-2.0, high=3.0)),
    ("normal", dict(mean=0.5, std=2.0)),
    ("truncated_normal", dict(mean=0.5, std=2.0, alpha=-1.0, beta=1.0)),   # normal proposal
    ("truncated_normal", dict(mean=0.0, std=1.0, alpha=8.0, beta=9.0)),    # exponential
    ("truncated_normal", dict(mean=0.0, std=1.0, alpha=1.0, beta=1.5)),    # uniform
]
CASE_IDS = ["uniform", "normal", "trunc_normal", "trunc_exponential", "trunc_uniform"]


# -- the thread count ---------------------------------------------------------------


def test_set_and_get_num_threads(cpu_threads):
    cpu_threads(3)
    assert fastinit.get_num_threads() == 3
    cpu_threads(None)
    assert fastinit.get_num_threads() >= 1
    for bad in (0, -1):
        with pytest.raises(ValueError, match="Received: n="):
            fastinit.set_num_threads(bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="Received: n="):
            fastinit.set_num_threads(bad)


def test_default_thread_count_and_numba_setting():
    """Default: NUMBA_NUM_THREADS, else the CPUs of the process; numba.set_num_threads is
    honoured once the user started Numba's threading layer, which fastinit never starts."""
    out = json.loads(run_python("""
        import json, os, sys
        import fastinit, fastinit.random as fr
        fr.normal(200_000, seed=0, backend="numba")   # uses the pool, not Numba's layer
        parallel = sys.modules.get("numba.np.ufunc.parallel")
        started = bool(parallel is not None and parallel._is_initialized)
        before = fastinit.get_num_threads()
        import numba
        numba.set_num_threads(1)
        cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
        print(json.dumps([started, before, fastinit.get_num_threads(), cpus]))
    """, env={"NUMBA_NUM_THREADS": None}).splitlines()[-1])
    started, before, after, cpus = out
    assert not started
    assert before == cpus
    assert after == 1
    out = run_python("import fastinit; print(fastinit.get_num_threads())",
                     env={"NUMBA_NUM_THREADS": "3"})
    assert int(out) == 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_thread_count_invariance(name, params, dtype, cpu_threads):
    """1, 2 and 3 threads, several chunks per thread, runs, regions and a strided output."""
    shape = (7, 5, 9001)
    index = (slice(None), slice(1, None, 2), slice(3, 8999))
    results = []
    for n in (1, 2, 3):
        cpu_threads(n)
        whole = draw(name, shape, **params, dtype=dtype, backend="numba", seed=5)
        part = draw(name, shape, **params, dtype=dtype, backend="numba", seed=5, index=index)
        strided = np.empty((300, 2001), whole.dtype).T  # the tiled 2-D copy, on the pool
        draw(name, None, **params, dtype=None, backend="numba", seed=5, out=strided)
        results.append((whole, part, np.ascontiguousarray(strided)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_bits_equal(a, b)
    assert_bits_equal(results[0][0][index], results[0][1])
    assert_bits_equal(results[0][2], draw(name, (2001, 300), **params, dtype=dtype,
                                          backend="numpy", seed=5))


def test_concurrent_python_threads(cpu_threads):
    """8 Python threads calling at once (small calls inline, large ones on the pool) get
    what serial calls get."""
    cpu_threads(2)
    jobs = [("normal", dict(mean=0.0, std=1.0), n, "float32", s)
            for s, n in enumerate((1000, 300_000, 1_000_003, 70_000))]
    jobs += [("truncated_normal", dict(mean=0.0, std=1.0, alpha=-1.0, beta=1.0), 400_001,
              "float64", 9),
             ("uniform", dict(low=0.0, high=1.0), 500_000, "bfloat16", 4),
             ("normal", dict(mean=1.0, std=2.0), 250_000, "float16", 2),
             ("truncated_normal", dict(mean=0.0, std=1.0, alpha=8.0, beta=9.0), 123_457,
              "float32", 1)]
    expected = [draw(n, size, **p, dtype=dt, seed=s, backend="numba")
                for n, p, size, dt, s in jobs]
    results = [[None] * len(jobs) for _ in range(8)]

    def body(t):
        for rep in range(3):
            for j in range(len(jobs)):
                k = (j + t + rep) % len(jobs)
                n, p, size, dt, s = jobs[k]
                results[t][k] = draw(n, size, **p, dtype=dt, seed=s, backend="numba")

    run_in_threads(8, body)
    for t in range(8):
        for k in range(len(jobs)):
            assert_bits_equal(results[t][k], expected[k])


def test_pool_runs_every_chunk_once_and_reraises():
    hits = np.zeros(1000, np.int64)

    def work(a, b):
        hits[a:b] += 1

    _pool.run(work, 1000, 3, 7)
    assert (hits == 1).all()

    def failing(a, b):
        if a <= 500 < b:
            raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        _pool.run(failing, 1000, 3, 10)


def test_small_calls_run_inline():
    out = run_python("""
        import fastinit, fastinit.random as fr
        from fastinit.backends.numba import _pool
        fastinit.set_num_threads(2)
        fr.normal(1000, seed=0, backend="numba")
        small = len(_pool.pool_threads())
        fr.normal(2_000_000, seed=0, backend="numba")
        print(small, len(_pool.pool_threads()))
    """)
    assert out.split() == ["0", "1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_after_use():
    """A parent that used the pool forks (multiprocessing 'fork'); the children compute
    the same values, on their own pool, and the parent still works."""
    out = run_python("""
        import multiprocessing as mp
        import numpy as np
        import fastinit, fastinit.random as fr

        def child(seed):
            fastinit.set_num_threads(2)
            return fr.normal(1_000_001, seed=seed, backend="numba").tobytes()

        if __name__ == "__main__":
            fastinit.set_num_threads(2)
            parent = [fr.normal(1_000_001, seed=s, backend="numba") for s in range(3)]
            with mp.get_context("fork").Pool(2) as pool:
                children = pool.map(child, range(3))
            assert all(p.tobytes() == c for p, c in zip(parent, children))
            again = fr.normal(1_000_001, seed=1, backend="numba")
            assert again.tobytes() == parent[1].tobytes()
            print("ok")
    """)
    assert out.strip().endswith("ok")


# -- the kernels' Philox ----------------------------------------------------------------


def test_philox_words_equals_stream_philox_block():
    rng = np.random.default_rng(3)
    blocks = np.concatenate([np.array([0, 1, 2**32 - 1, 2**32, 2**62 + 12345], np.int64),
                             rng.integers(0, 2**62, 2000, dtype=np.int64)])
    rounds = rng.integers(0, 2**9, blocks.size).astype(np.int64)
    key = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    schedule = stream.key_schedule(*key)
    keys64 = tuple(int(k) for k in schedule)

    @numba.njit
    def words(blocks, rounds, keys, out):
        for i in range(blocks.size):
            w = _math.philox_words(blocks[i], rounds[i], keys)
            for j in range(4):
                out[i, j] = w[j]

    got = np.empty((blocks.size, 4), np.uint32)
    words(blocks, rounds, keys64, got)
    b = blocks.astype(np.uint64)
    want = stream.philox_block((b & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                               (b >> np.uint64(32)).astype(np.uint32),
                               rounds.astype(np.uint32), np.zeros(blocks.size, np.uint32),
                               schedule[:, None])
    np.testing.assert_array_equal(got, np.stack(want, axis=-1))


# -- the disk cache ---------------------------------------------------------------------

PROBE = """
    import hashlib, json, numpy as np
    import fastinit.random as fr
    from fastinit.backends.numba import _cache, _kernels
    values = [fr.normal(10_007, seed=1, backend="numba"),
              fr.truncated_normal(10_007, seed=2, dtype="float64", backend="numba"),
              fr.uniform(10_007, seed=3, dtype="bfloat16", backend="numba")]
    kernels = [_kernels.fill_kernel(1, False, 0), _kernels.fill_kernel(2, True, 0, 0),
               _kernels.fill_kernel(0, False, 2)]
    print(json.dumps({
        "digest": hashlib.sha256(b"".join(v.tobytes() for v in values)).hexdigest(),
        "cache_dir": _cache.cache_dir(),
        "hits": [sum(k.stats.cache_hits.values()) for k in kernels],
        "misses": [sum(k.stats.cache_misses.values()) for k in kernels]}))
"""


def _probe(env, **kw):
    return json.loads(run_python(PROBE, env=env, **kw).splitlines()[-1])


def _expected_digest():
    import hashlib
    values = [fr.normal(10_007, seed=1, backend="numpy"),
              fr.truncated_normal(10_007, seed=2, dtype="float64", backend="numpy"),
              fr.uniform(10_007, seed=3, dtype="bfloat16", backend="numpy")]
    return hashlib.sha256(b"".join(v.tobytes() for v in values)).hexdigest()


def test_cache_dir_from_numba_cache_dir_then_warm(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    cold = _probe(env)
    warm = _probe(env)
    assert cold["digest"] == warm["digest"] == _expected_digest()
    assert Path(cold["cache_dir"]).parent == tmp_path / "fastinit"
    assert Path(cold["cache_dir"]).name == "stamp-" + _cache.source_stamp()[:24]
    assert cold["hits"] == [0, 0, 0] and warm["hits"] == [1, 1, 1]
    # one index file per kernel, holding one entry
    assert len(list(Path(cold["cache_dir"]).glob("*.nbi"))) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc as a read-only place")
def test_cache_falls_back_to_the_user_cache_dir(tmp_path):
    """No NUMBA_CACHE_DIR and a read-only install (the in-tree __pycache__ cannot be
    written; simulated, as root ignores permissions): the user cache directory."""
    readonly = "/proc/fastinit-read-only/__pycache__"  # no directory can be made there
    prelude = f"""
        from fastinit.backends.numba import _cache
        _cache.IN_TREE_ROOT = {readonly!r}
    """
    env = {"NUMBA_CACHE_DIR": None, "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "HOME": str(tmp_path / "home")}
    code = textwrap.dedent(prelude) + textwrap.dedent(PROBE)
    cold = json.loads(run_python(code, env=env).splitlines()[-1])
    warm = json.loads(run_python(code, env=env).splitlines()[-1])
    assert cold["digest"] == warm["digest"] == _expected_digest()
    assert Path(cold["cache_dir"]).parent == tmp_path / "xdg" / "fastinit" / "numba"
    assert warm["hits"] == [1, 1, 1]
    # nothing writable at all: compiled in every process, not cached, same values
    env["XDG_CACHE_HOME"] = env["HOME"] = "/proc/fastinit-no-home"
    none = json.loads(run_python(code, env=env).splitlines()[-1])
    assert none["cache_dir"] is None and none["digest"] == cold["digest"]
    assert none["hits"] == [0, 0, 0]


def test_concurrent_cold_processes_share_one_cache(tmp_path):
    """4 processes start at once on an empty cache: each kernel is compiled by one of
    them and loaded by the others (they take turns on a lock file); the values agree,
    and a 5th process loads every kernel from the cache."""
    env = checkout_env({"NUMBA_CACHE_DIR": str(tmp_path)})
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(PROBE)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.splitlines()[-1]))
    assert {o["digest"] for o in outs} == {_expected_digest()}
    assert [sum(o["misses"][k] for o in outs) for k in range(3)] == [1, 1, 1]
    assert [sum(o["hits"][k] for o in outs) for k in range(3)] == [3, 3, 3]
    after = _probe({"NUMBA_CACHE_DIR": str(tmp_path)})
    assert after["digest"] == _expected_digest()
    assert after["hits"] == [1, 1, 1]
    cache = Path(outs[0]["cache_dir"])
    assert not list(cache.glob("*.tmp.*"))  # no half-written file left behind
    assert len(list(cache.glob("*.nbi"))) == 3 and len(list(cache.glob("*.nbc"))) == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_while_holding_the_compile_lock(tmp_path):
    """A child forked while the parent holds a kernel's compile lock does not keep it
    (its copy of the lock file would hold the lock for the child's whole life): once
    the parent releases it, the child takes it at once."""
    out = run_python("""
        import os, time
        from fastinit.backends.numba import _cache, _lock
        path = os.path.join(_cache.cache_dir(), "probe.lock")
        with _lock.hold(path):
            pid = os.fork()
            if pid == 0:
                t0 = time.monotonic()
                with _lock.hold(path):
                    pass
                os._exit(0 if time.monotonic() - t0 < 10 else 3)
            time.sleep(0.5)
        status = os.waitpid(pid, 0)[1]
        print(status)
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)}, timeout=200)
    assert out.split()[-1] == "0"


def test_kernels_cached_by_different_processes_load_together(tmp_path):
    """Each kernel compiled in a fresh process of its own, then all loaded into one:
    every one computes its own values (Numba's names of compiled functions carry a
    per-process counter; kernels must not share a name for different code)."""
    calls = ["fr.uniform(1001, -1.0, 2.0, seed=3, offset=1{b})",
             "fr.normal(1001, 0.5, 2.0, seed=3, offset=2{b})",
             "fr.truncated_normal(1001, 0.0, 1.0, -1.0, 1.0, seed=3, offset=3{b})",
             "fr.truncated_normal(1001, 0.0, 1.0, 1.0, 1.0001, seed=3{b})",
             "fr.truncated_normal(1001, 0.0, 1.0, 8.0, 9.0, seed=3{b})",
             "fr.uniform(1001, seed=3, dtype='bfloat16'{b})",
             "fr.normal(1001, seed=3, dtype='float64'{b})",
             "fr.truncated_normal(1001, seed=3, dtype='float16'{b})"]
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    for call in calls:  # one process per kernel: the same sequence of compilations
        run_python(f"import fastinit.random as fr; {call.format(b='')}", env=env)
    lines = [f"print(({c.format(b='')}).tobytes() == ({c.format(b=', backend=NUMPY')}).tobytes())"
             for c in calls]
    out = run_python("\n".join(["import fastinit.random as fr", "NUMPY = 'numpy'"] + lines),
                     env=env)
    assert out.split() == ["True"] * len(calls)


def test_stale_guard_changed_stream_never_runs_old_code(tmp_path):
    """A copy of fastinit whose stream.py changes (a different uniform scale) compiles
    anew against the same cache: its values follow the new stream.py."""
    pkg = tmp_path / "src"
    shutil.copytree(ROOT / "fastinit", pkg / "fastinit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(pkg)}
    code = """
        import fastinit.random as fr
        from fastinit.backends.numba import _cache
        a = fr.uniform(1000, seed=7, backend="numba")
        b = fr.uniform(1000, seed=7, backend="numpy")
        print((a == b).all(), float(a.max()), _cache.cache_dir())
    """

    def run():
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                              env=dict(os.environ, **env), capture_output=True, text=True,
                              timeout=600, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr[-3000:]
        same, top, where = proc.stdout.split()
        return same == "True", float(top), where

    same1, top1, dir1 = run()
    source = pkg / "fastinit" / "stream.py"
    text = source.read_text()
    assert "_F32_2M24 = _F32(2.0**-24)" in text
    source.write_text(text.replace("_F32_2M24 = _F32(2.0**-24)", "_F32_2M24 = _F32(2.0**-25)"))
    same2, top2, dir2 = run()
    assert same1 and same2
    assert top1 > 0.5 and top2 < 0.5  # the new scale: values in [0, 0.5)
    assert dir1 != dir2 and Path(dir1).parent == Path(dir2).parent


def test_source_stamp_covers_stream_and_kernels():
    files = {p.name for p in Path(_jit.__file__).parent.glob("*.py")}
    assert {"_kernels.py", "_math.py", "_jit.py", "_cache.py", "_spec.py"} <= files
    assert len(_cache.source_stamp()) == 64


# -- warm-up -------------------------------------------------------------------------------


def test_warmup_plan_and_validation():
    from fastinit.backends.numba import _spec, _warmup
    names = {_spec.job_name(j) for j in _warmup.plan()}
    assert len(names) == 23  # 3 + 3 + 5 + 5 + ... every kernel, and 3 copies
    assert {"fill_normal_f32_native", "fill_truncnorm_f64_native_exponential",
            "fill_uniform_f32_bf16", "copy_2d_u16"} <= names
    assert {_spec.job_name(j) for j in _warmup.plan("normal", "float32")} == {
        "fill_normal_f32_native", "copy_2d_u32"}
    with pytest.raises(ValueError, match="Received: distributions="):
        fastinit.warmup("poisson")
    with pytest.raises(TypeError, match="Unsupported dtype"):
        fastinit.warmup("normal", "int8")


def test_warmup_fills_the_cache(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    out = run_python("""
        import fastinit
        print(sorted(fastinit.warmup(["normal", "truncated_normal"], ["float64"])))
    """, env=env)
    assert "fill_truncnorm_f64_native_uniform" in out
    out = run_python("""
        import fastinit.random as fr
        from fastinit.backends.numba import _kernels
        fr.normal(10, seed=0, dtype="float64", backend="numba")
        k = _kernels.fill_kernel(1, True, 0)
        print(sum(k.stats.cache_hits.values()))
    """, env=env)
    assert out.strip() == "1"


def test_warmup_command(tmp_path):
    env = checkout_env({"NUMBA_CACHE_DIR": str(tmp_path)})

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fastinit", "warmup", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    ok = cli("--distributions", "uniform", "--dtypes", "float16")
    assert ok.returncode == 0, ok.stderr
    assert "fill_uniform_f32_f16" in ok.stdout and "copy_2d_u16" in ok.stdout
    assert "2 kernels ready" in ok.stdout and str(tmp_path) in ok.stdout
    for bad in (["--distributions", "poisson"], ["--dtypes", "int8"], ["-j", "0"]):
        proc = cli(*bad)
        assert proc.returncode == 2 and "Received" in proc.stderr, (bad, proc.stderr)
