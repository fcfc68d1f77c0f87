#!/usr/bin/env python
"""Evaluate a checkpoint on benchmark datasets: ``python scripts/evaluate.py checkpoint=… eval=seen|unseen|all|NAME``.

Options and defaults: configs/evaluate.yaml (``key=value`` overrides; unknown keys are rejected); datasets:
configs/eval/*.yaml; details: docs/evaluation.md. Images that could not be scored are listed in the reports'
footers and in failures.csv (they do not change the exit code).
"""

import sys

from gifnet.cli import cli_help, run_cli
from gifnet.evaluation import evaluate_from_config, load_eval_config


def main(argv: list[str]) -> int:
    return run_cli("gifnet.evaluate", argv, load_eval_config, evaluate_from_config,
                   help_text=cli_help(__doc__, "evaluate"))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
