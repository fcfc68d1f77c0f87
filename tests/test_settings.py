"""Every training setting is checked before anything is built: key, value and allowed range in one message."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from test_train import FAST, compose_train

from gifnet.engine.settings import SettingError, check_memory, check_total_iters, validate_train_config
from gifnet.engine.trainer import Trainer
from gifnet.paths import PROJECT_ROOT

BASE = ["model=tiny", "train.max_steps=1", *FAST]


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=0", "train.epochs"),
        ("train.epochs=-3", "train.epochs"),
        ("train.max_steps=0", "train.max_steps"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.batch_size=-2", "train.batch_size"),
        ("train.batch_size=2.5", "train.batch_size"),
        ("train.num_workers=-1", "train.num_workers"),
        ("train.log_every=0", "train.log_every"),
        ("train.save_every=-1", "train.save_every"),
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-1e-3", "optim.lr"),
        ("optim.lr=fast", "optim.lr"),
        ("optim.lr=true", "optim.lr"),
        ("optim.lr=nan", "optim.lr"),
        ("optim.lr=inf", "optim.lr"),
        ("optim.betas=[0.9,1.5]", "optim.betas"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("optim.eps=0", "optim.eps"),
        ("optim.weight_decay=-1", "optim.weight_decay"),
        ("optim.warmup_steps=-5", "optim.warmup_steps"),
        ("optim.min_lr=1.0", "optim.min_lr"),
        ("optim.grad_clip=0", "optim.grad_clip"),
        ("optim.scheduler=linear", "optim.scheduler"),
        ("optim.name=sgd", "optim.name"),
        ("precision=fp8", "precision"),
        ("seed=-1", "seed"),
        ("data.crop_size=0", "data.crop_size"),
        ("data.crop_size=8", "data.crop_size"),
        ("loss.msssim=standard", "data.crop_size"),  # 24-px crops are too small for the standard MS-SSIM
        ("loss.rec_weight=-1", "loss.rec_weight"),
    ],
)
def test_bad_setting_is_refused_with_its_key(override, key):
    cfg = compose_train([*BASE, override])
    with pytest.raises(SettingError, match=key.replace(".", r"\.")):
        validate_train_config(cfg)
    with pytest.raises(SettingError, match=key.replace(".", r"\.")):
        Trainer(cfg, "/nonexistent/never-created")  # refused before the run folder or the model is built


def test_the_shipped_configs_pass():
    for over in ([], ["experiment=cpu_joint"], ["experiment=full_joint"], ["experiment=official"]):
        validate_train_config(compose_train(over))


def test_a_run_that_would_train_nothing_is_refused():
    with pytest.raises(SettingError, match="no iteration.*3 sample"):
        check_total_iters(0, epochs=1, max_steps=None, n_samples=3, batch_size=8)
    check_total_iters(1, epochs=1, max_steps=None, n_samples=3, batch_size=8)


def test_crop_and_batch_beyond_memory_are_refused():
    with pytest.raises(SettingError, match=r"data\.crop_size 8192 x train\.batch_size 64"):
        check_memory(8192, 64, torch.device("cpu"))
    check_memory(64, 8, torch.device("cpu"))  # the CPU recipe fits this 24 GB machine, and any CI runner
    check_memory(None, 8, torch.device("cpu"))  # whole images: not estimated


def test_train_script_reports_a_bad_setting_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *BASE, "train.batch_size=0",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
    )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "train.batch_size must be a positive integer" in out
    assert "Traceback" not in out
