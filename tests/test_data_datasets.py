"""Joint-sample datasets: determinism, alignment under augmentation, sources and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gifnet.data.datasets import (
    MEMBERS,
    JointFusionDataset,
    Scene,
    build_dataloader,
    demo_dataset,
    official_dataset,
    pairs_dataset,
)
from gifnet.io import DataError, EmptyFolderError, PairingError, SizeMismatchError

CROP = 32
# synthesis that changes nothing: every member equals vis (exact for 8-bit sources)
IDENTITY = {
    "focus": {"blur_radius": [0, 0]},
    "exposure": {
        "ev_under": [0, 0],
        "ev_over": [0, 0],
        "shot_noise": [0, 0],
        "read_noise": [0, 0],
        "saturation": [1, 1],
        "gamma": [2.2, 2.2],
    },
}


def _img(h: int, w: int, seed: int, rgb: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _pairs_root(tmp_path: Path, n: int = 3, size=(40, 48), names=None) -> Path:
    root = tmp_path / "pairs"
    for i, name in enumerate(names or [f"p{i}.png" for i in range(n)]):
        _save(root / "A" / name, _img(*size, seed=100 + i, rgb=False))
        _save(root / "B" / name, _img(*size, seed=200 + i))
    return root


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in (*MEMBERS, "has_ir"))


# ------------------------------------------------------------------------------------------ determinism
def test_sample_format(tmp_path):
    ds = pairs_dataset(_pairs_root(tmp_path), crop_size=CROP)
    s = ds[0]
    assert set(s) == {*MEMBERS, "has_ir"}
    for k in MEMBERS:
        assert s[k].shape == (1, CROP, CROP) and s[k].dtype == torch.float32
        assert 0 <= float(s[k].min()) and float(s[k].max()) <= 1
    assert s["has_ir"].dtype == torch.bool and bool(s["has_ir"])
    assert not torch.equal(s["near"], s["far"]) and not torch.equal(s["under"], s["over"])


def test_determinism_seed_epoch_online(tmp_path):
    root = _pairs_root(tmp_path)
    a = pairs_dataset(root, crop_size=CROP, seed=5)
    b = pairs_dataset(root, crop_size=CROP, seed=5)
    assert _equal(a[1], b[1])
    assert not _equal(a[1], pairs_dataset(root, crop_size=CROP, seed=6)[1])
    s0 = a[1]
    a.set_epoch(1)
    s1 = a[1]
    assert not _equal(s0, s1)
    a.set_epoch(0)
    assert _equal(a[1], s0)  # reproducible per (seed, epoch, index)
    fixed = pairs_dataset(root, crop_size=CROP, seed=5, online=False)
    f0 = fixed[1]
    fixed.set_epoch(3)
    assert _equal(f0, fixed[1])


def test_same_batches_with_and_without_workers(tmp_path):
    ds = pairs_dataset(_pairs_root(tmp_path, n=4), crop_size=CROP, seed=1)
    b0 = next(iter(build_dataloader(ds, batch_size=4, num_workers=0, shuffle=False)))
    b1 = next(iter(build_dataloader(ds, batch_size=4, num_workers=1, shuffle=False)))
    assert _equal(b0, b1)


# ----------------------------------------------------------------------------------------- alignment
def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in range(4):
        r = np.rot90(a, k)
        out += [r, r[:, ::-1]]
    return out


def test_members_aligned_under_augmentation(tmp_path):
    """Six different but pixel-wise related files: relations survive only if transforms are identical."""
    base = _img(40, 44, seed=3, rgb=False).astype(np.int32)
    derived = {
        "infrared": base,
        "visible": base,
        "visible_focus_near": 255 - base,
        "visible_focus_far": base // 2,
        "visible_under": base // 4,
        "visible_over": np.minimum(base + 7, 255),
    }
    root = tmp_path / "official"
    for folder, arr in derived.items():
        _save(root / folder / "train" / "1.png", arr.astype(np.uint8))
    ds = official_dataset(root, crop_size=CROP, augment=True, repeat=16)
    seen = set()
    for i in range(len(ds)):
        s = {k: np.rint(v[0].numpy() * 255).astype(np.int32) for k, v in ds[i].items() if k != "has_ir"}
        v = s["vis"]
        np.testing.assert_array_equal(s["ir"], v)
        np.testing.assert_array_equal(s["near"], 255 - v)
        np.testing.assert_array_equal(s["far"], v // 2)
        np.testing.assert_array_equal(s["under"], v // 4)
        np.testing.assert_array_equal(s["over"], np.minimum(v + 7, 255))
        # vis is a dihedral transform of a window of the original
        hits = [
            (t, y, x)
            for t, cand in enumerate(_dihedral(v))
            for y in range(40 - CROP + 1)
            for x in range(44 - CROP + 1)
            if np.array_equal(cand, base[y : y + CROP, x : x + CROP])
        ]
        assert len(hits) == 1
        seen.add(hits[0][0])
    assert len(seen) >= 3  # several flips/rotations were exercised


def test_synthesised_members_aligned_with_identity_synthesis(tmp_path):
    root = _pairs_root(tmp_path, n=2)
    ds = pairs_dataset(root, crop_size=CROP, augment=True, repeat=4, **IDENTITY)
    for i in range(len(ds)):
        s = ds[i]
        for k in ("near", "far", "under", "over"):
            assert float((s[k] - s["vis"]).abs().max()) <= 1e-6, k


# ------------------------------------------------------------------------------------------ sources
def test_natural_images_have_no_ir(tmp_path):
    root = _pairs_root(tmp_path, n=2)
    nat = tmp_path / "natural"
    _save(nat / "x" / "n1.jpg", _img(36, 50, seed=7))
    _save(nat / "n2.png", _img(50, 36, seed=8))
    (nat / "README.md").write_text("ignored")
    ds = pairs_dataset(root, natural=[nat], crop_size=CROP, repeat=2, natural_repeat=1)
    assert len(ds.scenes) == 4 and len(ds) == 6
    flags = [bool(ds[i]["has_ir"]) for i in range(len(ds))]
    assert flags.count(False) == 2
    for i in range(len(ds)):
        s = ds[i]
        if not bool(s["has_ir"]):
            assert torch.equal(s["ir"], s["vis"])
    batch = next(iter(build_dataloader(ds, batch_size=6, shuffle=False)))
    assert batch["has_ir"].tolist() == flags


def test_official_reads_near_far_files_and_synthesises_exposure(tmp_path):
    root = tmp_path / "off"
    for k in (1, 2, 10):
        for j, folder in enumerate(("infrared", "visible", "visible_focus_near", "visible_focus_far")):
            _save(root / folder / "train" / f"{k}.jpg", _img(CROP, CROP, seed=10 * k + j))
    ds = official_dataset(root, crop_size=CROP)
    assert [s.name for s in ds.scenes] == ["1.jpg", "2.jpg", "10.jpg"]  # numeric order
    s = ds[0]
    near = np.asarray(Image.open(root / "visible_focus_near" / "train" / "1.jpg").convert("L"))
    np.testing.assert_allclose(s["near"][0].numpy(), near / 255.0, atol=1e-6)  # as-is, no augmentation
    assert float(s["under"].mean()) < float(s["over"].mean())
    (root / "visible_focus_far" / "train" / "2.jpg").unlink()
    with pytest.raises(PairingError, match="2.jpg"):
        official_dataset(root, crop_size=CROP)
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        official_dataset(tmp_path / "nothing_here")  # root missing → names it
    (root / "visible_focus_near").rename(root / "renamed")
    with pytest.raises(FileNotFoundError, match="visible_focus_near"):
        official_dataset(root, crop_size=CROP)


def test_demo_source_small_subset():
    ds = demo_dataset(images=["camera", "coffee"], repeat=2, crop_size=CROP)
    assert len(ds) == 4
    s = ds[0]
    assert bool(s["has_ir"]) and not torch.equal(s["ir"], s["vis"])


# --------------------------------------------------------------------------------------- bad inputs
def test_unpaired_names_listed_or_skipped(tmp_path):
    root = _pairs_root(tmp_path, n=2)
    _save(root / "A" / "lonely_ir.png", _img(40, 48, 1, rgb=False))
    with pytest.raises(PairingError, match="lonely_ir.png"):
        pairs_dataset(root, crop_size=CROP)
    with pytest.warns(UserWarning, match="lonely_ir.png"):
        ds = pairs_dataset(root, crop_size=CROP, skip_unpaired=True)
    assert len(ds) == 2


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    root = _pairs_root(tmp_path, n=2)
    _save(root / "B" / "p1.png", _img(41, 50, seed=9))
    with pytest.raises(DataError, match="max_corrupt_fraction") as ei:  # 1 of 2 scenes: above the 5 % default
        pairs_dataset(root, crop_size=CROP)
    msg = str(ei.value)
    assert "A/p1.png" in msg and "B/p1.png" in msg and "48x40" in msg and "50x41" in msg
    # a mismatched pair is one bad item like any other: within max_corrupt_fraction it is skipped and counted
    with pytest.warns(UserWarning, match="size mismatch"):
        ds = pairs_dataset(root, crop_size=CROP, max_corrupt_fraction=0.5)
    assert ds.n_corrupt == 1 and [s.name for s in ds.scenes] == ["p0.png"]
    with pytest.raises(SizeMismatchError):  # the class of the error itself is unchanged
        ds._check_sizes(ds.scenes[0], {"ir": (1, 1), "vis": (2, 2)})


def test_any_error_type_of_one_file_counts_as_corrupt(tmp_path, monkeypatch):
    import gifnet.data.datasets as dsmod

    root = _pairs_root(tmp_path, n=4)
    real = dsmod.read_image

    def flaky(path, *a, **k):
        if Path(path).name == "p2.png" and Path(path).parent.name == "B":
            raise RuntimeError("decoder crashed")  # not an ImageReadError: e.g. a library bug or a resource limit
        return real(path, *a, **k)

    monkeypatch.setattr(dsmod, "read_image", flaky)
    with pytest.warns(UserWarning, match="RuntimeError: decoder crashed"):
        full = pairs_dataset(root, crop_size=CROP, scan="full", max_corrupt_fraction=0.5)
    assert full.n_corrupt == 1 and "p2.png" in full.corrupt[0]
    lazy = pairs_dataset(root, crop_size=CROP, scan="header")  # headers fine: the error surfaces at load time
    with pytest.warns(UserWarning, match="p2.png.*RuntimeError: decoder crashed.*another scene"):
        sample = lazy[2]
    assert sample["vis"].shape == (1, CROP, CROP)


def test_pixel_limit_refuses_large_images_from_their_header(tmp_path):
    from gifnet import io

    path = _save(tmp_path / "big.png", _img(40, 48, seed=1))
    before = io.max_image_pixels()
    io.set_max_image_pixels(1000)
    try:
        with pytest.raises(io.ImageReadError, match=r"big\.png: image too large \(48x40 = 1,920 pixels, limit 1,000"):
            io.read_image(path)
        with pytest.raises(io.ImageReadError, match="GIFNET_MAX_IMAGE_PIXELS"):
            io.read_image(path, backend="cv2")
        io.set_max_image_pixels(1920)
        assert io.read_image(path).shape == (40, 48, 3)
        with pytest.raises(ValueError, match="positive integer"):
            io.set_max_image_pixels(0)
    finally:
        io.set_max_image_pixels(before)


def test_small_images_pad_or_reject(tmp_path):
    root = tmp_path / "pairs"
    for name, size in (("big.png", (40, 40)), ("small.png", (20, 24))):
        _save(root / "A" / name, _img(*size, seed=1, rgb=False))
        _save(root / "B" / name, _img(*size, seed=2))
    padded = pairs_dataset(root, crop_size=CROP, small_policy="pad")
    assert len(padded) == 2
    for i in range(2):
        assert padded[i]["vis"].shape == (1, CROP, CROP)
    with pytest.warns(UserWarning, match="small.png"):
        rejected = pairs_dataset(root, crop_size=CROP, small_policy="reject")
    assert len(rejected) == 1 and rejected.n_rejected_small == 1
    with pytest.raises(ValueError, match="small_policy"):
        pairs_dataset(root, crop_size=CROP, small_policy="resize")
    # a crop beyond every image: refused with the crop size and what to do
    with pytest.raises(DataError, match=r"2 smaller than the 64px crop.*small_policy=pad or a smaller data\.crop_size"):
        pairs_dataset(root, crop_size=64, small_policy="reject")


def test_corrupt_files_skipped_counted_or_abort(tmp_path):
    root = _pairs_root(tmp_path, n=5)
    (root / "B" / "p3.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="p3.png"):
        ds = pairs_dataset(root, crop_size=CROP, max_corrupt_fraction=0.5)
    assert ds.n_corrupt == 1 and len(ds) == 4
    assert "p3.png" not in {s.name for s in ds.scenes}
    with pytest.raises(DataError, match="max_corrupt_fraction"):
        pairs_dataset(root, crop_size=CROP, max_corrupt_fraction=0.1)


def test_truncated_file_at_load_time_is_replaced(tmp_path):
    root = _pairs_root(tmp_path, n=3)
    good = root / "B" / "p1.png"
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 3])  # header intact, pixels truncated
    ds = pairs_dataset(root, crop_size=CROP, scan="header")
    assert len(ds) == 3  # the header scan does not decode pixels
    with pytest.warns(UserWarning, match="p1.png"):
        s = ds[1]
    assert s["vis"].shape == (1, CROP, CROP)
    with pytest.warns(UserWarning, match="p1.png"):
        full = pairs_dataset(root, crop_size=CROP, scan="full", max_corrupt_fraction=0.5)
    assert full.n_corrupt == 1


def test_empty_and_missing_folders(tmp_path):
    root = _pairs_root(tmp_path, n=1)
    for f in (root / "B").iterdir():
        f.unlink()
    with pytest.raises(EmptyFolderError, match="B"):
        pairs_dataset(root, crop_size=CROP)
    root2 = _pairs_root(tmp_path / "second", n=1)
    (tmp_path / "empty_nat").mkdir()
    with pytest.raises(EmptyFolderError, match="empty_nat"):
        pairs_dataset(root2, natural=tmp_path / "empty_nat", crop_size=CROP)
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        pairs_dataset(tmp_path / "no_such_root")
    with pytest.raises(EmptyFolderError):
        JointFusionDataset([])


def test_in_memory_scene_and_whole_images():
    vis = np.random.default_rng(0).random((24, 30), dtype=np.float32)
    ds = JointFusionDataset([Scene("m", vis=vis)], crop_size=None, augment=True)
    s = ds[0]
    assert s["vis"].shape == (1, 24, 30)  # non-square: no rotation, only flips
    assert not bool(s["has_ir"])
