#!/usr/bin/env python
"""``python scripts/preview_data.py key=value ...`` = ``gifnet preview key=value ...``.

Options and config groups: ``gifnet preview --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["preview", *sys.argv[1:]]))
