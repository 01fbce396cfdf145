"""Install the stand-in CuPy in every Python process (benchmarks/gpu_check.sh --rehearse).

Only on the path during the rehearsal, which also puts ``tests`` on it.
"""

import os

if os.environ.get("FASTINIT_REHEARSE") == "1":
    from helpers import fake_cupy

    fake_cupy.install_for_process()
