"""Start-up cost: the first ``fastinit.random.normal`` call of a fresh process.

Each benchmark starts a subprocess that imports ``fastinit.random`` and makes
one small call (``backend="auto"``: NumPy's values while a kernel that is not
made yet compiles in the background), timed inside the subprocess from before
the import to after the call (interpreter start-up excluded), with
``NUMBA_CACHE_DIR`` pointing to a fresh temporary folder:

- ``ColdCache``: the folder is empty (the first value a user sees once per
  machine, Python and fastinit version);
- ``ColdCacheKernel``: the same with ``backend="numba"``, which waits for the
  kernel's compilation (what a large first call costs);
- ``WarmCache``: ``setup`` fills the folder, and a run with the same folder is
  tracked (the kernel is loaded from the cache, in the background).

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
    """Import plus first call with an empty Numba cache (NumPy's values; the kernel
    compiles in the background)."""

    def track_first_call(self):
        return first_call_seconds(self.cache_dir)

    track_first_call.unit = "s"


class ColdCacheKernel(_FreshCache):
    """Import plus first call with an empty cache, waiting for the kernel's compilation
    (``backend="numba"``: what a large first call costs)."""

    def track_first_kernel(self):
        return first_call_seconds(self.cache_dir, "fr.normal(1000, seed=0, backend='numba')")

    track_first_kernel.unit = "s"


class WarmCache(_FreshCache):
    """Import plus first call with a filled Numba cache (NumPy's values; the kernel
    loads in the background)."""

    def setup(self):
        super().setup()
        # fills the cache (backend="numba": a small "auto" call does not wait for its kernel)
        first_call_seconds(self.cache_dir, "fr.normal(1000, seed=0, backend='numba')")

    def track_first_call(self):
        return first_call_seconds(self.cache_dir)

    track_first_call.unit = "s"
