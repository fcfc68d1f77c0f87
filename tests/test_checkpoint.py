"""Checkpoint format, strict loading and the official importer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gifnet.inference.engine import fuse_tensors
from gifnet.models import CheckpointError, GIFNet, load_checkpoint, save_checkpoint
from gifnet.models.convert import CheckpointMismatch, convert_state_dict, expand_key_table, import_official
from gifnet.paths import PROJECT_ROOT


def _official_like_state_dict(model: GIFNet) -> dict:
    """Invert the key table: an official-format state dict built from our model (synthetic, no ../shared)."""
    ours = model.state_dict()
    out = {}
    for o, t in expand_key_table(model.config.depth):
        if o.endswith("]"):
            name, idx = o[:-1].split("[")
            out[t] = ours[name][int(idx)].reshape(1).clone()
        else:
            out[t] = ours[o].clone()
    return out


def test_key_table_covers_116_official_keys_one_to_one():
    rows = expand_key_table(2)
    official = [t for _, t in rows]
    assert len(official) == 116 == len(set(official))
    assert len({o for o, _ in rows}) == 116


def test_convert_roundtrip_on_synthetic_official_dict():
    torch.manual_seed(3)
    src = GIFNet()
    sd = convert_state_dict(_official_like_state_dict(src))
    dst = GIFNet()
    dst.load_state_dict(sd, strict=True)
    a, b = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)
    assert torch.equal(fuse_tensors(src.eval(), a, b), fuse_tensors(dst.eval(), a, b))


def test_convert_reports_missing_unused_and_shape_problems():
    sd = _official_like_state_dict(GIFNet())
    bad = dict(sd)
    bad.pop("getSharedFeatures.conv_1.conv2d.bias")
    bad["extra.key"] = torch.zeros(1)
    bad["cnnDecoder.decoder.10.bias"] = torch.zeros(2)
    with pytest.raises(CheckpointMismatch) as e:
        convert_state_dict(bad)
    msg = str(e.value)
    assert "getSharedFeatures.conv_1.conv2d.bias" in msg and "extra.key" in msg and "cnnDecoder.decoder.10.bias" in msg


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = GIFNet(gating="fixed", gate_value=0.2, reconstruction=False)
    path = save_checkpoint(tmp_path / "sub" / "m.pt", m, trained_tasks=["ivif", "meif"], provenance={"run": "x"})
    m2, meta = load_checkpoint(path)
    assert meta["trained_tasks"] == ["ivif", "meif"] and meta["provenance"]["run"] == "x"
    assert m2.config == m.config
    a = torch.rand(1, 1, 9, 11)
    assert torch.equal(fuse_tensors(m.eval(), a, a), fuse_tensors(m2, a, a))
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary files left


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save(_official_like_state_dict(GIFNet()), tmp_path / "Final.model")
    with pytest.raises(CheckpointError, match="import_official"):
        load_checkpoint(tmp_path / "Final.model")
    m = GIFNet()
    path = save_checkpoint(tmp_path / "m.pt", m, trained_tasks=["ivif"])
    obj = torch.load(path, weights_only=False)
    obj["state_dict"].pop("decoder.mix.0.weight")
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="decoder.mix.0.weight"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="unknown trained tasks"):
        save_checkpoint(tmp_path / "x.pt", m, trained_tasks=["deblur"])


def test_import_official_script_on_synthetic_file(tmp_path):
    torch.manual_seed(5)
    src = GIFNet()
    torch.save(_official_like_state_dict(src), tmp_path / "Final.model")
    out = tmp_path / "conv.pt"
    r = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "import_official.py"), f"src={tmp_path / 'Final.model'}",
         f"dst={out}"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 0, r.stderr
    m, meta = load_checkpoint(out)
    assert meta["trained_tasks"] == ["ivif", "mfif"]
    assert meta["provenance"]["matches_released_sha256"] is False
    a = torch.rand(1, 1, 10, 10)
    assert torch.equal(fuse_tensors(src.eval(), a, a), fuse_tensors(m, a, a))
    r = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "import_official.py"), f"src={tmp_path / 'nope.model'}",
         f"dst={out}"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 1 and "not found" in r.stderr
    with pytest.raises(CheckpointError, match="overwrite the source"):
        import_official(tmp_path / "Final.model", tmp_path / "." / "Final.model")
    assert torch.load(tmp_path / "Final.model", weights_only=True).keys() == _official_like_state_dict(src).keys()


def test_import_real_official(shared, tmp_path):
    out = import_official(shared / "official" / "Final.model", tmp_path / "official.pt")
    m, meta = load_checkpoint(out)
    assert meta["provenance"]["matches_released_sha256"] is True
    assert m.num_parameters() == 822_780
    assert abs(float(m.fusion.alpha["dp"][0].detach()) - 0.088342) < 1e-6
    assert abs(float(m.fusion.alpha["mm"][0].detach()) - 0.185454) < 1e-6
    assert Path(out).stat().st_size > 3_000_000
