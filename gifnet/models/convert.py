"""Import the released GIFNet checkpoint (``Final.model``, 116 state-dict keys) into our format.

The mapping is one explicit table (:data:`KEY_TABLE`) from our parameter names to the official ones;
``{k}`` is a block index and ``{s}``/``{o}`` our stream name / the official suffix (``mm`` ↔ ``""`` for the
official *ivif* stream, ``dp`` ↔ ``"_mfif"``). Loading is strict: every official key must be used exactly once,
every one of our keys must be filled, and shapes must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gifnet.paths import sha256_of

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint, torch_load_file
from .gifnet import GIFNet, GIFNetConfig

OFFICIAL_SHA256 = "bfc1dfef0d5b386b0c04f172daf8f6af52ba395f26dc3dd5757425fd32eb1038"
OFFICIAL_TRAINED_TASKS = ("ivif", "mfif")
_P = "extractor_multask.SwinTransformerSpecific"
_K = _P + ".layer1.blocks.{k}"
STREAM_SUFFIX = {"mm": "", "dp": "_mfif"}
STREAM_OFFICIAL_NAME = {"mm": "ivif", "dp": "mfif"}

# (ours, official). Per-stream rows use {s} (our stream) and {o} (official suffix), per-block rows {k}.
KEY_TABLE: list[tuple[str, str]] = [
    # S-Enc
    *[
        (f"encoder.convs.{i}.{t}", f"getSharedFeatures.conv_{i + 1}.conv2d.{t}")
        for i in range(3)
        for t in ("weight", "bias")
    ],
    # R-Dec
    *[
        (f"reconstructor.convs.{o}.{t}", f"decoder_rec.decoder.{i}.{t}")
        for o, i in ((0, 1), (2, 4), (4, 7), (6, 10))
        for t in ("weight", "bias")
    ],
    # CFGM embedding per stream, unembedding
    ("fusion.embed.{s}.weight", _P + ".patch_embed_{n}.proj.weight"),
    ("fusion.embed.{s}.bias", _P + ".patch_embed_{n}.proj.bias"),
    ("fusion.unembed.weight", _P + ".patch_unembed.proj.0.weight"),
    ("fusion.unembed.bias", _P + ".patch_unembed.proj.0.bias"),
    # CFGM blocks, per stream
    ("fusion.blocks.{k}.streams.{s}.norm.weight", _K + ".norm1{o}.weight"),
    ("fusion.blocks.{k}.streams.{s}.norm.bias", _K + ".norm1{o}.bias"),
    ("fusion.blocks.{k}.streams.{s}.norm.meta1.weight", _K + ".norm1{o}.meta1.weight"),
    ("fusion.blocks.{k}.streams.{s}.norm.meta1.bias", _K + ".norm1{o}.meta1.bias"),
    ("fusion.blocks.{k}.streams.{s}.norm.meta2.weight", _K + ".norm1{o}.meta2.weight"),
    ("fusion.blocks.{k}.streams.{s}.norm.meta2.bias", _K + ".norm1{o}.meta2.bias"),
    ("fusion.blocks.{k}.streams.{s}.dwconv.weight", _K + ".attn.conv{o}.weight"),
    ("fusion.blocks.{k}.streams.{s}.dwconv.bias", _K + ".attn.conv{o}.bias"),
    ("fusion.blocks.{k}.streams.{s}.v.weight", _K + ".attn.V{o}.weight"),
    ("fusion.blocks.{k}.streams.{s}.v.bias", _K + ".attn.V{o}.bias"),
    ("fusion.blocks.{k}.streams.{s}.proj.weight", _K + ".attn.proj{o}.weight"),
    ("fusion.blocks.{k}.streams.{s}.proj.bias", _K + ".attn.proj{o}.bias"),
    ("fusion.blocks.{k}.streams.{s}.qk.weight", _K + ".attn.QK{o}.weight"),
    ("fusion.blocks.{k}.streams.{s}.qk.bias", _K + ".attn.QK{o}.bias"),
    ("fusion.blocks.{k}.streams.{s}.mlp.0.weight", _K + ".mlp{o}.mlp.0.weight"),
    ("fusion.blocks.{k}.streams.{s}.mlp.0.bias", _K + ".mlp{o}.mlp.0.bias"),
    ("fusion.blocks.{k}.streams.{s}.mlp.2.weight", _K + ".mlp{o}.mlp.2.weight"),
    ("fusion.blocks.{k}.streams.{s}.mlp.2.bias", _K + ".mlp{o}.mlp.2.bias"),
    # CFGM blocks, shared by the two streams
    ("fusion.blocks.{k}.rel_pos.positions", _K + ".attn.attn.relative_positions"),
    ("fusion.blocks.{k}.rel_pos.mlp.0.weight", _K + ".attn.attn.meta.0.weight"),
    ("fusion.blocks.{k}.rel_pos.mlp.0.bias", _K + ".attn.attn.meta.0.bias"),
    ("fusion.blocks.{k}.rel_pos.mlp.2.weight", _K + ".attn.attn.meta.2.weight"),
    ("fusion.blocks.{k}.rel_pos.mlp.2.bias", _K + ".attn.attn.meta.2.bias"),
    # α: official per-block scalars of shape (1,) → our per-stream vectors of shape (depth,)
    ("fusion.alpha.mm[{k}]", _P + ".layer1.weights.{k}"),
    ("fusion.alpha.dp[{k}]", _P + ".layer1.weights_mfif.{k}"),
    # G-Dec
    ("decoder.mix.0.weight", "cnnDecoder.fuseComplementFeatures.mlp.0.weight"),
    ("decoder.mix.2.weight", "cnnDecoder.fuseComplementFeatures.mlp.2.weight"),
    *[
        (f"decoder.convs.{o}.{t}", f"cnnDecoder.decoder.{i}.{t}")
        for o, i in ((0, 1), (2, 4), (4, 7), (6, 10))
        for t in ("weight", "bias")
    ],
]  # fmt: skip


class CheckpointMismatch(ValueError):
    """The official state dict does not fit the model (missing/unexpected keys or wrong shapes)."""


def expand_key_table(depth: int = 2) -> list[tuple[str, str]]:
    """The table with every placeholder resolved for a released-architecture model of ``depth`` blocks."""
    rows: list[tuple[str, str]] = []
    for ours, theirs in KEY_TABLE:
        ks = range(depth) if "{k}" in ours else [None]
        ss = ("mm", "dp") if "{s}" in ours else [None]
        for k in ks:
            for s in ss:
                fmt = {"k": k, "s": s, "o": STREAM_SUFFIX.get(s, ""), "n": STREAM_OFFICIAL_NAME.get(s, "")}
                rows.append((ours.format(**fmt), theirs.format(**fmt)))
    return rows


def official_config() -> GIFNetConfig:
    """The configuration of the released network (defaults)."""
    return GIFNetConfig()


def convert_state_dict(
    official: dict[str, torch.Tensor], config: GIFNetConfig | None = None
) -> dict[str, torch.Tensor]:
    """Map an official state dict onto our parameter names, strictly.

    Raises :class:`CheckpointMismatch` naming every missing/unused key and every shape mismatch.
    """
    config = config or official_config()
    model = GIFNet.from_config(config)
    ours_sd = model.state_dict()
    rows = expand_key_table(config.depth)
    vectors: dict[str, dict[int, torch.Tensor]] = {}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for ours, theirs in rows:
        if theirs not in official:
            problems.append(f"missing official key {theirs!r} (for {ours!r})")
            continue
        used.add(theirs)
        t = official[theirs]
        if ours.endswith("]"):  # element of a per-block vector
            name, idx = ours[:-1].split("[")
            if t.numel() != 1:
                raise CheckpointMismatch(f"official {theirs!r} should be a scalar, got shape {tuple(t.shape)}")
            vectors.setdefault(name, {})[int(idx)] = t.reshape(())
            continue
        if ours not in ours_sd:
            problems.append(f"table names {ours!r}, which the model does not have")
            continue
        if tuple(t.shape) != tuple(ours_sd[ours].shape):
            problems.append(f"{theirs!r}: shape {tuple(t.shape)} != expected {tuple(ours_sd[ours].shape)}")
            continue
        out[ours] = t.detach().clone().float()
    for name, parts in vectors.items():
        out[name] = torch.stack([parts[i] for i in sorted(parts)]).float()
    unused = sorted(set(official) - used)
    if unused:
        problems.append(f"unused official keys: {unused}")
    missing_ours = sorted(set(ours_sd) - set(out))
    if missing_ours:
        problems.append(f"model keys not filled: {missing_ours}")
    for name in out:
        if name in ours_sd and out[name].shape != ours_sd[name].shape:
            problems.append(f"{name!r}: shape {tuple(out[name].shape)} != {tuple(ours_sd[name].shape)}")
    if problems:
        raise CheckpointMismatch("official checkpoint does not match GIFNet:\n  " + "\n  ".join(problems))
    # The relative-position buffers are deterministic; a mismatch means a different architecture.
    for name, ref in ours_sd.items():
        if name.endswith("rel_pos.positions") and not torch.allclose(out[name], ref, atol=1e-6):
            raise CheckpointMismatch(f"{name}: stored relative positions differ from sign(d)·ln(1+|d|)")
    return out


def load_official(path: str | Path) -> GIFNet:
    """Build a GIFNet with the released weights from an official ``Final.model`` file."""
    path = Path(path)
    sd = torch_load_file(path)
    if not isinstance(sd, dict):
        raise CheckpointMismatch(f"{path}: expected a plain state dict, got {type(sd).__name__}")
    model = GIFNet.from_config(official_config())
    model.load_state_dict(convert_state_dict(sd), strict=True)
    return model.eval()


@dataclass
class AnyCheckpoint:
    """A checkpoint of either format, read once through the safe loader (:func:`read_any_checkpoint`)."""

    path: Path
    format: str  # "gifnet" | "official"
    model_config: dict
    state_dict: dict
    trained_tasks: list[str]
    sha256: str
    raw: dict  # the whole file (ours: with optimiser/progress/provenance when written by the trainer)

    def build_model(self) -> GIFNet:
        """The stored model, strictly loaded, in eval mode."""
        try:
            model = GIFNet.from_config(GIFNetConfig.from_dict(self.model_config))
            model.load_state_dict(self.state_dict, strict=True)
        except (RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.path}: weights do not match the stored model config: {e}") from e
        return model.eval()


def read_any_checkpoint(path: str | Path) -> AnyCheckpoint:
    """Detect the format of ``path`` (ours, or the official ``Final.model``) and read it once, safely.

    The official state dict is converted to our parameter names (strict: every key used once).
    """
    path = Path(path)
    obj = torch_load_file(path)
    digest = sha256_of(path)
    if isinstance(obj, dict) and obj.get("format") == "gifnet":
        obj = read_checkpoint(path, _obj=obj)
        return AnyCheckpoint(path, "gifnet", dict(obj["model_config"]), obj["state_dict"],
                             list(obj["trained_tasks"]), digest, obj)  # fmt: skip
    if isinstance(obj, dict) and any(str(k).startswith("getSharedFeatures") for k in obj):
        sd = convert_state_dict(obj)
        return AnyCheckpoint(path, "official", official_config().to_dict(), sd, list(OFFICIAL_TRAINED_TASKS),
                             digest, {"state_dict": sd})  # fmt: skip
    raise CheckpointError(f"{path}: neither a gifnet checkpoint nor the official GIFNet state dict")


def import_official(src: str | Path, dst: str | Path) -> Path:
    """Convert ``src`` (official) into our checkpoint format at ``dst`` (written atomically; never over ``src``)."""
    if Path(dst).resolve() == Path(src).resolve():
        raise CheckpointError(f"{dst}: refusing to overwrite the source checkpoint; choose another output path")
    model = load_official(src)
    digest = sha256_of(src)
    provenance = {
        "source": "official GIFNet release (AWCXV/GIFNet model/Final.model)",
        "source_file": str(Path(src).name),
        "source_sha256": digest,
        "matches_released_sha256": digest == OFFICIAL_SHA256,
        "converter": "gifnet.models.convert",
    }
    return save_checkpoint(dst, model, trained_tasks=list(OFFICIAL_TRAINED_TASKS), provenance=provenance)
