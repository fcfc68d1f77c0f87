#!/usr/bin/env python
"""``python scripts/prepare_data.py key=value ...`` = ``gifnet prepare key=value ...``.

Options and config groups: ``gifnet prepare --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
