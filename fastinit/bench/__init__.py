"""Side-by-side benchmark: fastinit against NumPy (and PyTorch / JAX when installed).

Everything runs in ONE process, one implementation after the other, on
the same machine and with the same thread count, and the result is printed
as a table::

    python -m fastinit bench --size 1e8
    python -m fastinit bench --quick            # n = 1e6, one repeat: a few seconds
    python -m fastinit bench --cases normal --threads 1 --json bench.json
    python -m fastinit bench --cases orthogonal --ortho-size 4096
    python -m fastinit bench --quick --plot bench.png   # also a bar chart (needs matplotlib)

The cases:

- ``normal``, ``uniform``, ``truncated_normal`` (on ``[-2, 2]`` std): a flat
  output of ``n`` elements;
- ``variance_scaling``: a Glorot-uniform (Xavier) kernel, ``n`` elements as a
  ``(n // 4096, 4096)`` matrix (:func:`case_shape`), against NumPy's
  ``Generator`` (``random`` into the output, then scaled to ``[-limit, limit)``
  in place), ``torch.nn.init.xavier_uniform_``, JAX's ``glorot_uniform`` and
  Keras 3's ``GlorotUniform`` on its NumPy backend;
- ``orthogonal``: one square matrix of side ``--ortho-size`` (2048; 256 with
  ``--quick``), against ``numpy.linalg.qr`` of a Gaussian matrix with the sign
  fix (the reference), ``scipy.linalg.qr``, ``torch.nn.init.orthogonal_`` and
  JAX's ``orthogonal``. Its rate is still elements/s; the note column gives the
  seconds per matrix.

What is measured, per case and implementation:

- elements/s: the case's element count divided by the best of ``--repeat`` timed calls
  (``time.perf_counter``), after one untimed warm-up call that fills the same
  output (so Numba compilation and JAX tracing are excluded, and the output's
  pages are already resident);
- ``x NumPy``: that rate divided by NumPy's rate for the same case (the
  ``numpy Generator`` row; for the truncated normal the NumPy rejection row,
  for the orthogonal matrix the ``numpy.linalg.qr`` row);
- peak RSS above the output: the output buffer is allocated and touched
  first; the kernel's peak-RSS counter is reset (``5`` written to
  ``/proc/self/clear_refs``), the call runs, and ``VmHWM`` minus the ``VmRSS``
  before the call is the extra memory the implementation needed (for an
  implementation that allocates its own result, JAX, the size of the output
  is subtracted too). The largest value over the repeats is reported; where
  the counter cannot be reset (not Linux) the column shows ``n/a``.

Numba, PyTorch and the OpenBLAS libraries of NumPy and SciPy (the orthogonal
case's LAPACK) run with ``--threads`` threads; JAX uses XLA's own pool. On a
machine that other work keeps busy, multi-threaded OpenBLAS can be very slow for
small matrices (threads waiting for descheduled peers): compare with
``--threads 1`` there.

``--plot PATH`` also writes the results as a PNG bar chart: elements/s on a log
scale, one group of bars per case and one bar per implementation (the same
numbers as the table; skipped and failed rows have no bar). It needs
matplotlib (``pip install "fastinit-ml[bench]"``), imported only then and
drawn with the Agg renderer, without ``pyplot`` (no window, no change to the
process's matplotlib backend).

PyTorch, JAX, SciPy and Keras are imported only when installed
(``importlib.util.find_spec``) and only when their rows run; Keras is imported
with ``KERAS_BACKEND=numpy`` (its row is skipped when Keras was already imported
with another backend). ``import fastinit`` never imports this package.

Modules: ``cases`` (what is measured), ``measure`` (timing, memory, threads,
the run), ``report`` (table, JSON, plot), ``cli`` (the command).
"""


from .cases import CASES, case_shape, numpy_orthogonal, numpy_truncated_normal
from .cli import add_arguments, main
from .measure import Result, peak_rss_above, run
from .report import write_plot

__all__ = ["main", "run", "add_arguments", "peak_rss_above", "numpy_truncated_normal",
           "numpy_orthogonal", "case_shape", "write_plot", "CASES", "Result"]
