#!/usr/bin/env python
"""``python scripts/benchmark_metrics.py key=value ...`` = ``gifnet benchmark mode=metrics key=value ...``.

Options and config groups: ``gifnet benchmark --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "mode=metrics", *sys.argv[1:]]))
