#!/usr/bin/env python
"""Convert the released GIFNet ``Final.model`` into a gifnet checkpoint.

Usage: python scripts/import_official.py PATH/TO/Final.model OUT.pt
"""

import sys

from gifnet.models.convert import main

if __name__ == "__main__":
    sys.exit(main())
