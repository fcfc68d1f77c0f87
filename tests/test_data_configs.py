"""Hydra data configs, DataLoader factory (workers, DistributedSampler), preview grid and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from gifnet.cli import main as cli_main
from gifnet.config import compose as gifnet_compose
from gifnet.data.config import CONFIG_DIR, compose_data_config, instantiate_data
from gifnet.data.datasets import MEMBERS, build_dataloader, official_dataset, pairs_dataset, set_epoch
from gifnet.data.preview import make_preview_grid

CROP = 32


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Tiny pairs folder, natural folder and official layout."""
    rng = np.random.default_rng(0)
    pairs, nat, off = tmp_path / "pairs", tmp_path / "natural", tmp_path / "official"
    for i in range(3):
        for sub, shape in (("A", (40, 40)), ("B", (40, 40, 3))):
            (pairs / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(pairs / sub / f"{i}.png")
        (nat / "set").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(nat / "set" / f"n{i}.jpg")
        for folder in ("infrared", "visible", "visible_focus_near", "visible_focus_far"):
            (off / folder / "train").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (CROP, CROP), dtype=np.uint8)).save(
                off / folder / "train" / f"{i}.jpg"
            )
    return pairs, nat, off


def _overrides(name: str, tmp_path: Path) -> list[str]:
    pairs, nat, off = _tree(tmp_path)
    common = [f"data.crop_size={CROP}", "data.loader.batch_size=2"]
    return {
        "demo": ["data.images=[camera,coins]", "data.repeat=1"],
        "pairs": [f"data.root={pairs}", f"data.natural=[{nat}]", "data.repeat=2"],
        "official": [f"data.root={off}"],
    }[name] + common


@pytest.mark.parametrize("name", ["demo", "pairs", "official"])
def test_config_composes_instantiates_and_yields_batch(name, tmp_path):
    cfg = gifnet_compose("preview", [f"data={name}", *_overrides(name, tmp_path)])
    assert cfg.data._target_ == "gifnet.data.datasets.build_dataset" and cfg.data.source == name
    ds = instantiate(cfg.data)
    loader = build_dataloader(ds)  # batch size from the config's loader block
    batch = next(iter(loader))
    for k in MEMBERS:
        assert batch[k].shape == (2, 1, CROP, CROP) and batch[k].dtype == torch.float32
    assert batch["has_ir"].shape == (2,)
    # build_dataloader also takes the config itself
    assert next(iter(build_dataloader(cfg.data, shuffle=False)))["vis"].shape == (2, 1, CROP, CROP)


def test_pairs_defaults_point_to_shared_training_pool(monkeypatch):
    monkeypatch.delenv("GIFNET_SHARED", raising=False)
    cfg = compose_data_config("pairs")
    assert cfg.root == "../shared/data/train/ivif/LLVIP-samples"
    assert list(cfg.natural) == ["../shared/data/train/natural"]
    # the paths group is the one place for the location: moving it moves the data roots
    monkeypatch.setenv("GIFNET_SHARED", "/data/gifnet-shared")
    assert compose_data_config("pairs").root == "/data/gifnet-shared/data/train/ivif/LLVIP-samples"
    assert compose_data_config("pairs", ["paths.train_data=/pool"]).natural == ["/pool/natural"]


def test_group_composes_under_a_primary_config(tmp_path):
    """The group works with ``defaults: - data: demo`` in a top-level config (like configs/train/train.yaml)."""
    cfg_dir = tmp_path / "cfg"
    (cfg_dir / "data").mkdir(parents=True)
    for p in (CONFIG_DIR / "data").glob("*.yaml"):  # configs/data/data/: the group's own folder
        (cfg_dir / "data" / p.name).write_text(p.read_text())
    (cfg_dir / "train.yaml").write_text("defaults:\n  - data: demo\n  - _self_\nepochs: 1\n")
    with initialize_config_dir(config_dir=str(cfg_dir), version_base=None):
        cfg = compose(config_name="train", overrides=["data=pairs"])
    assert cfg.data.source == "pairs" and cfg.epochs == 1


def test_distributed_sampler_ranks_disjoint(tmp_path):
    pairs, _, _ = _tree(tmp_path)
    ds = pairs_dataset(pairs, crop_size=CROP, repeat=3)  # 9 samples
    loaders = [
        build_dataloader(ds, batch_size=2, distributed=True, rank=r, world_size=2, drop_last=False) for r in (0, 1)
    ]
    idx = [list(ld.sampler) for ld in loaders]
    # 9 samples on 2 ranks: the sampler pads to 10, so exactly one index may be shared
    assert len(set(idx[0]) & set(idx[1])) <= len(ds) % 2 and len(idx[0]) == len(idx[1]) == 5
    assert set(idx[0]) | set(idx[1]) == set(range(len(ds)))
    even = [list(build_dataloader(ds, distributed=True, rank=r, world_size=2, drop_last=True).sampler) for r in (0, 1)]
    assert not set(even[0]) & set(even[1]) and len(even[0]) == len(even[1]) == 4
    for ld in loaders:
        set_epoch(ld, 1)
    assert ds.epoch == 1 and list(loaders[0].sampler) != idx[0]
    assert next(iter(loaders[1]))["vis"].shape == (2, 1, CROP, CROP)
    with pytest.raises(RuntimeError, match="rank"):
        build_dataloader(ds, distributed=True)


def test_preview_grid_from_samples_and_batch(tmp_path):
    pairs, nat, _ = _tree(tmp_path)
    ds = pairs_dataset(pairs, natural=nat, crop_size=CROP)
    samples = [ds[i] for i in (0, len(ds) - 1)]
    g = make_preview_grid(samples)
    assert g.dtype == np.uint8 and g.ndim == 3 and g.shape[2] == 3
    assert g.shape[1] == 6 * CROP + 5 * 2 and g.shape[0] == 18 + 2 * CROP + 2
    batch = next(iter(build_dataloader(ds, batch_size=3, shuffle=False)))
    assert make_preview_grid(batch, labels=False).shape == (3 * CROP + 4, 6 * CROP + 10, 3)


def test_prepare_data_roundtrip_and_preview_script(tmp_path):
    pairs, nat, _ = _tree(tmp_path)
    out = tmp_path / "fixed"
    args = ["prepare", "data=pairs", f"data.root={pairs}", f"data.natural=[{nat}]", f"data.crop_size={CROP}"]
    assert cli_main([*args, f"out={out}", "num=8", "progress=false"]) == 0
    for folder in ("infrared", "visible", "visible_focus_near", "visible_focus_far", "visible_under", "visible_over"):
        assert len(list((out / folder / "train").glob("*.png"))) == 8
    assert cli_main([*args, f"out={out}", "num=2", "progress=false"]) == 1  # refused: the folder is not empty
    assert len(list((out / "visible" / "train").glob("*.png"))) == 8
    back = official_dataset(out, crop_size=CROP)
    assert len(back) == 8
    assert [s.ir is None for s in back.scenes].count(True) == 3  # the 3 natural images: has_ir=False
    s = back[0]
    vis = np.asarray(Image.open(out / "visible" / "train" / "1.png"))
    np.testing.assert_allclose(s["vis"][0].numpy(), vis / 255.0, atol=1e-6)
    over = np.asarray(Image.open(out / "visible_over" / "train" / "1.png"))
    np.testing.assert_allclose(s["over"][0].numpy(), over / 255.0, atol=1e-6)  # read, not re-synthesised
    png = tmp_path / "preview.png"
    args = ["preview", "data=official", f"data.root={out}", f"data.crop_size={CROP}", "n=3", f"out={png}"]
    assert cli_main(args) == 0
    assert Image.open(png).size[0] == 6 * CROP + 10


def test_instantiate_data_helper():
    ds = instantiate_data("demo", ["images=[camera]", "repeat=2", "crop_size=16"])
    assert len(ds) == 2 and ds[0]["vis"].shape == (1, 16, 16)


@pytest.mark.shared
def test_pairs_on_shared_training_pool(shared):
    root = shared / "data" / "train" / "ivif" / "LLVIP-samples"
    ds = pairs_dataset(root, natural=[shared / "data" / "train" / "natural" / "Kodak24"], crop_size=64, repeat=1)
    assert len(ds.scenes) == 44 + 24
    s = ds[0]
    assert bool(s["has_ir"]) and s["ir"].shape == (1, 64, 64)
    assert not bool(ds[len(ds) - 1]["has_ir"])
