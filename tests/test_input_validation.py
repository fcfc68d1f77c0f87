"""Fusion inputs: bad arrays and tensors get a clear error; common image variants work or get a user-level one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gifnet.inference.engine import fuse_tensors
from gifnet.inference.fusion import Fuser, as_fusable
from gifnet.io import read_image
from gifnet.models import GIFNet


@pytest.fixture(scope="module")
def fuser():
    torch.manual_seed(0)
    return Fuser(GIFNet(enc_width=6).eval(), task="ivif")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return (rng.random((24, 24, 3)) * 255).astype(np.uint8), (rng.random((24, 24)) * 255).astype(np.uint8)


T = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "a, exc, match",
    [
        (torch.full((1, 1, 16, 16), float("nan")), ValueError, "NaN or infinite"),
        (T / 0, ValueError, "NaN or infinite"),
        (T * 255, ValueError, r"\[0, 1\].*divide by 255"),
        (T - 0.5, ValueError, r"\[0, 1\]"),
        ((T * 255).to(torch.uint8), TypeError, "floating-point"),
        (T[0], ValueError, "B×1×H×W"),
        (T.repeat(1, 3, 1, 1), ValueError, "B×1×H×W"),
    ],
)
def test_model_fuse_refuses_bad_tensors(a, exc, match):
    model = GIFNet(enc_width=6).eval()
    with pytest.raises(exc, match=match):
        fuse_tensors(model, a, T if a.ndim == 4 and a.shape[1] == 1 else a)


def test_model_fuse_allows_round_off_at_the_range_ends():
    model = GIFNet(enc_width=6).eval()
    a = T.clone()
    a[0, 0, 0, 0], a[0, 0, 0, 1] = 1.00001, -0.00001
    assert torch.isfinite(fuse_tensors(model, a, T)).all()


@pytest.mark.parametrize(
    "arr, exc, match",
    [
        (np.zeros(24, np.uint8), ValueError, r"A: expected an H x W .*shape \(24,\)"),
        (np.zeros((1, 24, 24, 3), np.uint8), ValueError, r"shape \(1, 24, 24, 3\)"),
        (np.zeros((24, 24, 5), np.uint8), ValueError, "C = 1, 3"),
        (np.zeros((24, 24), np.float32), TypeError, r"float32.*65535"),
        (np.full((24, 24), np.nan), TypeError, "float64"),
        (np.zeros((24, 24), np.int32), TypeError, "int32"),
        (np.zeros((24, 24), bool), TypeError, "bool"),
        ([[0, 1], [2, 3]], TypeError, "NumPy image array, got list"),
    ],
)
def test_fuse_arrays_refuses_bad_arrays_naming_the_input(fuser, images, arr, exc, match):
    with pytest.raises(exc, match=match):
        fuser.fuse_arrays(arr, images[1])


def test_alpha_channels_are_dropped(fuser, images):
    rgb, gray = images
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    assert np.array_equal(fuser.fuse_arrays(rgba, gray), fuser.fuse_arrays(rgb, gray))
    la = np.dstack([gray, np.full(gray.shape, 9, np.uint8)])
    assert np.array_equal(fuser.fuse_arrays(la, gray), fuser.fuse_arrays(gray, gray))
    assert as_fusable(rgba).shape == (24, 24, 3) and as_fusable(gray[..., None]).shape == (24, 24)


def _variants(folder, rgb, gray):
    """Image files of common Pillow modes, written by Pillow itself."""
    folder.mkdir()
    files = {
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full(gray.shape, 200, np.uint8)]), "RGBA"),
        "la.png": Image.fromarray(gray).convert("LA"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "gray16.png": Image.fromarray(gray.astype(np.uint16) * 257),
        "bilevel.png": Image.fromarray(gray).convert("1"),
        "int32.tif": Image.fromarray(gray).convert("I"),
    }
    for name, im in files.items():
        im.save(folder / name)
    pal = Image.fromarray(rgb).convert("P")
    pal.save(folder / "palette_transparent.png", transparency=0)
    Image.fromarray(gray.astype(np.float32) / 255).save(folder / "float32.tif")
    return sorted(p.name for p in folder.iterdir())


def test_common_image_variants_fuse_or_get_a_clear_message(fuser, images, tmp_path):
    rgb, gray = images
    names = _variants(tmp_path / "A", rgb, gray)
    (tmp_path / "B").mkdir()
    for n in names:
        Image.fromarray(gray).save(tmp_path / "B" / n)
    summary = fuser.fuse_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", ext=".png", progress=False)
    assert sorted(summary.fused) == sorted(n for n in names if n != "float32.tif")
    ((failed, reason),) = summary.failed.items()
    assert failed == "float32.tif" and "32-bit floating-point image" in reason and "16-bit" in reason
    assert read_image(tmp_path / "out" / "rgba.png").shape == (24, 24, 3)  # opaque colour output
    assert read_image(tmp_path / "out" / "gray16.png").dtype == np.uint16  # 16-bit in, 16-bit out


@pytest.fixture()
def pair_folders(tmp_path, images):
    for side in ("A", "B"):
        (tmp_path / side).mkdir()
        Image.fromarray(images[1]).save(tmp_path / side / "x.png")
    return tmp_path


@pytest.mark.parametrize("ext, written", [("png", "x.png"), (".PNG", "x.png"), (" .tif ", "x.tif"), ("jpg", "x.jpg"),
                                          (None, "x.png"), ("", "x.png"), ("null", "x.png")])  # fmt: skip
def test_ext_is_normalised(fuser, pair_folders, ext, written):
    s = fuser.fuse_folders(pair_folders / "A", pair_folders / "B", pair_folders / "out", ext=ext, progress=False)
    assert s.fused == ["x.png"] and sorted(p.name for p in (pair_folders / "out").iterdir()) == [written]


@pytest.mark.parametrize(
    "a, b, ext, out, match",
    [
        ("A", "B", ".xyz", "out", r"ext='\.xyz' is not a supported image extension"),
        ("A", "B", ". png", "out", "not a supported image extension"),
        ("A", "B", 3, "out", "ext must be an image extension"),
        ("A", "B", ".png", "afile", "is an existing file: give a folder"),
        ("A", "B", ".png", "fused.png", r"names a file \(\.png\) but the inputs are folders"),
        ("A/x.png", "B/x.png", ".png", "A/x.png", "refusing to overwrite input"),
        ("A/x.png", "B/x.png", ".png", "A/other.png", "in an input folder"),
        ("A", "B", ".png", "A", "is an input folder"),
    ],
)
def test_bad_output_settings_are_refused_before_any_work(fuser, pair_folders, a, b, ext, out, match):
    (pair_folders / "afile").write_text("not a folder")
    before = sorted(str(p) for p in pair_folders.rglob("*"))
    with pytest.raises(ValueError, match=match):
        fuser.fuse_folders(pair_folders / a, pair_folders / b, pair_folders / out, ext=ext, progress=False)
    assert sorted(str(p) for p in pair_folders.rglob("*")) == before  # nothing written, nothing created


def test_one_pair_into_a_named_output_file(fuser, pair_folders):
    s = fuser.fuse_folders(pair_folders / "A" / "x.png", pair_folders / "B" / "x.png", pair_folders / "o" / "f.png",
                           progress=False)  # fmt: skip
    assert s.fused == ["x.png"] and read_image(pair_folders / "o" / "f.png").shape == (24, 24)


def test_a_stack_output_never_lands_in_the_stack_folder(pair_folders):
    from gifnet.inference.fusion import fuse_from_config, load_fuse_config

    stack = pair_folders / "A"
    for out in (stack, stack / "fused.png"):
        cfg = load_fuse_config([f"checkpoint={pair_folders / 'never_read.pt'}", "task=meif", f"input.stack={stack}",
                                f"out={out}"])  # fmt: skip
        with pytest.raises(ValueError, match="stack folder"):  # refused before the checkpoint is even read
            fuse_from_config(cfg)
    cfg = load_fuse_config([f"checkpoint={pair_folders / 'x.pt'}", "task=meif", f"input.stack={stack}",
                            f"out={pair_folders / 'out'}", "ext=.xyz"])  # fmt: skip
    with pytest.raises(ValueError, match="not a supported image extension"):
        fuse_from_config(cfg)
    assert sorted(p.name for p in stack.iterdir()) == ["x.png"]
