"""``python -m fastinit``: the command line (no arguments runs the demo)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
