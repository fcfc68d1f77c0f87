"""gifnet.devices: the one check of ``device`` / ``precision``, and the warning for bf16 on CPUs without its kernels."""

from __future__ import annotations

import logging

import pytest
import torch

from gifnet import devices
from gifnet.devices import check_precision, resolve_device, warn_if_slow_precision
from gifnet.inference.fusion import Fuser
from gifnet.models.gifnet import GIFNet


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(devices, "_warned_slow_bf16", False)


def _cpu_kernels(monkeypatch, present: bool):
    monkeypatch.setattr(devices, "cpu_has_bf16_kernels", lambda: present)


def test_precision_and_device_checks():
    assert check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be fp32 or bf16, got 'fp16'"):
        check_precision("fp16")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu")


def test_cpu_bf16_check_answers_a_bool():
    assert isinstance(devices.cpu_has_bf16_kernels(), bool)


def test_bf16_without_kernels_warns_once(monkeypatch, caplog, fresh_warnings):
    _cpu_kernels(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="gifnet.devices"):
        assert warn_if_slow_precision("bf16", torch.device("cpu")) is True
        assert warn_if_slow_precision("bf16", torch.device("cpu")) is False  # once per process
    msgs = [r.getMessage() for r in caplog.records if r.name == "gifnet.devices"]
    assert len(msgs) == 1
    assert "precision=bf16" in msgs[0] and "precision=fp32 is faster" in msgs[0]


@pytest.mark.parametrize(
    ("precision", "device", "kernels"),
    [("fp32", "cpu", False), ("fp16", "cpu", False), ("bf16", "cpu", True), ("bf16", "cuda", False)],
)
def test_no_warning_where_bf16_is_not_slow(monkeypatch, caplog, fresh_warnings, precision, device, kernels):
    _cpu_kernels(monkeypatch, kernels)
    with caplog.at_level(logging.WARNING, logger="gifnet.devices"):
        assert warn_if_slow_precision(precision, torch.device(device)) is False
    assert not [r for r in caplog.records if r.name == "gifnet.devices"]


def test_missing_private_check_counts_as_present(monkeypatch):
    class NoCheck:
        pass

    monkeypatch.setattr(torch.ops, "mkldnn", NoCheck())
    assert devices.cpu_has_bf16_kernels() is True


def test_fuser_warns_for_bf16_on_such_a_cpu(monkeypatch, caplog, fresh_warnings):
    _cpu_kernels(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="gifnet.devices"):
        Fuser(GIFNet(), device="cpu", precision="fp32")
        assert not [r for r in caplog.records if r.name == "gifnet.devices"]
        Fuser(GIFNet(), device="cpu", precision="bf16")
    assert len([r for r in caplog.records if r.name == "gifnet.devices"]) == 1


def test_trainer_warns_for_bf16_on_such_a_cpu(monkeypatch, caplog, fresh_warnings, tmp_path):
    from gifnet.config import compose
    from gifnet.engine.trainer import Trainer

    _cpu_kernels(monkeypatch, False)
    fast = ["data.images=[camera]", "data.crop_size=24", "train.batch_size=2", "train.tensorboard=false",
            "train.progress=false", "train.image_every=0", "device=cpu"]
    with caplog.at_level(logging.WARNING, logger="gifnet.devices"):
        Trainer(compose("train", [*fast, "precision=bf16"]), tmp_path / "bf16")
    assert len([r for r in caplog.records if r.name == "gifnet.devices"]) == 1
