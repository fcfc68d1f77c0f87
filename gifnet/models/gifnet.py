"""GIFNet: shared encoder (S-Enc), cross-fusion gating module (CFGM), global decoder (G-Dec) and
reconstruction decoder (R-Dec). Architecture as in ``../shared/reference/GIFNET.md``.

Stages are exposed for training with the released stop-gradient semantics::

    f = model.encode(a, b)              # S-Enc, B×98×H×W (the raw inputs are channels 0 and 1)
    g = model.cfgm(f_mm, f_dp, step)    # step "mm" (official tag 1) or "dp" (tag 2)
    y = model.decode(f, g)              # G-Dec → fused luma in (0, 1)
    r = model.reconstruct(f)            # R-Dec → (-1, 1), training only

and :meth:`GIFNet.forward` is the fused output (``F = S-Enc(a, b)``, ``y = G-Dec(F, CFGM(F, F, step))`` with
``step = inference_stream``, ``"dp"`` for the released checkpoint). The inference engines (the band-wise one and the
full-frame one, under ``inference_mode``) live on the inference side: :func:`gifnet.inference.engine.fuse_tensors`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .cfgm import CFGM, STREAMS, reset_cfgm_parameters
from .conv import ReflectConv2d, strictly_channels_last

MIN_SIDE = 5


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return ReflectConv2d(cin, cout, 3, bias=bias)


@dataclass
class GIFNetConfig:
    """Every architecture / ablation switch of the model. Defaults build the released network."""

    enc_width: int = 32  # channels added by each S-Enc layer
    enc_layers: int = 3  # dense S-Enc layers; feature dim = 2 + enc_layers * enc_width (98)
    depth: int = 2  # CFGM blocks
    heads: int = 2
    window: int = 8
    mlp_ratio: float = 2.0
    gating: str = "learned"  # learned | fixed | off
    gate_value: float = 0.1  # α when gating == "fixed"
    cross_attention: bool = True
    reconstruction: bool = True  # build R-Dec (the reconstruction branch)
    dual_stream: bool = True  # False: single-stream baseline (no DP stream)
    inference_stream: str = "dp"  # which stream fuse() reads; the released checkpoint needs "dp"
    stop_gradient: bool = True  # other stream's attention path without gradient (released semantics)
    official_dwconv_quirk: bool = True  # released tag-1 DWConv input bug (needed for tag-1 parity)

    @property
    def feature_dim(self) -> int:
        return 2 + self.enc_layers * self.enc_width

    def validate(self) -> GIFNetConfig:
        def bad(msg: str) -> ValueError:
            return ValueError(f"invalid model config: {msg}")

        for name in ("enc_width", "enc_layers", "depth", "heads", "window"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(f"{name} must be a positive integer, got {v!r}")
        if self.window % 2:
            raise bad(f"window must be even, got {self.window}")
        if self.feature_dim % self.heads:
            raise bad(
                f"feature dim {self.feature_dim} (= 2 + enc_layers*enc_width) not divisible by heads={self.heads}"
            )
        if self.mlp_ratio <= 0:
            raise bad(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.gating not in ("learned", "fixed", "off"):
            raise bad(f"gating must be learned | fixed | off, got {self.gating!r}")
        if self.inference_stream not in STREAMS:
            raise bad(f"inference_stream must be one of {STREAMS}, got {self.inference_stream!r}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> GIFNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"invalid model config: unknown keys {unknown}; valid keys: {sorted(known)}")
        return cls(**d).validate()

    def to_dict(self) -> dict:
        return asdict(self)


class SharedEncoder(nn.Module):
    """S-Enc: a dense CNN whose output concatenates the two inputs and every layer's features."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(2 + i * width, width) for i in range(layers))

    def is_channels_last(self) -> bool:
        return strictly_channels_last(self.convs[0].weight)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat((a, b), 1)
        if self.is_channels_last():
            # A 1-channel input is both layouts at once, so this cat is NCHW, and every cat below keeps its
            # first operand's layout: without this the encoder, the CFGM embedding and the R-Dec's first conv
            # would run in NCHW against channels-last weights (1.3× slower training on an AVX2 CPU).
            x = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = torch.cat((x, F.relu(conv(x))), 1)
        return x


class GlobalDecoder(nn.Module):
    """G-Dec: two bias-free 1×1 mixing convs, then a 3×3 CNN ending in ``tanh/2 + 0.5``."""

    def __init__(self, dim: int = 98):
        super().__init__()
        self.mix = nn.Sequential(
            nn.Conv2d(2 * dim, dim, 1, bias=False), nn.ReLU(True), nn.Conv2d(dim, 128, 1, bias=False)
        )
        self.convs = nn.Sequential(
            conv3x3(128, 64), nn.ReLU(True), conv3x3(64, 32), nn.ReLU(True),
            conv3x3(32, 16), nn.ReLU(True), conv3x3(16, 1),
        )  # fmt: skip

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.convs(self.mix(torch.cat((f, g), 1)))) / 2 + 0.5


class ReconstructionDecoder(nn.Module):
    """R-Dec: 3×3 CNN ending in ``tanh`` (output in (-1, 1), as released)."""

    def __init__(self, dim: int = 98):
        super().__init__()
        self.convs = nn.Sequential(
            conv3x3(dim, 64), nn.ReLU(True), conv3x3(64, 32), nn.ReLU(True),
            conv3x3(32, 16), nn.ReLU(True), conv3x3(16, 1),
        )  # fmt: skip

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.convs(f))


#: Round-off allowed around [0, 1] by the inference (:func:`gifnet.inference.engine.fuse_tensors`), e.g. 1.0000001
#: from a float conversion.
RANGE_TOLERANCE = 1e-4


def check_unit_range(x: torch.Tensor, name: str) -> None:
    """Fusion inputs are floating-point luma in [0, 1]: refuse other dtypes, NaN/Inf and values outside the range
    (they would give NaN or saturated images, not an error)."""
    if not torch.is_floating_point(x):
        raise TypeError(f"{name}: GIFNet inference takes floating-point luma in [0, 1], got dtype {x.dtype} (divide "
                        "uint8 by 255, uint16 by 65535)")
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: holds NaN or infinite values")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        hint = " (looks like 0..255: divide by 255)" if hi > 1.5 else ""
        raise ValueError(f"{name}: values must lie in [0, 1], got {lo:.4g}..{hi:.4g}{hint}")


class GIFNet(nn.Module):
    """The GIFNet fusion network. Keyword arguments are the fields of :class:`GIFNetConfig`."""

    def __init__(self, **kwargs):
        super().__init__()
        self.config = GIFNetConfig.from_dict(kwargs)
        c = self.config
        dim = c.feature_dim
        self.encoder = SharedEncoder(c.enc_width, c.enc_layers)
        self.fusion = CFGM(
            dim=dim, depth=c.depth, heads=c.heads, window=c.window, mlp_ratio=c.mlp_ratio,
            gating=c.gating, gate_value=c.gate_value, cross_attention=c.cross_attention,
            dual_stream=c.dual_stream, stop_gradient=c.stop_gradient,
            official_dwconv_quirk=c.official_dwconv_quirk,
        )  # fmt: skip
        self.decoder = GlobalDecoder(dim)
        self.reconstructor = ReconstructionDecoder(dim) if c.reconstruction else None
        reset_cfgm_parameters(self.fusion)

    @classmethod
    def from_config(cls, config: GIFNetConfig | dict) -> GIFNet:
        d = config.to_dict() if isinstance(config, GIFNetConfig) else dict(config)
        return cls(**d)

    # -- stages -------------------------------------------------------------------------------------------
    @staticmethod
    def _check_inputs(a: torch.Tensor, b: torch.Tensor) -> None:
        if a.ndim != 4 or b.ndim != 4 or a.shape[1] != 1 or b.shape[1] != 1:
            raise ValueError(
                f"GIFNet expects two B×1×H×W luma tensors, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if a.shape != b.shape:
            raise ValueError(f"input shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        if min(a.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"inputs must be at least {MIN_SIDE}×{MIN_SIDE} pixels, got {tuple(a.shape[-2:])}")

    def encode(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self._check_inputs(a, b)
        return self.encoder(a, b)  # channels-last features where the model is (SharedEncoder.forward)

    def to_channels_last(self) -> GIFNet:
        """Store conv weights (and run activations) channels-last: ~1.8× faster CPU convolutions, same values."""
        return self.to(memory_format=torch.channels_last)

    def is_channels_last(self) -> bool:
        return self.encoder.is_channels_last()

    def cfgm(self, f_mm: torch.Tensor, f_dp: torch.Tensor | None, step: str) -> torch.Tensor:
        return self.fusion(f_mm, f_dp, step)

    def decode(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.decoder(f, g)

    def reconstruct(self, f: torch.Tensor) -> torch.Tensor:
        if self.reconstructor is None:
            raise RuntimeError("this model was built with reconstruction=False (no R-Dec)")
        return self.reconstructor(f)

    # -- inference ----------------------------------------------------------------------------------------
    def forward(self, a: torch.Tensor, b: torch.Tensor, step: str | None = None) -> torch.Tensor:
        """Fused luma ``B×1×H×W`` in (0, 1); both streams are fed the same S-Enc features."""
        f = self.encode(a, b)
        return self.decode(f, self.cfgm(f, f, step or self.config.inference_stream))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
