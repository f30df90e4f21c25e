"""``python -m bench``: the same as ``python -m bench.run``."""

import sys

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
