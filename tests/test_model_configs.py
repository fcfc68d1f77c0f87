"""Every model config composes with Hydra and instantiates a working model."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from gifnet.models import GIFNet
from gifnet.paths import PROJECT_ROOT

CONFIG_DIR = PROJECT_ROOT / "configs" / "train"
MODEL_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


def _compose(overrides):
    """The training config with the given model group overrides (``+model=x`` as ``model=x``)."""
    from gifnet.config import compose

    return compose("train", [o.replace("+model=", "model=") for o in overrides])


def test_model_config_group_is_populated():
    assert {"gifnet", "gating_off", "gating_fixed", "no_cross_attention", "no_reconstruction", "single_stream"} <= set(
        MODEL_CONFIGS
    )


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_model_config_instantiates_and_runs(name):
    cfg = _compose([f"+model={name}"])
    model = instantiate(cfg.model)
    assert isinstance(model, GIFNet)
    a = torch.rand(1, 1, 37, 53)
    y = model(a, a)
    y.mean().backward()
    assert y.shape == a.shape


def test_released_config_is_the_default_architecture():
    model = instantiate(_compose(["+model=gifnet"]).model)
    assert model.num_parameters() == 822_780
    assert model.config == GIFNet().config


def test_off_is_a_string_from_yaml_and_cli():
    assert instantiate(_compose(["+model=gating_off"]).model).config.gating == "off"
    assert instantiate(_compose(["+model=gifnet", "model.gating=off"]).model).config.gating == "off"


def test_bad_config_value_names_the_field():
    with pytest.raises(Exception, match="gating"):
        instantiate(_compose(["+model=gifnet", "model.gating=sigmoid"]).model)
