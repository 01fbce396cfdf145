"""Item 5 of the adversarial report: forked children and many Python threads.

Before fastinit ran its kernels on its own pool, a child forked after the
parent had used fastinit died ("fork() called from a process already using
GNU OpenMP") and the pool hung; with Numba's workqueue layer, threads calling
at once aborted the process. Each scenario runs in a fresh interpreter with
a timeout, so a hang or an abort fails the test instead of the run.
"""

import os

import numpy as np
import pytest

import fastinit
import fastinit.initializers as fi
import fastinit.random as fr

from helpers import assert_bits_equal, run_in_threads, run_python

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


@needs_fork
def test_5_fork_pool_after_the_parent_used_fastinit():
    out = run_python("""
        import multiprocessing as mp
        import fastinit, fastinit.random as fr, fastinit.initializers as fi

        def child(seed):
            a = fr.normal(1_000_003, seed=seed)
            b = fi.TruncatedNormal(seed=seed)((1000, 777))
            return a.tobytes() + b.tobytes()

        if __name__ == "__main__":
            fastinit.set_num_threads(2)
            parent = [child(s) for s in range(4)]   # the pool threads are running now
            with mp.get_context("fork").Pool(2) as pool:
                assert pool.map(child, range(4)) == parent
            print("ok")
    """)
    assert out.split()[-1] == "ok"


@needs_fork
def test_5_fork_while_another_thread_is_filling():
    """A fork that lands while a parent thread is mid-fill (pool and kernel-table locks
    possibly held): the child still fills, on a pool of its own."""
    out = run_python("""
        import os, threading
        import fastinit, fastinit.random as fr

        fastinit.set_num_threads(2)
        want = fr.uniform(2_000_000, seed=7).tobytes()
        stop = threading.Event()

        def busy():
            while not stop.is_set():
                fr.normal(3_000_000, seed=1)

        t = threading.Thread(target=busy)
        t.start()
        statuses = []
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                ok = fr.uniform(2_000_000, seed=7).tobytes() == want
                os._exit(0 if ok else 3)
            statuses.append(os.waitpid(pid, 0)[1])
        stop.set()
        t.join()
        print(statuses)
    """)
    assert out.strip() == "[0, 0, 0, 0, 0]"


@needs_fork
def test_5_torch_dataloader_workers():
    """PyTorch DataLoader workers (forked) that initialise tensors with fastinit."""
    pytest.importorskip("torch")
    out = run_python("""
        import torch
        import fastinit, fastinit.random as fr
        import fastinit.torch as ft

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return 6

            def __getitem__(self, i):
                t = torch.empty(300, 1000)
                ft.normal_(t, std=0.02, seed=i)
                return t

        if __name__ == "__main__":
            fastinit.set_num_threads(2)
            want = [Data()[i] for i in range(6)]
            loader = torch.utils.data.DataLoader(Data(), batch_size=None, num_workers=2,
                                                 multiprocessing_context="fork")
            got = list(loader)
            assert all(torch.equal(a, b) for a, b in zip(want, got))
            print("ok")
    """)
    assert out.split()[-1] == "ok"


def test_5_many_threads_through_every_front_end(cpu_threads):
    """16 Python threads at once over initializers, random functions and regions get
    what one thread gets."""
    cpu_threads(2)
    calls = [lambda: fi.GlorotUniform(seed=1)((700, 900)),
             lambda: fi.TruncatedNormal(stddev=0.02, seed=2)((1000, 1000), dtype="float64"),
             lambda: fi.VarianceScaling(2.0, distribution="untruncated_normal", seed=3)(
                 (512, 512), dtype="bfloat16"),
             lambda: fr.normal((3000, 300), seed=4, index=np.s_[100:2000:3, 7:250]),
             lambda: fr.uniform(1_500_001, seed=5, dtype="float16"),
             lambda: fi.Orthogonal(seed=6)((64, 96))]
    expected = [call() for call in calls]
    results = [[None] * len(calls) for _ in range(16)]

    def body(t):
        for j in range(len(calls)):
            k = (j + t) % len(calls)
            results[t][k] = calls[k]()

    run_in_threads(16, body)
    for row in results:
        for got, want in zip(row, expected):
            assert_bits_equal(got, want)
    assert fastinit.get_num_threads() == 2


@needs_fork
def test_5_fork_while_another_thread_compiles(tmp_path):
    """Forks that land while another thread compiles kernels (empty cache): each child
    compiles (or loads) a kernel of its own and gets the right values. A fork in the
    middle of a compile used to leave Numba's compiler lock held in the child, forever."""
    out = run_python("""
        import os, threading, time
        import fastinit, fastinit.random as fr

        t = threading.Thread(target=lambda: fastinit.warmup(["truncated_normal"],
                                                            ["float32", "bfloat16"]))
        t.start()
        time.sleep(0.5)
        statuses = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                a = fr.normal(1001, seed=i, dtype="float64")
                b = fr.normal(1001, seed=i, dtype="float64", backend="numpy")
                os._exit(0 if a.tobytes() == b.tobytes() else 3)
            deadline = time.monotonic() + 120
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses.append(os.waitstatus_to_exitcode(status))
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    statuses.append("hung")
                    break
                time.sleep(0.05)
            time.sleep(0.5)
        t.join()
        print(statuses)
    """, env={"NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.strip() == "[0, 0, 0]"
