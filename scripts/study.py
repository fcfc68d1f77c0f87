#!/usr/bin/env python
"""``python scripts/study.py key=value ...`` = ``gifnet study key=value ...``.

Options and config groups: ``gifnet study --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", *sys.argv[1:]]))
