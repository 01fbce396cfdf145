"""``python -m fastinit``: the command line (no arguments prints the help)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
