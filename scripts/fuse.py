#!/usr/bin/env python
"""Fuse image pairs with a GIFNet checkpoint: ``python scripts/fuse.py checkpoint=… task=… input.a=… input.b=…``.

Options and defaults: configs/fuse.yaml (``key=value`` overrides; unknown keys are rejected).
"""

from __future__ import annotations

import logging
import sys

from gifnet.fusion import fuse_from_config, load_fuse_config


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    log = logging.getLogger("gifnet.fuse")
    try:
        cfg = load_fuse_config(argv)
        summary = fuse_from_config(cfg)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line and exit code 1
        log.error("%s", e)
        return 1
    log.info("%s", summary)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
