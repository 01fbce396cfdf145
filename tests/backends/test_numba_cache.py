"""The Numba kernels' disk cache under damage, stopped processes and odd environments.

A damaged cache file (truncated, empty, a flipped bit) is read as absent and
replaced; a valid cached kernel loads without taking any lock, and a stopped
process holding a kernel's lock delays a cold one by ``_lock.STALLED``
seconds; ``NUMBA_DISABLE_JIT=1`` computes with NumPy; no writable cache is
one warning per process and a failing ``fastinit warmup``. Process-level
state matters here, so every case runs in fresh interpreters.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import checkout_env, run_python

pytest.importorskip("numba")

from fastinit.backends.numba import _spec, _warmup  # noqa: E402

# One kernel, through backend="numba": its values against NumPy's, and whether it was
# loaded from the cache (a hit) or compiled (a miss).
PROBE = """
    import json, numpy as np
    import fastinit.random as fr
    from fastinit.backends.numba import _cache, _kernels
    got = fr.normal(10_007, 0.5, 2.0, seed=1, backend="numba")
    want = fr.normal(10_007, 0.5, 2.0, seed=1, backend="numpy")
    k = _kernels.fill_kernel(1, False, 0)
    print(json.dumps({"same": bool((got == want).all()), "cache_dir": _cache.cache_dir(),
                      "hits": sum(k.stats.cache_hits.values()),
                      "misses": sum(k.stats.cache_misses.values())}))
"""
KERNEL = "fill_normal_f32_native"


def _probe(env, prelude="", timeout=600):
    code = textwrap.dedent(prelude) + textwrap.dedent(PROBE)
    return json.loads(run_python(code, env=env, timeout=timeout).splitlines()[-1])


def _files(cache_dir, suffix):
    found = sorted(Path(cache_dir).glob(f"fastinit.{KERNEL}-*{suffix}"))
    assert len(found) == 1, found
    return found[0]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x10  # inside the machine code of a data file
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache directory holding the normal float32 kernel, compiled once."""
    root = tmp_path_factory.mktemp("warm")
    first = _probe({"NUMBA_CACHE_DIR": str(root)})
    assert first["same"] and first["misses"] == 1
    return root, Path(first["cache_dir"])


def _copy_of(warm_cache, tmp_path):
    import shutil
    root, cache_dir = warm_cache
    shutil.copytree(root, tmp_path / "cache")
    return tmp_path / "cache", tmp_path / "cache" / cache_dir.relative_to(root)


@pytest.mark.parametrize("damage", [_truncate, _empty, _flip_a_bit],
                         ids=["truncated", "empty", "bit_flipped"])
@pytest.mark.parametrize("suffix", [".nbc", ".nbi"], ids=["data", "index"])
def test_damaged_cache_file_is_recompiled_and_replaced(warm_cache, tmp_path, damage, suffix):
    """Each damage of each file: the next process computes the right values (it compiles
    the kernel again) and replaces the file atomically; the process after it loads it."""
    root, cache_dir = _copy_of(warm_cache, tmp_path)
    damage(_files(cache_dir, suffix))
    env = {"NUMBA_CACHE_DIR": str(root)}
    repaired = _probe(env)
    assert repaired["same"] and repaired["misses"] == 1
    after = _probe(env)
    assert after["same"] and after["hits"] == 1 and after["misses"] == 0
    assert not list(cache_dir.glob("*.tmp.*"))


def test_cache_files_carry_a_checksum(warm_cache):
    """Both files begin with fastinit's header and a sha256 of the rest."""
    import hashlib
    from fastinit.backends.numba import _cache
    _, cache_dir = warm_cache
    for suffix in (".nbc", ".nbi"):
        blob = _files(cache_dir, suffix).read_bytes()
        head = len(_cache._MAGIC)
        assert blob[:head] == _cache._MAGIC
        assert blob[head:head + 32] == hashlib.sha256(blob[head + 32:]).digest()


# -- a stopped process that holds a kernel's lock ------------------------------------------

HOLD = """
    import os, signal, sys
    from fastinit.backends.numba import _cache, _lock
    path = os.path.join(_cache.cache_dir(), f"{sys.argv[1]}-{_cache.cpu_tag()}.lock")
    with _lock.hold(path) as held:
        print("held" if held else "not held", flush=True)
        if sys.argv[2] == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        else:
            import time
            time.sleep(float(sys.argv[2]))
"""


def _holder(env, how):
    """A process holding the kernel's lock: stopped (SIGSTOP) or alive for ``how`` seconds."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), KERNEL, how],
                            env=checkout_env(env), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _stop(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP on this platform")
def test_stopped_lock_holder_does_not_delay_a_warm_cache(warm_cache, tmp_path):
    """A valid cached kernel is loaded without taking its lock (once: 120 s of waiting)."""
    root, _ = _copy_of(warm_cache, tmp_path)
    env = {"NUMBA_CACHE_DIR": str(root)}
    holder = _holder(env, "stop")
    try:
        t0 = time.monotonic()
        out = _probe(env, timeout=300)
        elapsed = time.monotonic() - t0
    finally:
        _stop(holder)
    assert out["same"] and out["hits"] == 1
    assert elapsed < 60, elapsed


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP on this platform")
def test_stopped_lock_holder_delays_a_cold_cache_by_the_stall_time_only(tmp_path):
    """With no cached kernel, the waiter sees the holder's heartbeat stop, gives up after
    STALLED seconds and compiles the kernel itself (and caches it)."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    holder = _holder(env, "stop")
    try:
        t0 = time.monotonic()
        out = _probe(env, prelude="""
            from fastinit.backends.numba import _lock
            _lock.STALLED = 2.0
        """, timeout=300)
        elapsed = time.monotonic() - t0
    finally:
        _stop(holder)
    assert out["same"] and out["misses"] == 1
    assert elapsed < 60, elapsed  # once: 120 s
    assert _probe(env)["hits"] == 1


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP on this platform")
def test_a_live_lock_holder_is_waited_for(tmp_path):
    """A holder that runs (its heartbeat going) keeps the waiter waiting past STALLED: the
    heartbeat, not the waiting time, tells a stopped holder from a slow one."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    holder = _holder(env, "6")
    try:
        out = run_python("""
            import os, time
            from fastinit.backends.numba import _cache, _lock
            _lock.STALLED = 1.5
            path = os.path.join(_cache.cache_dir(), f"%s-{_cache.cpu_tag()}.lock")
            t0 = time.monotonic()
            with _lock.hold(path) as held:
                print(held, time.monotonic() - t0)
        """ % KERNEL, env=env, timeout=300)
    finally:
        holder.wait(timeout=120)
    held, waited = out.split()
    assert held == "True" and float(waited) > 3.0, out


# -- odd environments ----------------------------------------------------------------------


def test_numba_disable_jit_computes_with_numpy(tmp_path):
    """NUMBA_DISABLE_JIT=1: every backend and front end works, with NumPy's values (once:
    AttributeError on every call); warm-up says it cannot compile and exits 1."""
    env = {"NUMBA_DISABLE_JIT": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    out = run_python("""
        import numpy as np
        import fastinit.random as fr, fastinit.initializers as fi
        same = []
        for backend in ("numba", "auto"):
            for dtype in ("float32", "bfloat16", "float64"):
                a = fr.truncated_normal((300, 900), seed=1, dtype=dtype, backend=backend)
                b = fr.truncated_normal((300, 900), seed=1, dtype=dtype, backend="numpy")
                same.append(a.tobytes() == b.tobytes())
            out = np.empty((900, 300), np.float32).T   # strided: the tiled copy's path
            fr.uniform(seed=2, out=out, backend=backend)
            same.append(np.array_equal(out, fr.uniform((300, 900), seed=2, backend="numpy")))
        w = fi.HeNormal(seed=0)((64, 32))
        same.append(np.array_equal(w, fi.HeNormal(seed=0)((64, 32), backend="numpy")))
        print(all(same), same)
    """, env=env)
    assert out.split()[0] == "True", out
    proc = subprocess.run([sys.executable, "-m", "fastinit", "warmup", "--distributions",
                           "normal", "--dtypes", "float32"], env=checkout_env(env),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "NUMBA_DISABLE_JIT" in proc.stderr, proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc as a read-only place")
def test_no_writable_cache_is_one_warning_and_a_failing_warmup(tmp_path):
    """Nothing writable: one KernelCacheWarning per process however many kernels it
    compiles and calls it makes (once: silence), and `fastinit warmup` exits 1."""
    env = {"NUMBA_CACHE_DIR": None, "XDG_CACHE_HOME": "/proc/no-xdg",
           "HOME": "/proc/no-home"}
    prelude = """
        from fastinit.backends.numba import _cache
        _cache.IN_TREE_ROOT = "/proc/fastinit-read-only/__pycache__"
    """
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(prelude) + textwrap.dedent("""
            import fastinit.random as fr
            for i in range(3):
                fr.normal(1000, seed=i, backend="numba")
                fr.uniform(1000, seed=i, dtype="float64", backend="numba")
            print(_cache.cache_dir())
        """)], env=checkout_env(env), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["None"]
    assert proc.stderr.count("KernelCacheWarning") == 1, proc.stderr
    assert "NUMBA_CACHE_DIR" in proc.stderr
    warm = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent("""
            import sys
            from fastinit.backends.numba import _warmup
            class Args: all, distributions, dtypes, processes, quiet = False, "uniform", \\
                "float16", 2, True
            sys.exit(_warmup.main(Args))
        """)], env=checkout_env(env), capture_output=True, text=True, timeout=600)
    assert warm.returncode == 1, warm.stderr[-3000:]
    assert "none cached" in warm.stderr


# -- warm-up processes ------------------------------------------------------------------------


def test_warmup_never_starts_more_processes_than_it_helps():
    """Helpers: at most processes - 1, cores - 1, and one per two kernels to compile (a
    helper's start-up costs about a compilation); never one for a single kernel."""
    cores = os.cpu_count() or 1
    for processes in (1, 2, 8, 64):
        for uncached in (0, 1, 2, 3, 4, 7, 23):
            helpers = _warmup.helper_count(processes, uncached)
            assert 0 <= helpers <= processes - 1
            assert helpers + 1 <= max(1, uncached // 2) and helpers <= max(0, cores - 1)
    assert _warmup.helper_count(8, 1) == 0 and _warmup.helper_count(8, 3) == 0


def test_warmup_names_a_dtype_or_refuses_what_names_nothing():
    """dtypes= takes one dtype as well as a sequence of them (a NumPy array of names too), as
    its annotation says; a value that is neither is a TypeError naming it, not a bare "'int'
    object is not iterable" (nor an array's ambiguous truth value)."""
    floats = _warmup.plan(["uniform"], ["float32"])
    assert _warmup.plan(["uniform"], np.float32) == floats
    assert _warmup.plan("uniform", np.dtype("float32")) == floats
    assert _warmup.plan(["uniform"], np.array(["float32", "float16"])) == \
        _warmup.plan(["uniform"], ["float32", "float16"])
    assert _warmup.plan(("normal", "uniform"), "all") == _warmup.plan(["normal", "uniform"])
    for kwargs, needle in [(dict(dtypes=5), "dtypes=5"), (dict(distributions=5),
                                                          "distributions=5")]:
        with pytest.raises(TypeError, match=re.escape(needle)):
            _warmup.plan(**kwargs)
    with pytest.raises(ValueError, match=re.escape("distributions=[5]")):
        _warmup.plan([5])


def test_warmup_with_helpers_compiles_each_kernel_once(tmp_path):
    """-j 8 on a cold cache: the kernels are compiled once each, by this process or a
    helper, and all loaded here; -j 8 on the now warm cache starts no helper."""
    env = checkout_env({"NUMBA_CACHE_DIR": str(tmp_path)})
    args = ["--distributions", "uniform,normal", "--dtypes", "float32,bfloat16", "-j", "8"]
    cold = subprocess.run([sys.executable, "-m", "fastinit", "warmup", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert cold.returncode == 0, cold.stderr[-3000:]
    names = {_spec.job_name(j) for j in _warmup.plan(["uniform", "normal"],
                                                      ["float32", "bfloat16"])}
    assert "6 kernels ready" in cold.stdout
    helped = [line.split()[0] for line in cold.stdout.splitlines() if "in a helper" in line]
    assert len(helped) == len(set(helped)) and set(helped) <= names
    if (os.cpu_count() or 1) == 1:
        assert not helped
    warm = subprocess.run([sys.executable, "-m", "fastinit", "warmup", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0 and "in a helper" not in warm.stdout, warm.stdout
