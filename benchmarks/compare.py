#!/usr/bin/env python
"""Side-by-side comparison of fastinit with NumPy (and PyTorch / JAX when installed).

A thin wrapper around :mod:`fastinit.bench`, runnable from a checkout::

    python benchmarks/compare.py --size 1e8
    python benchmarks/compare.py --quick --json out.json

The same as ``python -m fastinit bench``; ``--help`` lists the options.
"""

import os
import sys

try:
    from fastinit import bench
except ImportError:  # run from a checkout without installing: use the source tree
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from fastinit import bench

if __name__ == "__main__":
    sys.exit(bench.main(prog="python benchmarks/compare.py"))
