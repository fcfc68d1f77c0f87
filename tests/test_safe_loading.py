"""Loading a checkpoint never runs code: a crafted file is refused by every entry point, with no side effect."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gifnet.models import GIFNet, save_checkpoint
from gifnet.models.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    convert_legacy_checkpoint,
    read_checkpoint,
)
from gifnet.paths import PROJECT_ROOT


class _Payload:
    """Unpickling this object calls ``os.mkdir(marker)``: the side effect a crafted checkpoint would have."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _crafted(tmp_path: Path, name: str = "Final.model") -> tuple[Path, Path]:
    marker = tmp_path / "CODE_RAN"
    obj = {"format": "gifnet", "format_version": 1, "model_config": {}, "state_dict": {}, "trained_tasks": [],
           "provenance": {"x": _Payload(marker)}}  # fmt: skip
    path = tmp_path / name
    torch.save(obj, path)
    return path, marker


def _entry_points():
    from gifnet import fuse
    from gifnet.evaluation import evaluate
    from gifnet.inference.fusion import Fuser, load_any_checkpoint
    from gifnet.models import load_checkpoint
    from gifnet.models.convert import import_official, load_official, read_any_checkpoint

    a = np.zeros((8, 8), np.uint8)
    return {
        "read_checkpoint": read_checkpoint,
        "load_checkpoint": load_checkpoint,
        "read_any_checkpoint": read_any_checkpoint,
        "load_any_checkpoint": load_any_checkpoint,
        "load_official": load_official,
        "Fuser.from_checkpoint": Fuser.from_checkpoint,
        "gifnet.fuse": lambda p: fuse(p, a, a, task="ivif"),
        "evaluate": lambda p: evaluate(p, datasets=[]),
        "import_official": lambda p: import_official(p, p.parent / "out.pt"),
    }


@pytest.mark.parametrize("entry", sorted(_entry_points()))
def test_crafted_checkpoint_is_refused_by_every_api(entry, tmp_path):
    path, marker = _crafted(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="refused") as e:
        _entry_points()[entry](path)
    assert str(path) in str(e.value) and "gifnet import format=legacy" in str(e.value)
    assert not marker.exists()


def _script(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
                          check=False)  # fmt: skip


FAST = ["model=tiny", "data.images=[camera]", "data.crop_size=24", "train.batch_size=1", "train.max_steps=1",
        "train.tensorboard=false", "train.progress=false"]  # fmt: skip


@pytest.mark.parametrize("script", ["fuse", "evaluate", "train_resume", "train_init", "demo_fuse", "import"])
def test_crafted_checkpoint_is_refused_by_every_script(script, tmp_path):
    path, marker = _crafted(tmp_path)
    s = PROJECT_ROOT / "scripts"
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    args = {
        "fuse": [s / "fuse.py", f"checkpoint={path}", f"input.a={img}", f"input.b={img}", f"out={tmp_path / 'o'}"],
        "evaluate": [s / "evaluate.py", f"checkpoint={path}", "eval=ivif_tno"],
        "train_resume": [s / "train.py", *FAST, f"resume={path}", f"hydra.run.dir={tmp_path / 'r'}"],
        "train_init": [s / "train.py", *FAST, f"init={path}", f"hydra.run.dir={tmp_path / 'r'}"],
        "demo_fuse": [s / "demo_fuse.py", f"checkpoint={path}", f"out={tmp_path / 'o'}"],
        "import": [s / "import_official.py", f"src={path}", f"dst={tmp_path / 'out.pt'}"],
    }[script]
    r = _script([str(a) for a in args], tmp_path)
    assert r.returncode != 0
    assert "refused" in r.stdout + r.stderr
    assert not marker.exists()


def test_saved_checkpoints_hold_plain_types_only(tmp_path):
    m = GIFNet(enc_width=6, window=4)
    path = save_checkpoint(tmp_path / "m.pt", m, trained_tasks=["ivif"])
    obj = torch.load(path, weights_only=True)  # would raise on any non-plain object
    assert type(obj["provenance"]["torch_version"]) is str


def test_legacy_checkpoint_converts_only_when_trusted(tmp_path):
    m = GIFNet(enc_width=6, window=4)
    good = save_checkpoint(tmp_path / "m.pt", m, trained_tasks=["ivif"])
    legacy = read_checkpoint(good)
    legacy["provenance"]["torch_version"] = torch.__version__  # a TorchVersion object, as earlier versions stored
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy tuple layout earlier checkpoints held
    legacy["rng"] = {"numpy": np_state, "python": random.getstate(), "torch": torch.get_rng_state()}
    old = tmp_path / "old.pt"
    torch.save(legacy, old)
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint(old)
    with pytest.raises(CheckpointError, match="trust"):
        convert_legacy_checkpoint(old, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="overwrite"):
        convert_legacy_checkpoint(old, old, trust=True)
    with pytest.warns(UserWarning, match="full pickle"):
        new = convert_legacy_checkpoint(old, tmp_path / "new.pt", trust=True)
    obj = read_checkpoint(new)
    assert obj["provenance"]["torch_version"] == str(torch.__version__)
    assert torch.equal(obj["rng"]["numpy"]["keys"], torch.from_numpy(legacy["rng"]["numpy"][1].astype(np.int64)))
    assert all(torch.equal(obj["state_dict"][k], v) for k, v in legacy["state_dict"].items())
    from gifnet.engine.trainer import set_rng_state

    set_rng_state(obj["rng"])
    assert np.random.get_state()[2] == legacy["rng"]["numpy"][2]  # noqa: NPY002
