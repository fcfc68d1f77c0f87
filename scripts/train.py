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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gifnet.engine.resume import resume_argv  # noqa: E402

sys.argv = [sys.argv[0], *resume_argv(sys.argv[1:])]  # resume=PATH continues in the run's own folder
if int(os.environ.get("RANK", "0")) > 0:
    # Non-zero ranks write nothing: no Hydra output folder or log file of their own.
    sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from gifnet.data.io import DataError
    from gifnet.engine.distributed import cleanup
    from gifnet.engine.resume import ResumeMismatchError
    from gifnet.engine.settings import SettingError
    from gifnet.engine.trainer import NonFiniteLossError, Trainer
    from gifnet.models.checkpoint import CheckpointError

    log = logging.getLogger("gifnet.train")
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        if cfg.get("resume"):
            cfg = restore_run_config(cfg, run_dir)
        summary = Trainer(cfg, run_dir).fit()
    except NonFiniteLossError as e:
        log.error("%s", e)
        sys.exit(2)
    except (SettingError, ResumeMismatchError, CheckpointError, DataError) as e:
        log.error("%s", e)  # a bad setting or input: one readable line, no traceback
        sys.exit(2)
    finally:
        cleanup()
    log.info("done: %s", summary)
    total = [v for k, v in summary["last_losses"].items() if k.endswith("/total")]
    return sum(total) if total else None


def restore_run_config(cfg: DictConfig, run_dir: str) -> DictConfig:
    """``resume=PATH``: the checkpoint's stored configuration with this command line's runtime settings."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from gifnet.data.datasets import resolve_path
    from gifnet.engine.resume import restore_config
    from gifnet.models.checkpoint import read_checkpoint
    from gifnet.paths import PROJECT_ROOT, atomic_path

    path = resolve_path(cfg.resume)
    stored = read_checkpoint(path).get("train_config")
    if stored is None:
        logging.getLogger("gifnet.train").warning(
            "%s stores no training configuration (an early gifnet checkpoint): resuming with the composed one", path)
        return cfg
    groups = [p.name for p in (PROJECT_ROOT / "configs").iterdir() if p.is_dir()]
    restored = restore_config(cfg, list(HydraConfig.get().overrides.task), stored, cfg.resume, groups)
    if int(os.environ.get("RANK", "0")) == 0:
        with atomic_path(os.path.join(run_dir, "resume.yaml")) as tmp:
            tmp.write_text(OmegaConf.to_yaml(restored))
    return restored


if __name__ == "__main__":
    main()
