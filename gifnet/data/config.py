"""Compose and instantiate a ``data`` config (``configs/data/data/<name>.yaml``) outside a Hydra application."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from ..config import CONFIG_ROOT

__all__ = ["CONFIG_DIR", "compose_data_config", "instantiate_data"]

CONFIG_DIR: Path = CONFIG_ROOT / "data"  # the search-path root holding the ``data`` group


def compose_data_config(name: str = "demo", overrides: Sequence[str] = ()) -> DictConfig:
    """The ``data`` group entry ``name`` with ``key=value`` overrides (relative to it, or prefixed ``data.``;
    ``paths.*`` moves the locations), composed with the ``paths`` group and resolved. Returns the ``data`` node
    (with its ``_target_``)."""
    from ..config import compose_group

    return compose_group("data", name, overrides)


def instantiate_data(name: str = "demo", overrides: Sequence[str] = ()):
    """Instantiate the dataset of ``configs/data/data/<name>.yaml`` (see :func:`compose_data_config`)."""
    from hydra.utils import instantiate

    return instantiate(compose_data_config(name, overrides), _convert_="partial")
