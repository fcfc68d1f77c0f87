"""Image I/O shared by the project: reading, luma, listing, pairing, atomic writing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gifnet.io import (
    EmptyFolderError,
    ImageReadError,
    PairingError,
    is_gray,
    list_images,
    match_pairs,
    read_image,
    read_image_size,
    to_float01,
    to_luma,
    write_image_atomic,
)


def _rgb(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_read_png_rgb_gray_and_16bit(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    a = read_image(tmp_path / "c.png")
    assert a.dtype == np.uint8 and a.shape == (12, 10, 3)
    np.testing.assert_array_equal(a, rgb)  # RGB order (cv2 BGR converted)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), rgb[..., 0])
    deep = np.random.default_rng(1).integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    p = write_image_atomic(tmp_path / "deep.png", deep)
    back = read_image(p)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, deep)
    g16 = deep[..., 1].copy()
    np.testing.assert_array_equal(read_image(write_image_atomic(tmp_path / "g16.tif", g16)), g16)


def test_read_jpeg_matches_pillow_and_luma_matches_convert_L(tmp_path):
    rgb = _rgb(16, 16)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=90)
    a = read_image(tmp_path / "x.jpg")
    with Image.open(tmp_path / "x.jpg") as im:
        np.testing.assert_array_equal(a, np.asarray(im.convert("RGB")))
        np.testing.assert_array_equal(to_luma(a), np.asarray(im.convert("L")))
    np.testing.assert_array_equal(to_luma(rgb), np.asarray(Image.fromarray(rgb).convert("L")))
    assert to_luma(rgb[..., 0]) is not None and to_luma(rgb[..., 0]).shape == (16, 16)
    f = to_luma(rgb.astype(np.float32) / 255)
    assert f.dtype == np.float32 and abs(float(f[0, 0]) - float(to_luma(rgb)[0, 0]) / 255) < 1 / 255


def test_is_gray_and_float01():
    g = _rgb()[..., 0]
    assert is_gray(g) and is_gray(np.stack([g] * 3, -1)) and is_gray(np.dstack([g, g, g, g * 0]))
    assert not is_gray(_rgb())
    assert to_float01(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert to_float01(np.array([[65535]], np.uint16)).tolist() == [[1.0]]


def test_corrupt_empty_missing_files_raise_named_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb(64, 64)).save(good, quality=95)
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    for name in ("bad.png", "empty.jpg", "trunc.jpg", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image_size(tmp_path / "bad.png")
    assert read_image_size(good) == (64, 64)


def test_list_images_sorted_and_filtered(tmp_path):
    for n in ("b.png", "a.JPG", "c.txt", "README.md", ".hidden.png"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.JPG", "b.png", "d.png"]
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(tmp_path / "nope")


def _pair_dirs(tmp_path, names_a, names_b):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    for n in names_a:
        Image.fromarray(_rgb()).save(a / n)
    for n in names_b:
        Image.fromarray(_rgb()).save(b / n)
    return a, b


def test_match_pairs_ok_and_unpaired_listed(tmp_path):
    a, b = _pair_dirs(tmp_path, ["1.png", "2.png", "only_a.png"], ["2.png", "1.png", "only_b.png"])
    (a / "notes.txt").write_text("ignored")
    with pytest.raises(PairingError) as ei:
        match_pairs(a, b)
    assert "only_a.png" in str(ei.value) and "only_b.png" in str(ei.value)
    with pytest.warns(UserWarning, match="only_a.png"):
        pairs = match_pairs(a, b, skip_unpaired=True)
    assert [n for n, _, _ in pairs] == ["1.png", "2.png"]
    assert pairs[0][1] == a / "1.png" and pairs[0][2] == b / "1.png"


def test_match_pairs_empty_and_by_stem(tmp_path):
    a, b = _pair_dirs(tmp_path, ["x.png"], [])
    with pytest.raises(EmptyFolderError, match=str(b)):
        match_pairs(a, b)
    Image.fromarray(_rgb()).save(b / "x.jpg")
    with pytest.raises(PairingError):
        match_pairs(a, b)
    assert [n for n, _, _ in match_pairs(a, b, by_stem=True)] == ["x"]


def test_write_image_atomic(tmp_path):
    rgb = _rgb()
    p = write_image_atomic(tmp_path / "sub" / "out", rgb)  # no extension → PNG, parents created
    assert p.suffix == ".png"
    np.testing.assert_array_equal(read_image(p), rgb)
    assert [q.name for q in p.parent.iterdir()] == ["out.png"]  # no temp file left behind
    f = write_image_atomic(tmp_path / "f.png", np.full((4, 4), 0.5, np.float32))
    assert read_image(f)[0, 0] == 128
    with pytest.raises(ValueError, match="JPEG"):
        write_image_atomic(tmp_path / "x.jpg", np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="NaN"):
        write_image_atomic(tmp_path / "n.png", np.full((2, 2), np.nan, np.float32))
