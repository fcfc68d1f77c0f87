#!/usr/bin/env python
"""``python scripts/compare_eval.py key=value ...`` = ``gifnet compare key=value ...``.

Options and config groups: ``gifnet compare --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
