"""Side-by-side benchmark: fastinit against NumPy (and PyTorch / JAX when installed).

Everything runs in one process, one implementation after the other, with
the same thread count, and is printed as a table (``fastinit bench``,
``fastinit demo``): elements per second from the best timed call after a
warm-up, the ratio to NumPy, and the peak RSS above the output. The cases
(normal, uniform, truncated normal, a Glorot-uniform kernel, an orthogonal
matrix, a model's init), the options and how to read the numbers are in
``docs/benchmarking.md``. ``import fastinit`` never imports this package.

Modules: ``cases`` (what is measured), ``measure`` (timing, memory, threads,
the run), ``report`` (table, JSON, plot), ``cli`` (the command).
"""


from .cases import CASES, case_shape, numpy_orthogonal, numpy_truncated_normal
from .cli import add_arguments, main
from .measure import Result, peak_rss_above, run
from .report import write_plot

__all__ = ["main", "run", "add_arguments", "peak_rss_above", "numpy_truncated_normal",
           "numpy_orthogonal", "case_shape", "write_plot", "CASES", "Result"]
