"""Start-up cost: the first ``fastinit.random.normal`` call of a fresh process.

Each benchmark starts a subprocess that imports ``fastinit.random`` and makes
one small Numba-backed call, timed inside the subprocess from before the import
to after the call (interpreter start-up excluded), with ``NUMBA_CACHE_DIR``
pointing to a fresh temporary folder:

- ``ColdCache``: the folder is empty, so Numba compiles the kernel (what a user
  sees once per machine, Python and fastinit version);
- ``WarmCache``: ``setup`` runs the subprocess once to fill the folder, and the
  second run, with the same folder, is tracked (the cached kernel is loaded).

The results are seconds (``track_*`` with ``unit = "s"``). The cost of
``import fastinit`` alone is ``bench_random.Import``.
"""

import os
import shutil
import subprocess
import sys
import tempfile

STATEMENT = "fr.normal(1000, seed=0)"
SCRIPT = ("import time\n"
          "t0 = time.perf_counter()\n"
          "import fastinit.random as fr\n"
          "{statement}\n"
          "print(repr(time.perf_counter() - t0))\n")


def first_call_seconds(cache_dir, statement=None):
    """Seconds from ``import fastinit.random`` to the end of ``statement`` in a new
    interpreter whose Numba cache is ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    code = SCRIPT.format(statement=statement or STATEMENT)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the start-up subprocess failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


class _FreshCache:
    timeout = 600

    def setup(self):
        self.cache_dir = tempfile.mkdtemp(prefix="fastinit-numba-cache-")

    def teardown(self):
        shutil.rmtree(self.cache_dir, ignore_errors=True)


class ColdCache(_FreshCache):
    """Import plus first call with an empty Numba cache (the kernel is compiled)."""

    def track_first_call(self):
        return first_call_seconds(self.cache_dir)

    track_first_call.unit = "s"


class WarmCache(_FreshCache):
    """Import plus first call with a filled Numba cache (the kernel is loaded from disk)."""

    def setup(self):
        super().setup()
        first_call_seconds(self.cache_dir)  # fills the cache

    def track_first_call(self):
        return first_call_seconds(self.cache_dir)

    track_first_call.unit = "s"
