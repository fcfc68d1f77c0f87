"""``resume=PATH`` means the same run: configuration restored from the checkpoint, recipe changes refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from test_train import FAST, compose_train

from gifnet.engine.resume import ResumeMismatchError, restore_config, resume_argv
from gifnet.engine.trainer import Trainer
from gifnet.paths import PROJECT_ROOT

GROUPS = ["model", "data", "task", "loss", "optim", "experiment"]
BASE = ["model=tiny", "train.max_steps=2", "train.save_every=1", *FAST]


def _stored(overrides=()):
    return OmegaConf.to_container(compose_train([*BASE, *overrides]), resolve=True)


def test_runtime_and_length_overrides_are_applied_to_the_stored_config():
    stored = _stored(["optim.lr=1e-4", "seed=3"])
    over = ["resume=x.pt", "device=cpu", "train.log_every=1", "train.max_steps=5"]
    given = compose_train(over)  # composed from defaults: model=gifnet, data=demo defaults, lr 3e-4
    cfg = restore_config(given, over, stored, "x.pt", GROUPS)
    assert cfg.optim.lr == 1e-4 and cfg.seed == 3 and cfg.model.enc_width == stored["model"]["enc_width"] == 6
    assert cfg.data.images == ["camera", "coins"]  # the run's data, not the defaults
    assert cfg.train.log_every == 1 and cfg.train.max_steps == 5 and cfg.resume == "x.pt"


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.lr=1e-2", "optim.lr"),
        ("model.gating=fixed", "model.gating"),
        ("seed=7", "seed"),
        ("task=ivif", "task."),
        ("data=pairs", "data."),  # a group override must match the stored group as a whole
        ("experiment=official", "optim.lr"),
        ("precision=bf16", "precision"),
    ],
)
def test_recipe_changes_are_refused_with_the_differing_keys(override, key):
    stored = _stored()
    keep = [o for o in BASE if not (override.startswith("data=") and o.startswith("data."))]  # pairs lacks them
    over = [*keep, override, "resume=x.pt"]
    with pytest.raises(ResumeMismatchError, match=key.replace(".", r"\.")) as e:
        restore_config(compose_train(over), over, stored, "x.pt", GROUPS)
    assert "init=PATH" in str(e.value)


def test_restating_the_recipe_is_allowed():
    stored = _stored()
    over = [*BASE, "resume=x.pt"]  # the very same overrides again
    cfg = restore_config(compose_train(over), over, stored, "x.pt", GROUPS)
    assert OmegaConf.to_container(cfg)["model"] == stored["model"]


def test_trainer_refuses_a_resume_with_another_recipe(tmp_path):
    Trainer(compose_train(BASE), tmp_path / "a").fit()
    with pytest.raises(ResumeMismatchError, match=r"optim\.lr"):
        Trainer(compose_train([*BASE, "optim.lr=0.5", f"resume={tmp_path / 'a/checkpoints/last.pt'}"]),
                tmp_path / "b")  # fmt: skip


def test_resume_argv_continues_in_the_run_folder():
    assert resume_argv(["resume=runs/x/checkpoints/last.pt"]) == [
        "resume=runs/x/checkpoints/last.pt", "hydra.run.dir='runs/x'", "hydra.output_subdir=null"]
    assert resume_argv(["resume=a.pt", "hydra.run.dir=elsewhere"]) == [
        "resume=a.pt", "hydra.run.dir=elsewhere", "hydra.output_subdir=null"]
    assert resume_argv(["task=ivif"]) == ["task=ivif"]


def _train(*args):
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)  # fmt: skip


def test_resume_alone_restores_the_run_and_continues_it_bit_identically(tmp_path):
    run = tmp_path / "run"
    r = _train(*BASE, f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-2000:]
    straight = torch.load(run / "checkpoints" / "iter_0000002.pt", weights_only=True)["state_dict"]
    # the README one-liner: only resume= (and a runtime setting); config and folder come from the checkpoint
    r = _train(f"resume={run / 'checkpoints' / 'iter_0000001.pt'}", "train.progress=false")
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = torch.load(run / "checkpoints" / "iter_0000002.pt", weights_only=True)
    assert resumed["progress"]["iteration"] == 2 and resumed["train_config"]["model"]["enc_width"] == 6
    assert all(torch.equal(straight[k], resumed["state_dict"][k]) for k in straight)
    restored = OmegaConf.load(run / "resume.yaml")
    assert restored.data.images == ["camera", "coins"] and restored.train.progress is False
    # a recipe change is refused with the key, and nothing is trained
    r = _train(f"resume={run / 'checkpoints' / 'last.pt'}", "train.max_steps=3", "optim.lr=0.5")
    assert r.returncode == 2 and "optim.lr" in (r.stdout + r.stderr)
    assert not (run / "checkpoints" / "iter_0000003.pt").exists()
