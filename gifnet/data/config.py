"""Compose and instantiate ``configs/data/<name>.yaml`` outside a Hydra application (scripts, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from ..paths import PROJECT_ROOT

__all__ = ["CONFIG_DIR", "compose_data_config", "instantiate_data"]

CONFIG_DIR: Path = PROJECT_ROOT / "configs"


def compose_data_config(name: str = "demo", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the ``data`` config group entry ``name`` with ``key=value`` overrides (relative to it).

    Returns the ``data`` node (with its ``_target_``).
    """
    from hydra import compose, initialize_config_dir

    ov = [f"+data={name}"] + [o if o.startswith(("data.", "+data.", "~data.")) else f"data.{o}" for o in overrides]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(overrides=ov)
    return cfg.data


def instantiate_data(name: str = "demo", overrides: Sequence[str] = ()):
    """Instantiate the dataset of ``configs/data/<name>.yaml`` (see :func:`compose_data_config`)."""
    from hydra.utils import instantiate

    return instantiate(compose_data_config(name, overrides), _convert_="partial")
