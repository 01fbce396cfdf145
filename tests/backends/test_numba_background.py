"""``backend="auto"``: small calls do not wait for a kernel's first compilation.

A call of at most ``SMALL`` elements whose kernel this process has not made
gets the NumPy backend's values (the same bits) while the kernel is made in
the background; larger calls and ``backend="numba"`` wait for it. The
background work must survive what users do: fork at any moment (DataLoader
workers), many Python threads, and an interpreter that exits meanwhile.
Each case runs in a fresh interpreter with an empty cache.
"""

import json
import os

import pytest

from helpers import run_python

pytest.importorskip("numba")

from fastinit.backends import numba as numba_backend  # noqa: E402

SMALL = numba_backend.SMALL


def test_small_call_does_not_wait_for_the_compiler(tmp_path):
    """The first small call returns NumPy's values before Numba is even imported; the
    kernel is made in the background, and later calls use it."""
    out = run_python("""
        import json, sys, time
        import fastinit.random as fr
        from fastinit.backends.numba import _background
        t0 = time.perf_counter()
        first = fr.normal(1000, seed=1)
        numba_at_first = "numba" in sys.modules and "fastinit.backends.numba._kernels" in \\
            sys.modules and hasattr(sys.modules["fastinit.backends.numba._kernels"], "fill_kernel")
        while _background.pending():
            time.sleep(0.01)
        from fastinit.backends.numba import _kernels
        made = (1, False, 0, 0) in _kernels._kernels
        same = first.tobytes() == fr.normal(1000, seed=1, backend="numpy").tobytes()
        again = fr.normal(1000, seed=1)
        print(json.dumps({"same": same, "made": made, "again": again.tobytes() ==
                          first.tobytes(), "numba_at_first": numba_at_first}))
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)})
    result = json.loads(out.splitlines()[-1])
    assert result == {"same": True, "made": True, "again": True, "numba_at_first": False}
    assert list(tmp_path.rglob("*.nbc"))  # cached for the next process


def test_large_calls_and_backend_numba_wait_for_the_kernel(tmp_path):
    out = run_python(f"""
        import numpy as np
        import fastinit.random as fr
        from fastinit.backends.numba import _kernels
        big = fr.uniform({SMALL + 1}, seed=2)                     # auto, large: waits
        a = (0, False, 0, 0) in _kernels._kernels
        small = fr.normal(10, seed=2, dtype="float64", backend="numba")   # numba: waits
        b = (1, True, 0, 0) in _kernels._kernels
        same = np.array_equal(big, fr.uniform({SMALL + 1}, seed=2, backend="numpy"))
        print(a, b, same)
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.split() == ["True", "True", "True"]


def test_exit_while_a_kernel_is_made_leaves_a_whole_cache(tmp_path):
    """A process that exits while its first kernel is made in the background waits for
    that kernel (no compiler runs during shutdown) and leaves valid files: the next
    process loads it. Kernels asked for but not started are not waited for."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    run_python("""
        import sys, time
        import fastinit.random as fr
        fr.truncated_normal(100, seed=0, dtype="float64")
        fr.normal(100, seed=0)
        while "numba.core.compiler" not in sys.modules:  # the first one is under way
            time.sleep(0.001)
    """, env=env)
    out = run_python("""
        import fastinit.random as fr
        from fastinit.backends.numba import _kernels
        fr.truncated_normal(100, seed=0, dtype="float64", backend="numba")
        k = _kernels.fill_kernel(2, True, 0, 0)
        print(sum(k.stats.cache_hits.values()))
    """, env=env)
    assert out.split() == ["1"]
    assert not list(tmp_path.rglob("*.tmp.*"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_while_kernels_are_made_in_the_background(tmp_path):
    """Children forked at many moments of a background compilation (during Numba's
    import, the compile itself, between kernels) each compute the right values, small
    and large, and exit; the parent's kernels are made all the same."""
    out = run_python("""
        import os, sys, time
        import numpy as np
        import fastinit.random as fr
        from fastinit.backends.numba import _background
        want_small = fr.normal(1000, seed=5, dtype="float16", backend="numpy")
        want_large = fr.uniform(1_100_000, seed=6, backend="numpy")
        fr.normal(1000, seed=5, dtype="float16")   # starts the background work
        fr.uniform(1000, seed=6)
        statuses = []
        for delay in (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5):
            time.sleep(delay)
            pid = os.fork()
            if pid == 0:
                ok = (fr.normal(1000, seed=5, dtype="float16").tobytes() == want_small.tobytes()
                      and np.array_equal(fr.uniform(1_100_000, seed=6), want_large))
                os._exit(0 if ok else 3)
            statuses.append(os.waitpid(pid, 0)[1])
        while _background.pending():
            time.sleep(0.01)
        print(statuses, fr.normal(1000, seed=5, dtype="float16").tobytes()
              == want_small.tobytes())
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)}, timeout=900)
    assert out.strip() == "[0, 0, 0, 0, 0, 0, 0, 0] True", out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_waits_for_a_kernel_that_needs_logging():
    """A fork waits for the kernel being made; the compiler logs, and logging's own fork
    hook takes logging's lock. fastinit's hook must run first (be registered after
    logging's), or the fork would hold that lock while waiting for a compile that needs
    it: a deadlock (seen when Numba, hence logging, was first imported by the worker)."""
    out = run_python("""
        import os, signal, sys, threading
        assert "logging" not in sys.modules
        from fastinit.backends.numba import _background
        signal.alarm(60)                   # a deadlock fails the test instead of hanging it
        holding, go = threading.Event(), threading.Event()

        def worker():                      # as the worker: Numba (and logging) imported now
            import logging
            with _background._making:      # a kernel being made...
                holding.set()
                go.wait()
                logging.getLogger("fastinit-test-fresh").isEnabledFor(10)  # takes its lock

        t = threading.Thread(target=worker)
        t.start()
        holding.wait()
        threading.Timer(0.5, go.set).start()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        t.join()
    """, timeout=120)
    assert out.split() == ["0"]


def test_many_threads_on_a_cold_cache(tmp_path):
    """16 threads, each calling small and large fills of several dtypes at once on an
    empty cache: every value is NumPy's, and every kernel is made once."""
    out = run_python("""
        import threading, time
        import numpy as np
        import fastinit.random as fr
        from fastinit.backends.numba import _background, _kernels
        from helpers import run_in_threads
        calls = [("normal", "float32", 500), ("uniform", "bfloat16", 700),
                 ("truncated_normal", "float64", 900), ("normal", "float16", 1_100_000)]
        want = {c: getattr(fr, c[0])(c[2], seed=9, dtype=c[1], backend="numpy") for c in calls}
        bad = []

        def body(t):
            for i in range(4):
                c = calls[(t + i) % len(calls)]
                got = getattr(fr, c[0])(c[2], seed=9, dtype=c[1])
                if got.tobytes() != want[c].tobytes():
                    bad.append(c)

        run_in_threads(16, body)
        while _background.pending():
            time.sleep(0.01)
        misses = [sum(k.stats.cache_misses.values()) for k in _kernels._kernels.values()]
        print(len(bad), len(misses), set(misses))
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)}, timeout=900)
    assert out.split() == ["0", "4", "{1}"], out


def test_auto_without_numba_is_the_numpy_backend():
    """Where Numba is not installed, "auto" is the NumPy backend itself."""
    out = run_python("""
        import sys
        sys.modules["numba"] = None          # as if not installed
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "numba" else real(name, *a)
        import fastinit.backends as backends
        print(backends.get("auto").__name__)
    """)
    assert out.split() == ["fastinit.backends.numpy_backend"]
