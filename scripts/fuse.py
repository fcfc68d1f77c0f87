#!/usr/bin/env python
"""``python scripts/fuse.py key=value ...`` = ``gifnet fuse key=value ...``.

Options and config groups: ``gifnet fuse --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["fuse", *sys.argv[1:]]))
