"""asv benchmarks of fastinit (see ../asv.conf.json).

Conventions for adding benchmarks:

- Parametrise on separate axes (``params`` a tuple of lists, one per axis,
  with ``param_names``); never pack several parameters into one string.
- Warm up in ``setup`` so Numba compilation and first-touch page faults are
  not timed; allocate outputs there too.
- ``time_*`` for speed, ``peakmem_*`` for the process's peak RSS,
  ``track_*`` for other numbers (give them a ``unit``).
- Keep every module importable without optional packages: skip a
  combination by raising ``NotImplementedError`` in ``setup``.
- ``tests/tools/test_bench.py`` imports every module here and runs each benchmark
  once with the smallest sizes, so a broken benchmark fails the tests.
"""
