"""The one command line: every primary config and every group option composes; each command sees its own groups;
``--help``, ``--cfg job`` and ``-m`` work through ``gifnet``; the ``paths`` group is the one place for locations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from gifnet.cli import COMMANDS, main
from gifnet.config import PRIMARY_ROOTS, compose, group_names, primary_file, root_of
from gifnet.paths import PROJECT_ROOT, default_paths

# the options every primary config needs before it composes into something runnable (??? values)
REQUIRED = {"fuse": ["checkpoint=x.pt", "input.a=a"], "evaluate": ["checkpoint=x.pt"], "prepare": ["out=o"],
            "compare": ["full=a.csv", "subset=b.csv"]}  # fmt: skip


def _gifnet(*args, cwd=PROJECT_ROOT, timeout=180):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "gifnet.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)  # fmt: skip


def _options(config: str) -> list[tuple[str, str]]:
    out = []
    for group in group_names(config):
        roots = [root_of(config), PROJECT_ROOT / "configs" / "data", PROJECT_ROOT / "configs" / "common"]
        folder = next(r / group for r in roots if (r / group).is_dir())
        out += [(group, p.stem) for p in sorted(folder.glob("*.yaml"))]
    return out


@pytest.mark.parametrize("config", sorted(PRIMARY_ROOTS))
def test_every_primary_config_composes_resolved(config):
    cfg = compose(config, REQUIRED.get(config, []))
    OmegaConf.resolve(cfg)  # every interpolation (paths, seeds) resolves
    assert primary_file(config).is_file() and set(default_paths()) == set(cfg.paths)


@pytest.mark.parametrize(
    "config, group, option", [(c, g, o) for c in sorted(PRIMARY_ROOTS) for g, o in _options(c)]
)  # fmt: skip
def test_every_group_option_composes(config, group, option):
    cfg = compose(config, [*REQUIRED.get(config, []), f"{group}={option}"])
    OmegaConf.resolve(cfg)
    assert group in cfg or group == "experiment"  # an experiment is a global delta, not a node


def test_each_command_sees_only_its_own_groups():
    assert group_names("fuse") == group_names("evaluate") == group_names("import") == ["paths"]
    assert group_names("train") == ["data", "experiment", "loss", "model", "optim", "paths", "task"]
    assert group_names("study") == ["paths", "study"] and group_names("preview") == ["data", "paths"]
    # `task` is a key of fuse and a group of train; `eval` a key of evaluate (its datasets are not a group)
    assert compose("fuse", [*REQUIRED["fuse"], "task=mfif"]).task == "mfif"
    assert compose("train", ["task=official"]).task.name == "official"
    assert compose("evaluate", [*REQUIRED["evaluate"], "eval=[ivif_tno,mfif_lytro]"]).eval == ["ivif_tno", "mfif_lytro"]


def test_every_command_has_its_config_and_every_script_is_a_command():
    assert {c.config for c in COMMANDS.values()} <= set(PRIMARY_ROOTS)
    for script in (PROJECT_ROOT / "scripts").glob("*.py"):
        text = script.read_text()
        assert "from gifnet.cli import main" in text and "sys.path" not in text, script.name


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown option: nope \(see configs/fuse/fuse.yaml"):
        compose("fuse", ["nope=1"])
    with pytest.raises(ValueError, match=r"Could not find 'model/nope'; available: gating_fixed, .*tiny$"):
        compose("train", ["model=nope"])
    with pytest.raises(ValueError, match="key=value"):
        compose("evaluate", ["oops"])
    # free-form maps take new keys; other keys stay closed
    cfg = compose("evaluate", [*REQUIRED["evaluate"], "methods.Other=/x", "metrics.ivif_tno=[EN]"])
    assert cfg.methods.Other == "/x" and list(cfg.metrics.ivif_tno) == ["EN"]


def test_top_level_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
    assert main([]) == 2


def test_command_help_lists_groups_and_options():
    r = _gifnet("train", "--help")
    assert r.returncode == 0, r.stderr
    assert "task: ivif, ivif_meif, joint, meif, mfif, official" in r.stdout and "paths: default" in r.stdout
    assert "eval:" not in r.stdout and "study:" not in r.stdout  # other commands' folders are not groups here
    assert "configs/train/train.yaml" in r.stdout and "Examples:" in r.stdout
    r = _gifnet("evaluate", "--help")
    assert r.returncode == 0 and "configs/evaluate/evaluate.yaml" in r.stdout and "figure_top" in r.stdout


def test_cfg_job_prints_the_composed_config():
    r = _gifnet("fuse", "--cfg", "job", "task=mfif", "checkpoint=${paths.official}")
    assert r.returncode == 0, r.stderr
    cfg = OmegaConf.to_container(OmegaConf.create(r.stdout))  # as printed: interpolations unresolved
    assert cfg["task"] == "mfif" and cfg["checkpoint"] == "${paths.official}" and "shared" in cfg["paths"]


def test_multirun_sweeps_and_writes_no_run_folder_for_a_console_command(tmp_path):
    r = _gifnet("preview", "-m", "n=1,2", "data.images=[camera]", "data.crop_size=16", f"out={tmp_path}/p$" + "{n}.png",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "p1.png").is_file() and (tmp_path / "p2.png").is_file()
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.glob("*.log"))


def test_paths_group_is_the_one_place_for_locations(monkeypatch):
    monkeypatch.delenv("GIFNET_SHARED", raising=False)
    assert default_paths()["data_root"] == "../shared/data/benchmarks"
    monkeypatch.setenv("GIFNET_SHARED", "/elsewhere")
    for config in ("evaluate", "train", "fuse"):
        c = compose(config, REQUIRED.get(config, []))
        assert OmegaConf.to_container(c.paths, resolve=True)["data_root"] == "/elsewhere/data/benchmarks"
    assert compose("import").src == "/elsewhere/official/Final.model"
    assert default_paths()["official"] == "/elsewhere/official/Final.model"
