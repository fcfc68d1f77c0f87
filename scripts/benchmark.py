#!/usr/bin/env python
"""``python scripts/benchmark.py key=value ...`` = ``gifnet benchmark key=value ...``.

Options and config groups: ``gifnet benchmark --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
