"""Parity with the released checkpoint on the six official fixtures (skips without ../shared)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from gifnet.inference.engine import fuse_tensors
from gifnet.models.convert import OFFICIAL_SHA256, load_official, sha256_of

CASES = ["ivif", "mfif", "meif", "medical", "nirvis", "remote_band1"]
TOL = 1e-5  # measured 1.3e-6 (README); float32 round-off of other CPUs stays far below


@pytest.fixture(scope="module")
def official_model(shared):
    return load_official(shared / "official" / "Final.model")


def _load_case(shared, case):
    d = np.load(shared / "official" / "parity" / f"{case}.npz")
    a = torch.from_numpy(d["a"].astype(np.float32) / 255)[None, None]
    b = torch.from_numpy(d["b"].astype(np.float32) / 255)[None, None]
    return d, a, b


def test_released_checkpoint_hash(shared):
    assert sha256_of(shared / "official" / "Final.model") == OFFICIAL_SHA256


@pytest.mark.parametrize("case", CASES)
def test_parity_with_official_outputs(shared, official_model, case):
    d, a, b = _load_case(shared, case)
    m = official_model
    with torch.inference_mode():
        f = m.encode(a, b)
        fused = m.decode(f, m.cfgm(f, f, "dp"))[0, 0].numpy()
        fused_tag1 = m.decode(f, m.cfgm(f, f, "mm"))[0, 0].numpy()
        rec = m.reconstruct(f)[0, 0].numpy()
        plain = fuse_tensors(m, a, b)[0, 0].numpy()  # the band-wise engine
        full = fuse_tensors(copy.deepcopy(m), a, b, engine="full")[0, 0].numpy()  # whole image, channels-last
    assert not m.is_channels_last()
    assert fused.shape == d["fused"].shape
    assert np.abs(fused - d["fused"]).max() <= TOL
    assert np.abs(fused_tag1 - d["fused_tag1"]).max() <= TOL
    assert np.abs(rec - d["rec"]).max() <= TOL
    assert np.abs(plain - d["fused"]).max() <= TOL
    assert np.abs(full - d["fused"]).max() <= TOL
    if "shared_features" in d:
        assert np.abs(f[0].numpy() - d["shared_features"]).max() <= TOL
    # a wrong inference path cannot pass: tag-1 and tag-2 outputs differ by far more than the tolerance
    assert np.abs(d["fused"] - d["fused_tag1"]).mean() > 100 * TOL


def test_parity_cases_json_consistent(shared):
    cases = json.loads((shared / "official" / "parity" / "cases.json").read_text())
    assert sorted(cases) == sorted(CASES)
    for case, info in cases.items():
        d = np.load(shared / "official" / "parity" / f"{case}.npz")
        assert list(d["a"].shape) == info["crop_top_left_h_w"][2:]


def test_dwconv_quirk_is_needed_for_tag1_parity(shared, official_model):
    d, a, b = _load_case(shared, "mfif")
    m = official_model
    m.fusion.official_dwconv_quirk = False
    try:
        with torch.inference_mode():
            f = m.encode(a, b)
            y1 = m.decode(f, m.cfgm(f, f, "mm"))[0, 0].numpy()
            y2 = m.decode(f, m.cfgm(f, f, "dp"))[0, 0].numpy()
    finally:
        m.fusion.official_dwconv_quirk = True
    assert np.abs(y1 - d["fused_tag1"]).max() > TOL  # the quirk changes the tag-1 path
    assert np.abs(y2 - d["fused"]).max() <= TOL  # and never the inference path
