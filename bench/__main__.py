"""`python -m bench [--quick] [--output DIR] [--rounds N] [--only NAME]...`."""

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
