#!/usr/bin/env python
"""Evaluate a checkpoint on benchmark datasets: ``python scripts/evaluate.py checkpoint=… eval=seen|unseen|all|NAME``.

Options and defaults: configs/evaluate.yaml (``key=value`` overrides; unknown keys are rejected); datasets:
configs/eval/*.yaml; details: docs/evaluation.md.
"""

from __future__ import annotations

import logging
import sys

from gifnet.evaluation import evaluate_from_config, load_eval_config


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    log = logging.getLogger("gifnet.evaluate")
    try:
        cfg = load_eval_config(argv)
        result = evaluate_from_config(cfg)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line and exit code 1
        log.error("%s", e)
        return 1
    log.info("%s", result)
    if result.failures:
        log.warning(
            "%d image(s) could not be scored: see the footers of summary.md / failures.csv", len(result.failures)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
