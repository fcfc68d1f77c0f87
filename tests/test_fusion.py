"""Fusion API and CLI: presets, slot order, colour, stacks, 16-bit, remote sensing, bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from gifnet.inference.fusion import TASKS, Fuser, get_task, load_any_checkpoint
from gifnet.io import PairingError, is_gray, read_image
from gifnet.models import GIFNet, save_checkpoint
from gifnet.models.checkpoint import CheckpointError
from gifnet.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return GIFNet(enc_width=6, window=4).eval()


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gray(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_presets_and_unknown_task():
    assert set(TASKS) == {"ivif", "mfif", "meif", "medical", "nir_vis", "remote", "enhance"}
    assert get_task("nir-vis").name == "nir_vis"
    assert TASKS["meif"].swap and not TASKS["ivif"].swap
    with pytest.raises(ValueError, match="unknown task"):
        get_task("deblur")


def test_meif_puts_over_exposed_image_in_slot_a(tiny_model, monkeypatch):
    seen = {}
    fuser = Fuser(tiny_model, task="meif")

    def record(a, b):
        seen["a"], seen["b"] = a.mean(), b.mean()
        return (a + b) / 2

    monkeypatch.setattr(fuser, "fuse_luma", record)
    under, over = np.full((16, 16), 30, np.uint8), np.full((16, 16), 220, np.uint8)
    fuser.fuse_arrays(under, over)  # A = under, B = over
    assert seen["a"] > seen["b"]  # slot a got the over-exposed image
    fuser = Fuser(tiny_model, task="ivif")
    monkeypatch.setattr(fuser, "fuse_luma", record)
    fuser.fuse_arrays(under, over)
    assert seen["a"] < seen["b"]


def test_colour_policy_per_image(tiny_model):
    fuser = Fuser(tiny_model, task="ivif")
    gray, rgb = _gray(20, 24, 1), _rgb(20, 24, 2)
    assert fuser.fuse_arrays(gray, gray).shape == (20, 24)
    out = fuser.fuse_arrays(gray, rgb)
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    # 3 identical channels count as gray
    assert fuser.fuse_arrays(np.stack([gray] * 3, -1), gray).shape == (20, 24)


def test_sixteen_bit_in_sixteen_bit_out(tiny_model):
    fuser = Fuser(tiny_model, task="mfif")
    a = (np.random.default_rng(0).random((18, 22)) * 65535).astype(np.uint16)
    out = fuser.fuse_arrays(a, a[::-1].copy())
    assert out.dtype == np.uint16 and out.max() > 255


def test_enhance_uses_one_image_and_keeps_colour(tiny_model):
    out = Fuser(tiny_model, task="enhance").fuse_arrays(_rgb(16, 16, 3))
    assert out.shape == (16, 16, 3)


def test_stack_fusion(tiny_model):
    imgs = [np.full((16, 16), v, np.uint8) + _gray(16, 16, v) // 8 for v in (200, 20, 110)]
    fuser = Fuser(tiny_model, task="meif")
    out = fuser.fuse_stack(imgs)
    assert out.shape == (16, 16)
    # order-independent for meif (sorted by brightness)
    assert np.array_equal(out, fuser.fuse_stack(imgs[::-1]))
    with pytest.raises(ValueError, match="at least 2"):
        fuser.fuse_stack(imgs[:1])


def test_remote_bands(tiny_model):
    rng = np.random.default_rng(0)
    ms = rng.integers(0, 256, (24, 20, 4), dtype=np.uint8)
    pan = rng.integers(0, 256, (24, 20), dtype=np.uint8)
    out = Fuser(tiny_model, task="remote").fuse_remote(ms, pan)
    assert out.shape == ms.shape and out.dtype == np.uint8
    with pytest.raises(ValueError):
        Fuser(tiny_model, task="remote").fuse_remote(ms, pan[:-1])


def test_folder_fusion_errors_and_atomic_outputs(tiny_model, tmp_path):
    for name, seed in (("x.png", 1), ("y.jpg", 2)):
        _save(tmp_path / "A" / name, _gray(20, 20, seed))
        _save(tmp_path / "B" / name, _rgb(20, 20, seed))
    (tmp_path / "A" / "notes.txt").write_text("not an image")  # ignored
    fuser = Fuser(tiny_model, task="ivif")
    s = fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", progress=False)
    assert sorted(s.fused) == ["x.png", "y.jpg"] and not s.failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]
    assert read_image(tmp_path / "out" / "y.png").shape == (20, 20, 3)
    # unpaired names: error listing them, or skipped on request
    _save(tmp_path / "A" / "only_a.png", _gray(20, 20, 5))
    with pytest.raises(PairingError, match="only_a.png"):
        fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out2", progress=False)
    s = fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out2", skip_unpaired=True, progress=False)
    assert s.skipped == ["only_a.png"] and len(s.fused) == 2
    # size mismatch names both files and sizes; resize=b resamples A
    _save(tmp_path / "A2" / "p.png", _gray(20, 30, 1))
    _save(tmp_path / "B2" / "p.png", _gray(24, 32, 1))
    s = fuser.fuse_folders(tmp_path / "A2", tmp_path / "B2", tmp_path / "out3", progress=False)
    assert "30x20" in s.failed["p.png"] and "32x24" in s.failed["p.png"] and "A2" in s.failed["p.png"]
    s = Fuser(tiny_model, task="ivif", resize="b").fuse_folders(tmp_path / "A2", tmp_path / "B2", tmp_path / "o4",
                                                               progress=False)
    assert s.fused == ["p.png"] and read_image(tmp_path / "o4" / "p.png").shape == (24, 32)
    # corrupt file: named in the failures, the others still fused
    (tmp_path / "A2" / "q.png").write_bytes(b"\x89PNG garbage")
    _save(tmp_path / "B2" / "q.png", _gray(24, 32, 1))
    s = Fuser(tiny_model, task="ivif", resize="b").fuse_folders(tmp_path / "A2", tmp_path / "B2", tmp_path / "o5",
                                                               progress=False)
    assert "q.png" in s.failed and "q.png" in s.failed["q.png"] and s.fused == ["p.png"]
    # never write into an input folder, whatever the extension
    for out, ext in ((tmp_path / "A", None), (tmp_path / "B", ".png"), (tmp_path / "B" / ".", ".tif")):
        with pytest.raises(ValueError, match="input folder"):
            fuser.fuse_folders(tmp_path / "A", tmp_path / "B", out, ext=ext, progress=False, skip_unpaired=True)
    # no temporary files left behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_missing_inputs_and_checkpoint(tiny_model, tmp_path):
    fuser = Fuser(tiny_model, task="ivif")
    with pytest.raises(FileNotFoundError, match="input.a"):
        fuser.fuse_folders(tmp_path / "nope", tmp_path, tmp_path / "o")
    (tmp_path / "emptyA").mkdir()
    (tmp_path / "emptyB").mkdir()
    with pytest.raises(Exception, match="emptyA|no image"):
        fuser.fuse_folders(tmp_path / "emptyA", tmp_path / "emptyB", tmp_path / "o")
    with pytest.raises(CheckpointError, match="not found"):
        load_any_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="color_mode"):
        Fuser(tiny_model, color_mode="lab")


def test_remote_folder_checks_band_counts(tiny_model, tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    tifffile.imwrite(tmp_path / "A" / "t.tif", rng.integers(0, 256, (16, 16, 4), dtype=np.uint8))
    tifffile.imwrite(tmp_path / "B" / "t.tif", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    s = Fuser(tiny_model, task="remote").fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "o", progress=False)
    assert "t.tif" in s.failed and "band" in s.failed["t.tif"].lower()
    tifffile.imwrite(tmp_path / "B" / "t.tif", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    s = Fuser(tiny_model, task="remote").fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "o", progress=False)
    out = tifffile.imread(tmp_path / "o" / "t.tif")
    assert s.fused == ["t.tif"] and out.shape == (16, 16, 4) and out.dtype == np.uint8


def test_cli_end_to_end(tiny_model, tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.pt", tiny_model, trained_tasks=["ivif"])
    _save(tmp_path / "A" / "s.png", _gray(20, 20, 1))
    _save(tmp_path / "B" / "s.png", _rgb(20, 20, 2))
    cmd = [sys.executable, str(PROJECT_ROOT / "scripts" / "fuse.py"), f"checkpoint={ckpt}", "task=ivif",
           f"input.a={tmp_path / 'A'}", f"input.b={tmp_path / 'B'}", f"out={tmp_path / 'out'}", "progress=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "out" / "s.png").shape == (20, 20, 3)
    r = subprocess.run([*cmd[:2], f"checkpoint={tmp_path / 'nope.pt'}", *cmd[3:]], capture_output=True, text=True,
                       check=False, cwd=tmp_path)
    assert r.returncode == 1 and "not found" in (r.stderr + r.stdout)
    for v in (1, 2, 3):
        _save(tmp_path / "stack" / f"e{v}.png", np.full((16, 16), 60 * v, np.uint8))
    r = subprocess.run([*cmd[:2], f"checkpoint={ckpt}", "task=meif", f"input.a={tmp_path}",
                        f"input.stack={tmp_path / 'stack'}", f"out={tmp_path / 'so'}", "progress=false"],
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "so" / "stack.png").shape == (16, 16)


# -- real benchmarks with the released checkpoint (skip without ../shared) ------------------------------------
BENCH = {
    "ivif": ("ivif/VIFB", "walkingnight.jpg"),
    "mfif": ("mfif/Lytro", "lytro-01.jpg"),
    "meif": ("meif/MEFB", "Chair.jpg"),
    "medical": ("medical/Harvard-MRI-PET", "MRI_PET_11.png"),
    "nir_vis": ("nir-vis/RGB-NIR-country", "country_0000.jpg"),
    "enhance": ("meif/MEFB", "Chair.jpg"),
}


@pytest.fixture(scope="module")
def official_fuser_model(shared):
    return load_any_checkpoint(shared / "official" / "Final.model")[0]


@pytest.mark.parametrize("task", sorted(BENCH))
def test_presets_fuse_real_benchmarks(shared, official_fuser_model, task, tmp_path):
    folder, name = BENCH[task]
    root = shared / "data" / "benchmarks" / folder
    crops = {}
    for side in ("A", "B"):
        img = read_image(root / side / name)
        top, left = (img.shape[0] - 72) // 2, (img.shape[1] - 88) // 2  # small centre crop keeps the test fast
        crops[side] = img[top : top + 72, left : left + 88]
        _save(tmp_path / side / (name.rsplit(".", 1)[0] + ".png"), crops[side])
    fuser = Fuser(official_fuser_model, task=task)
    s = fuser.fuse_folders(tmp_path / "A", None if task == "enhance" else tmp_path / "B", tmp_path / "out",
                           progress=False)
    assert len(s.fused) == 1 and not s.failed
    out = read_image(tmp_path / "out" / s.fused[0].replace(".jpg", ".png"))
    assert out.shape[:2] == (72, 88)
    # colour out exactly when an input the task reads is colour (chroma policy: fused, or the one colour slot's)
    read = ("A",) if task == "enhance" else ("A", "B")
    expect_colour = any(crops[s].ndim == 3 and not is_gray(crops[s]) for s in read)
    assert (out.ndim == 3) == expect_colour
    assert 2 < out.mean() < 253 and out.std() > 3  # a real image, not a constant


def test_remote_preset_on_real_tiles(shared, official_fuser_model, tmp_path):
    root = shared / "data" / "benchmarks" / "remote" / "GIFNet-sample"
    bands = np.stack([read_image(root / "A" / f"tile1_band{k}.png")[:64, :80] for k in range(1, 5)], -1)
    pan = read_image(root / "B" / "tile1_band1.png")[:64, :80]
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    tifffile.imwrite(tmp_path / "A" / "tile1.tif", bands)
    tifffile.imwrite(tmp_path / "B" / "tile1.tif", pan)
    s = Fuser(official_fuser_model, task="remote").fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "o",
                                                                 progress=False)
    out = tifffile.imread(tmp_path / "o" / "tile1.tif")
    assert s.fused == ["tile1.tif"] and out.shape == (64, 80, 4) and out.dtype == np.uint8


def test_fuse_luma_matches_parity_fixture(shared, official_fuser_model):
    d = np.load(shared / "official" / "parity" / "remote_band1.npz")
    y = Fuser(official_fuser_model, task="remote").fuse_luma(d["a"] / 255.0, d["b"] / 255.0)
    assert np.abs(y - d["fused"]).max() <= 1e-5


def test_one_call_library_api(tiny_model, tmp_path):
    import gifnet

    out = gifnet.fuse(tiny_model, _gray(16, 18, 1), _rgb(16, 18, 2), task="ivif")
    assert out.shape == (16, 18, 3) and out.dtype == np.uint8
    _save(tmp_path / "A" / "s.png", _gray(16, 16, 1))
    _save(tmp_path / "B" / "s.png", _gray(16, 16, 2))
    summary = gifnet.fuse(tiny_model, tmp_path / "A", tmp_path / "B", task="mfif", out=tmp_path / "o", progress=False)
    assert summary.fused == ["s.png"] and (tmp_path / "o" / "s.png").is_file()
    with pytest.raises(ValueError, match="out=DIR"):
        gifnet.fuse(tiny_model, tmp_path / "A", tmp_path / "B")


def test_colliding_output_names_are_refused_before_any_work(tiny_model, tmp_path):
    for name in ("a.png", "a.jpg"):
        _save(tmp_path / "A" / name, _gray(12, 12, 1))
        _save(tmp_path / "B" / name, _gray(12, 12, 2))
    fuser = Fuser(tiny_model, task="ivif")
    with pytest.raises(ValueError, match=r"a\.jpg and a\.png would both be written to .*a\.png"):
        fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing written
    s = fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", ext=None, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "a.png"] and not s.failed


def test_any_per_pair_error_is_recorded_and_the_folder_goes_on(tiny_model, tmp_path, monkeypatch):
    import gifnet.inference.fusion as fusion_mod

    for name in ("p.png", "q.png"):
        _save(tmp_path / "A" / name, _gray(12, 12, 1))
        _save(tmp_path / "B" / name, _gray(12, 12, 2))
    real = fusion_mod.read_image

    def flaky(path, *args, **kwargs):
        if Path(path).name == "p.png":
            raise RuntimeError("decoder exploded")  # not a ValueError/OSError: still one bad item
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fusion_mod, "read_image", flaky)
    s = Fuser(tiny_model, task="ivif").fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "o", progress=False)
    assert s.fused == ["q.png"] and s.failed == {"p.png": "RuntimeError: decoder exploded"}
