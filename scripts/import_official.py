#!/usr/bin/env python
"""``python scripts/import_official.py key=value ...`` = ``gifnet import key=value ...``.

Options and config groups: ``gifnet import --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["import", *sys.argv[1:]]))
