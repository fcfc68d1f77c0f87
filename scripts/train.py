#!/usr/bin/env python
"""Train GIFNet: ``python scripts/train.py task=joint`` (Hydra; see configs/train.yaml and README).

Distributed: ``torchrun --nproc_per_node=N scripts/train.py ...`` (gloo on CPU, NCCL on GPU); rank 0 owns the
run directory, logging and checkpoints.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

if int(os.environ.get("RANK", "0")) > 0:
    # Non-zero ranks write nothing: no Hydra output folder or log file of their own.
    sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from gifnet.engine.distributed import cleanup
    from gifnet.engine.trainer import NonFiniteLossError, Trainer

    log = logging.getLogger("gifnet.train")
    try:
        summary = Trainer(cfg, HydraConfig.get().runtime.output_dir).fit()
    except NonFiniteLossError as e:
        log.error("%s", e)
        sys.exit(2)
    finally:
        cleanup()
    log.info("done: %s", summary)
    total = [v for k, v in summary["last_losses"].items() if k.endswith("/total")]
    return sum(total) if total else None


if __name__ == "__main__":
    main()
