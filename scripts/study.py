#!/usr/bin/env python
"""Run a training study: ``python scripts/study.py study=ablation_cpu`` (see configs/run_study.yaml, gifnet/study.py).

Rerunning the same command resumes unfinished runs, skips finished ones and rebuilds the table; ``dry_run=true``
lists what is done and left with an ETA. ``torchrun --nproc_per_node=N scripts/study.py ...`` trains each run with
DDP (rank 0 evaluates and writes the table).
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

if int(os.environ.get("RANK", "0")) > 0:
    sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


@hydra.main(config_path="../configs", config_name="run_study", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from gifnet.paths import PROJECT_ROOT
    from gifnet.study import StudyError, load_study, run_study

    log = logging.getLogger("gifnet.study")
    c = OmegaConf.to_container(cfg, resolve=True)
    try:
        study = load_study(cfg.study, root=c["root"])
        results = c["results_dir"] or PROJECT_ROOT / "docs" / "results" / study.name
        out = run_study(study, results_dir=results, dry_run=c["dry_run"], only=c["only"], train=c["train"],
                        train_overrides=c["train_overrides"], eval_overrides=c["eval_overrides"],
                        retry_failed=c["retry_failed"])  # fmt: skip
    except StudyError as e:
        log.error("%s", e)
        sys.exit(2)
    if not c["dry_run"]:
        log.info("done: %s", out)


if __name__ == "__main__":
    main()
