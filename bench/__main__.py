"""``python -m bench``: the same as ``python -m bench.run``."""

import sys

from bench.cli import command_line

if __name__ == "__main__":
    raise SystemExit(command_line(sys.argv[1:]))
