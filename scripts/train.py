#!/usr/bin/env python
"""``python scripts/train.py key=value ...`` = ``gifnet train key=value ...``.

Options and config groups: ``gifnet train --help``.
"""

import sys

from gifnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
