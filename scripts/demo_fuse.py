#!/usr/bin/env python
"""``python scripts/demo_fuse.py key=value ...`` = ``gifnet demo key=value ...``.

Options and config groups: ``gifnet demo --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
