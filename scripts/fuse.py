#!/usr/bin/env python
"""Fuse image pairs with a GIFNet checkpoint: ``python scripts/fuse.py checkpoint=… task=… input.a=… input.b=…``.

Options and defaults: configs/fuse.yaml (``key=value`` overrides; unknown keys are rejected).
"""

import sys

from gifnet.cli import cli_help, run_cli
from gifnet.fusion import fuse_from_config, load_fuse_config


def main(argv: list[str]) -> int:
    return run_cli("gifnet.fuse", argv, load_fuse_config, fuse_from_config, lambda s: int(bool(s.failed)),
                   help_text=cli_help(__doc__, "fuse"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
