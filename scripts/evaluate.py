#!/usr/bin/env python
"""``python scripts/evaluate.py key=value ...`` = ``gifnet evaluate key=value ...``.

Options and config groups: ``gifnet evaluate --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
