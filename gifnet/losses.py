"""Pixel-level multi-task losses of GIFNet (GIFNET.md section 9).

Contents:

* :func:`msssim_official` -- the MS-SSIM* variant of the official bundled ``pytorch_msssim``
  (``msssim(..., normalize=True)``), reproduced exactly for parity (GIFNET.md 9.4, quirk 11).
* :func:`msssim_standard` -- standard multi-scale SSIM (Wang, Simoncelli & Bovik 2003).
* :func:`reconstruction_loss`, :func:`ivif_loss`, :func:`dp_loss` -- the loss terms of the two training steps.
* IVIF weighting modules (:class:`DenseNetWeighting`, :class:`GradientWeighting`, :class:`FixedWeighting`)
  and the factory :func:`build_ivif_weighting`.

All functions take ``(B, C, H, W)`` float tensors and are differentiable (the weighting modules are not:
they run under ``no_grad`` and return constants for the loss).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MSSSIM_WEIGHTS",
    "DENSENET121_WEIGHTS_URL",
    "gaussian_window",
    "infer_data_range",
    "msssim_official_terms",
    "msssim_official",
    "msssim_standard",
    "ssim",
    "reconstruction_loss",
    "ivif_loss",
    "dp_loss",
    "laplacian_energy",
    "feature_gradient_energy",
    "feature_gradient_energy_literal",
    "IVIFWeighting",
    "DenseNetWeighting",
    "GradientWeighting",
    "FixedWeighting",
    "build_ivif_weighting",
]

logger = logging.getLogger(__name__)

#: Per-scale exponents of MS-SSIM (Wang et al. 2003), finest scale first.
MSSSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: Where torchvision's ImageNet DenseNet-121 weights (``DenseNet121_Weights.IMAGENET1K_V1``) are published.
DENSENET121_WEIGHTS_URL = "https://download.pytorch.org/models/densenet121-a639ec97.pth"

# The 3x3 "gradient" kernel of the official DenseNet weighting: [[1,1,1],[1,-8,1],[1,1,1]] / 8.
_LAPLACE_3X3 = ((1.0, 1.0, 1.0), (1.0, -8.0, 1.0), (1.0, 1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------
# SSIM building blocks
# ----------------------------------------------------------------------------------------------------------


def gaussian_window(size: int, sigma: float = 1.5, *, device=None, dtype=torch.float32) -> Tensor:
    """Return a normalised 2-D Gaussian window of shape ``(1, 1, size, size)``.

    The centre is at index ``size // 2`` (as in the official ``pytorch_msssim``), so an even ``size`` gives
    a window that is off-centre by half a pixel. The 1-D taps are evaluated in double precision, rounded to
    ``float32`` and normalised there, and the 2-D window is their outer product, which matches the official
    construction to the last bits.
    """
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    taps = [math.exp(-((i - size // 2) ** 2) / float(2 * sigma**2)) for i in range(size)]
    g = torch.tensor(taps, dtype=torch.float32)
    g = g / g.sum()
    w2 = torch.outer(g, g)
    return w2.to(device=device, dtype=dtype).reshape(1, 1, size, size)


def _filter(x: Tensor, window: Tensor) -> Tensor:
    """Depthwise 'valid' filtering of ``x`` (B, C, H, W) with a ``(1, 1, s, s)`` window."""
    c = x.shape[1]
    return F.conv2d(x, window.expand(c, 1, *window.shape[-2:]), groups=c)


def _ssim_maps(x: Tensor, y: Tensor, window: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """Return the SSIM map and the contrast-structure (cs) map of 'valid' filtering with ``window``.

    The five local moments (x, y, x², y², xy) are filtered in one grouped convolution over their stack: per
    channel the same weighted sums as five separate calls (equal up to round-off, tested), but one backward call
    instead of three. On CPU the backward of a single-channel 11×11 convolution is pathologically slow in
    oneDNN (93 ms against 4.4 ms grouped for the three maps at 8×1×128², docs/performance.md).
    """
    c = x.shape[1]
    mu1, mu2, e_xx, e_yy, e_xy = _filter(torch.cat([x, y, x * x, y * y, x * y], 1), window).split(c, 1)
    mu1_sq = mu1.pow(2)
    mu2_sq = mu2.pow(2)
    mu1_mu2 = mu1 * mu2
    sigma1_sq = e_xx - mu1_sq
    sigma2_sq = e_yy - mu2_sq
    sigma12 = e_xy - mu1_mu2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma1_sq + sigma2_sq + c2
    cs_map = v1 / v2
    ssim_map = ((2 * mu1_mu2 + c1) * v1) / ((mu1_sq + mu2_sq + c1) * v2)
    return ssim_map, cs_map


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Validate a pair of ``(B, C, H, W)`` images; half precision is raised to float32 (SSIM statistics)."""
    if x.dim() != 4 or y.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16) or y.dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), y.float()
    return x, y


def _no_autocast(device: torch.device):
    """Context that disables autocast on ``device`` (SSIM moments cancel badly in half precision)."""
    return torch.autocast(device_type=device.type, enabled=False)


# ----------------------------------------------------------------------------------------------------------
# Official MS-SSIM* (GIFNET.md 9.4)
# ----------------------------------------------------------------------------------------------------------


def infer_data_range(x: Tensor) -> float:
    """Dynamic range L inferred the official way from the *prediction* ``x``.

    ``max_val = 255 if max(x) > 128 else 1``; ``min_val = -1 if min(x) < -0.5 else 0``;
    ``L = max_val - min_val``.
    So L is 1 for [0, 1] images, 2 when the prediction dips below -0.5, 255 or 256 for 8-bit scaled inputs.
    """
    with torch.no_grad():
        max_val = 255.0 if bool(x.max() > 128) else 1.0
        min_val = -1.0 if bool(x.min() < -0.5) else 0.0
    return max_val - min_val


def msssim_official_terms(
    x: Tensor, y: Tensor, data_range: float | None = None, window_size: int = 11
) -> tuple[Tensor, Tensor, list[float]]:
    """Per-level raw terms of the official MS-SSIM*: ``(ssim[5], cs[5], L[5])``.

    At each of the 5 levels: a Gaussian window (sigma 1.5) of size ``min(window_size, H, W)``, 'valid'
    filtering, ``ssim`` and ``cs`` averaged over the *whole batch* (all samples, channels, pixels), and L
    inferred from ``x`` at that level unless ``data_range`` is given. Between levels both images are
    2x2 average pooled (odd sizes floor). The values are returned *before* the ``(v + 1) / 2`` mapping.
    """
    x, y = _check_pair(x, y)
    with _no_autocast(x.device):
        return _official_terms(x, y, data_range, window_size)


def _official_terms(
    x: Tensor, y: Tensor, data_range: float | None, window_size: int
) -> tuple[Tensor, Tensor, list[float]]:
    ssims: list[Tensor] = []
    css: list[Tensor] = []
    ranges: list[float] = []
    for level in range(len(MSSSIM_WEIGHTS)):
        h, w = x.shape[-2:]
        if min(h, w) < 1:
            raise ValueError(f"image too small for 5-level MS-SSIM*: {h}x{w} at level {level + 1}")
        size = min(window_size, h, w)
        window = gaussian_window(size, 1.5, device=x.device, dtype=x.dtype)
        L = infer_data_range(x) if data_range is None else float(data_range)
        c1 = (0.01 * L) ** 2
        c2 = (0.03 * L) ** 2
        ssim_map, cs_map = _ssim_maps(x, y, window, c1, c2)
        ssims.append(ssim_map.mean())
        css.append(cs_map.mean())
        ranges.append(L)
        if level + 1 < len(MSSSIM_WEIGHTS):
            x = F.avg_pool2d(x, (2, 2))
            y = F.avg_pool2d(y, (2, 2))
    return torch.stack(ssims), torch.stack(css), ranges


def msssim_official(
    x: Tensor, y: Tensor, data_range: float | None = None, normalize: bool = True, window_size: int = 11
) -> Tensor:
    """The MS-SSIM* of the official bundled ``pytorch_msssim`` (``msssim(x, y, normalize=True)``).

    ``Π_{j=1..4} cs_j^{w_j} · (ssim_5^{w_5})^4`` with every ``ssim``/``cs`` value mapped to ``(v + 1) / 2``,
    w = :data:`MSSSIM_WEIGHTS`. Deviations from standard MS-SSIM, all kept on purpose for parity
    (GIFNET.md 9.4, quirk 11): coarsest term raised to ``4 w_5`` (not ``w_5``), the ``(v+1)/2`` mapping,
    L inferred from the first argument (the prediction) at every level, a window that shrinks to
    ``min(11, H, W)`` (off-centre for even sizes), floor pooling, and statistics pooled over the batch
    (one scalar for the whole batch, not a per-sample mean).

    Args:
        x: prediction ``(B, C, H, W)``; the official call is ``msssim(rec, vis)``.
        y: target of the same shape.
        data_range: fixed L; ``None`` (default, official) infers it with :func:`infer_data_range`.
        normalize: apply the ``(v + 1) / 2`` mapping (official: ``True``). Without it negative terms
            raised to fractional powers give NaN, exactly as in the official code.
        window_size: largest Gaussian window (official: 11).

    Returns:
        A 0-dim tensor, differentiable with respect to both inputs.
    """
    ssims, css, _ = msssim_official_terms(x, y, data_range=data_range, window_size=window_size)
    if normalize:
        ssims = (ssims + 1) / 2
        css = (css + 1) / 2
    weights = torch.tensor(MSSSIM_WEIGHTS, device=x.device, dtype=ssims.dtype)
    pow_cs = css**weights
    pow_ssim = ssims**weights
    # Official: torch.prod(pow1[:-1] * pow2[-1]) -- the coarsest ssim term is broadcast into 4 factors.
    return torch.prod(pow_cs[:-1] * pow_ssim[-1])


# ----------------------------------------------------------------------------------------------------------
# Standard MS-SSIM
# ----------------------------------------------------------------------------------------------------------


def msssim_standard(
    x: Tensor,
    y: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MSSSIM_WEIGHTS,
    k: tuple[float, float] = (0.01, 0.03),
) -> Tensor:
    """Standard MS-SSIM (Wang, Simoncelli & Bovik 2003): ``Π_{j<M} cs_j^{w_j} · ssim_M^{w_M}``, batch mean.

    Why it is implemented here: kornia (the maintained library installed) has no Wang-2003 MS-SSIM.
    ``kornia.losses.MS_SSIMLoss`` is the MS-SSIM+L1 loss of Zhao et al. (one Gaussian per sigma at full
    resolution, no dyadic pyramid, no per-scale exponents, zero padding, weighted L1 term and a
    ``compensation`` factor), and ``kornia.metrics.ssim`` returns only the single-scale SSIM map, not the
    contrast-structure term needed per scale. torchmetrics / pytorch-msssim are not dependencies.

    Conventions (those of the common reference implementations): fixed data range L (C1 = (k1 L)^2,
    C2 = (k2 L)^2), a centred Gaussian window ``window_size`` x ``window_size`` with ``sigma`` at every scale,
    'valid' filtering, per-sample-and-channel means of the maps, 2x2 average pooling between scales
    (``ceil_mode``: an odd last row/column is averaged over the pixels that exist), negative ``cs``/``ssim``
    clamped to a tiny positive value before the fractional powers (avoids NaN values and gradients),
    result averaged over samples and channels. The smallest scale must be at least ``window_size`` pixels
    (e.g. >= 176 px for 5 scales and an 11 window; pass ``window_size=7`` for 128 px patches).

    Returns:
        A 0-dim tensor in [0, 1], differentiable.
    """
    x, y = _check_pair(x, y)
    if window_size % 2 != 1:
        raise ValueError(f"window_size must be odd, got {window_size}")
    levels = len(weights)
    h, w = x.shape[-2:]
    smallest = min(math.ceil(h / 2 ** (levels - 1)), math.ceil(w / 2 ** (levels - 1)))
    if smallest < window_size:
        raise ValueError(
            f"image {h}x{w} too small for {levels}-scale MS-SSIM with window {window_size}: the coarsest "
            f"scale is {smallest} px; use a smaller odd window_size or larger images"
        )
    c1 = (k[0] * data_range) ** 2
    c2 = (k[1] * data_range) ** 2
    window = gaussian_window(window_size, sigma, device=x.device, dtype=x.dtype)
    w_t = torch.tensor(list(weights), device=x.device, dtype=x.dtype)
    tiny = torch.finfo(x.dtype).eps
    cs_terms: list[Tensor] = []
    with _no_autocast(x.device):
        for level in range(levels):
            ssim_map, cs_map = _ssim_maps(x, y, window, c1, c2)
            if level + 1 < levels:
                cs_terms.append(cs_map.mean(dim=(-2, -1)))
                x = F.avg_pool2d(x, 2, ceil_mode=True)
                y = F.avg_pool2d(y, 2, ceil_mode=True)
        ssim_last = ssim_map.mean(dim=(-2, -1))
        values = torch.stack([*cs_terms, ssim_last], dim=0).clamp_min(tiny)  # (levels, B, C)
        per_image = torch.prod(values ** w_t.view(-1, 1, 1), dim=0)
    return per_image.mean()


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, window_size: int = 11) -> Tensor:
    """Mean single-scale SSIM via ``kornia.metrics.ssim`` (Gaussian sigma 1.5, reflect 'same' padding).

    The window shrinks to the largest odd size that reflect padding allows for tiny images.
    """
    from kornia.metrics import ssim as kornia_ssim

    x, y = _check_pair(x, y)
    limit = 2 * (min(x.shape[-2:]) - 1) + 1  # reflect padding needs window_size // 2 < min(H, W)
    size = min(window_size, limit)
    if size % 2 == 0:
        size -= 1
    return kornia_ssim(x, y, size, max_val=data_range, eps=0.0, padding="same").mean()


# ----------------------------------------------------------------------------------------------------------
# Loss terms
# ----------------------------------------------------------------------------------------------------------


def reconstruction_loss(
    rec: Tensor, target: Tensor, msssim: Literal["official", "standard"] = "official", **msssim_kwargs
) -> Tensor:
    """R-Dec loss ``1 - MS-SSIM(rec, target) + MSE(rec, target)`` (GIFNET.md 9.2, all weights 1).

    ``msssim="official"`` uses :func:`msssim_official` (parity with the released training), ``"standard"``
    uses :func:`msssim_standard`; extra keyword arguments go to the chosen function.
    """
    if msssim == "official":
        ms = msssim_official(rec, target, **msssim_kwargs)
    elif msssim == "standard":
        ms = msssim_standard(rec, target, **msssim_kwargs)
    else:
        raise ValueError(f"msssim must be 'official' or 'standard', got {msssim!r}")
    return 1.0 - ms + F.mse_loss(rec, target)


def ivif_loss(out: Tensor, ir: Tensor, vis: Tensor, w_ir: float | Tensor, w_vis: float | Tensor) -> Tensor:
    """IVIF intensity loss ``w_ir · MSE(out, ir) + w_vis · MSE(out, vis)`` (MSE: mean over batch, pixels)."""
    return w_ir * F.mse_loss(out, ir) + w_vis * F.mse_loss(out, vis)


def dp_loss(out: Tensor, gt: Tensor, ssim_weight: float = 0.0) -> Tensor:
    """Digital-photography (MFIF) loss ``MSE(out, gt) + ssim_weight · (1 - SSIM(out, gt))``.

    The official MFIF step uses the MSE alone (``ssim_weight=0``); the SSIM term (kornia, see :func:`ssim`)
    is an optional extension.
    """
    loss = F.mse_loss(out, gt)
    if ssim_weight:
        loss = loss + ssim_weight * (1.0 - ssim(out, gt))
    return loss


# ----------------------------------------------------------------------------------------------------------
# Adaptive IVIF weights (GIFNET.md 9.3, quirk 10)
# ----------------------------------------------------------------------------------------------------------


def _laplace_kernel(device=None, dtype=torch.float32) -> Tensor:
    return (torch.tensor(_LAPLACE_3X3, dtype=dtype, device=device) / 8.0).reshape(1, 1, 3, 3)


def _pad1(x: Tensor) -> Tensor:
    """Reflect padding by 1 (official); replicate where a side is 1 pixel (reflect is undefined there)."""
    mode = "reflect" if min(x.shape[-2:]) >= 2 else "replicate"
    return F.pad(x, (1, 1, 1, 1), mode=mode)


def laplacian_energy(x: Tensor, padding: Literal["reflect", "valid"] = "reflect") -> Tensor:
    """Mean over (B, H, W) of the squared Laplacian-like response of the channel sum of ``x``.

    ``x`` is ``(B, C, H, W)``; the response is ``conv2d(pad(Σ_c x_c), K)`` with
    ``K = [[1,1,1],[1,-8,1],[1,1,1]] / 8`` and ``pad`` the official reflect padding by 1 (replicate for
    1-pixel sides), or no padding (``"valid"``, needs H, W >= 3).
    """
    s = x.sum(dim=1, keepdim=True)
    if padding == "reflect":
        s = _pad1(s)
    elif padding != "valid":
        raise ValueError(f"padding must be 'reflect' or 'valid', got {padding!r}")
    g = F.conv2d(s, _laplace_kernel(x.device, x.dtype))
    return g.pow(2).mean()


def feature_gradient_energy(phi: Tensor) -> Tensor:
    """Official feature-gradient energy ``mean(G^2)``, fast (cf. :func:`feature_gradient_energy_literal`).

    The official kernel is K repeated to ``(C, C, 3, 3)``, so every output channel is the same response of the
    channel sum, and the mean over ``(B, C, H, W)`` equals :func:`laplacian_energy` of ``phi``.
    """
    return laplacian_energy(phi)


def feature_gradient_energy_literal(phi: Tensor) -> Tensor:
    """Literal official computation: ``mean(conv2d(reflect_pad1(phi), K.expand(C, C, 3, 3))^2)``."""
    c = phi.shape[1]
    kernel = _laplace_kernel(phi.device, phi.dtype).expand(c, c, 3, 3).contiguous()
    return F.conv2d(_pad1(phi), kernel).pow(2).mean()


def _two_way_softmax(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(e^a, e^b) / (e^a + e^b)`` computed stably (equal to the official raw ``exp`` ratio where finite)."""
    w = torch.softmax(torch.stack([a, b]).float(), dim=0)
    return w[0], w[1]


class IVIFWeighting(nn.Module):
    """Base class: ``forward(ir, vis) -> (w_ir, w_vis)``, two 0-dim tensors, one pair per batch, no grad."""

    def forward(self, ir: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights_from_energies(self, e_ir: Tensor, e_vis: Tensor) -> tuple[Tensor, Tensor]:
        """Weights from batch energies (subclasses with an ``energy``); lets DDP average energies first."""
        return _two_way_softmax(e_ir, e_vis)


def _remap_densenet_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Accept torchvision's published checkpoint (legacy ``norm.1``-style keys), ``module.`` prefixes and
    ``{"state_dict": ...}`` wrappers, returning keys of ``torchvision.models.densenet121``."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    legacy = {f"{name}.{i}.": f"{name}{i}." for name in ("norm", "relu", "conv") for i in (1, 2)}
    for key, value in state.items():
        new = key[len("module.") :] if key.startswith("module.") else key
        if ".denselayer" in new:
            for old, repl in legacy.items():
                new = new.replace(old, repl)
        out[new] = value
    return out


class DenseNetWeighting(IVIFWeighting):
    """Official weights from DenseNet-121 feature-gradient energy (GIFNET.md 9.3).

    The gray batch is replicated to 3 channels (no ImageNet normalisation) and passed through the five chained
    groups of ``densenet121().features`` (conv0..pool0, denseblock1+transition1, denseblock2+transition2,
    denseblock3+transition3, denseblock4; norm5 unused). For each group the energy is
    :func:`feature_gradient_energy`; ``g`` is the mean of the five, and ``w_ir = softmax(g(ir), g(vis))[0]``.
    The network is frozen and kept in eval mode; calls run under ``no_grad`` in float32.

    Args:
        weights_path: local file with torchvision's ImageNet DenseNet-121 state dict
            (``densenet121-a639ec97.pth``); never downloaded.
        literal: use the literal C x C convolution (slow; for checks) instead of the channel-sum Laplacian.
    """

    def __init__(self, weights_path: str | Path | None, literal: bool = False) -> None:
        super().__init__()
        from torchvision.models import densenet121

        path = Path(weights_path) if weights_path is not None else None
        if path is None or not path.is_file():
            raise FileNotFoundError(
                f"DenseNet-121 weights file not found: {weights_path!r}. The 'densenet' IVIF weighting needs "
                f"torchvision's ImageNet DenseNet-121 state dict (DenseNet121_Weights.IMAGENET1K_V1, file "
                f"densenet121-a639ec97.pth from {DENSENET121_WEIGHTS_URL}, also found in "
                f"~/.cache/torch/hub/checkpoints/ after torchvision has downloaded it once). Download it on "
                f"a machine with internet access and pass its path as weights_path; nothing is downloaded "
                f"here. The 'gradient' (or 'fixed') weighting mode needs no weights file."
            )
        net = densenet121(weights=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(_remap_densenet_keys(state))
        feats = list(net.features.children())
        self.groups = nn.ModuleList(
            [
                nn.Sequential(*feats[0:4]),
                nn.Sequential(*feats[4:6]),
                nn.Sequential(*feats[6:8]),
                nn.Sequential(*feats[8:10]),
                nn.Sequential(*feats[10:11]),
            ]
        )
        self.groups.requires_grad_(False)
        self.literal = literal
        self.eval()

    def train(self, mode: bool = True) -> DenseNetWeighting:
        """Stay in eval mode whatever is asked (frozen BatchNorm statistics)."""
        return super().train(False)

    @torch.no_grad()
    def energy(self, x: Tensor) -> Tensor:
        """Mean feature-gradient energy ``g(x)`` of a gray (or 3-channel) batch, a 0-dim float32 tensor."""
        x = x.detach().float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != 3:
            raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
        energy_fn = feature_gradient_energy_literal if self.literal else feature_gradient_energy
        total = x.new_zeros(())
        for group in self.groups:
            x = group(x)
            total = total + energy_fn(x)
        return total / len(self.groups)

    @torch.no_grad()
    def forward(self, ir: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        return self.weights_from_energies(self.energy(ir), self.energy(vis))


class GradientWeighting(IVIFWeighting):
    """Network-free stand-in for :class:`DenseNetWeighting` (the project's own choice, not in the paper/code).

    ``g(x)`` is the mean over ``levels`` dyadic scales (2x2 average pooling between them, stopping early
    once a side would drop below 3 pixels) of :func:`laplacian_energy` of the image itself, with the official
    kernel but 'valid' filtering: with the official reflect padding the border responses of smooth gradients
    dominate the energy at the coarse scales (a linear ramp would score as "textured" at 2x2), whereas
    unpadded a ramp scores exactly 0. Images smaller than 3x3 fall back to reflect/replicate padding.

    Raw pixel energies of [0, 1] images are tiny (about 1e-4..1e-2), so a literal softmax of them would
    always give about (0.5, 0.5). By default (``temperature=None``) the softmax is therefore taken over
    ``log g``, which equals the energy ratio ``g(ir) / (g(ir) + g(vis))``; with a float ``temperature`` T it
    is ``softmax(g / T)``, the literal analogue of the official rule.
    """

    def __init__(self, levels: int = 5, temperature: float | None = None, eps: float = 1e-12) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = levels
        self.temperature = temperature
        self.eps = eps

    @torch.no_grad()
    def energy(self, x: Tensor) -> Tensor:
        """Multi-scale Laplacian energy of ``x`` (channels summed), a 0-dim float32 tensor."""
        x = x.detach().float()
        if min(x.shape[-2:]) < 3:
            return laplacian_energy(x, padding="reflect")
        energies = []
        for level in range(self.levels):
            energies.append(laplacian_energy(x, padding="valid"))
            if level + 1 < self.levels:
                if min(x.shape[-2:]) < 6:
                    break
                x = F.avg_pool2d(x, 2)
        return torch.stack(energies).mean()

    @torch.no_grad()
    def forward(self, ir: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        return self.weights_from_energies(self.energy(ir), self.energy(vis))

    def weights_from_energies(self, g_ir: Tensor, g_vis: Tensor) -> tuple[Tensor, Tensor]:
        if self.temperature is None:
            return _two_way_softmax(torch.log(g_ir + self.eps), torch.log(g_vis + self.eps))
        return _two_way_softmax(g_ir / self.temperature, g_vis / self.temperature)


class FixedWeighting(IVIFWeighting):
    """Constant weights ``(w_ir, w_vis)`` from the configuration (used as given, not renormalised)."""

    def __init__(self, w_ir: float = 0.5, w_vis: float = 0.5) -> None:
        super().__init__()
        if w_ir < 0 or w_vis < 0:
            raise ValueError(f"fixed weights must be non-negative, got ({w_ir}, {w_vis})")
        self.w_ir = float(w_ir)
        self.w_vis = float(w_vis)

    def forward(self, ir: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
        return (
            torch.tensor(self.w_ir, device=ir.device, dtype=torch.float32),
            torch.tensor(self.w_vis, device=ir.device, dtype=torch.float32),
        )


def build_ivif_weighting(
    mode: Literal["densenet", "gradient", "fixed", "auto"] = "auto",
    weights_path: str | Path | None = None,
    fixed: Sequence[float] = (0.5, 0.5),
) -> IVIFWeighting:
    """Build the IVIF weighting selected by name.

    * ``"densenet"``: :class:`DenseNetWeighting` (official; needs ``weights_path``).
    * ``"gradient"``: :class:`GradientWeighting` (no network, no file).
    * ``"fixed"``: :class:`FixedWeighting` with ``fixed = (w_ir, w_vis)``.
    * ``"auto"``: ``"densenet"`` when ``weights_path`` is given, else ``"gradient"`` (logged).
    """
    mode = mode.lower()  # type: ignore[assignment]
    if mode == "auto":
        if weights_path is not None:
            mode = "densenet"
        else:
            logger.warning(
                "IVIF weighting 'auto': no DenseNet-121 weights_path given, using the network-free "
                "'gradient' weighting instead of the official DenseNet one"
            )
            mode = "gradient"
    if mode == "densenet":
        if weights_path is None:
            raise FileNotFoundError(
                "IVIF weighting 'densenet' needs weights_path: torchvision's ImageNet DenseNet-121 state "
                f"dict (densenet121-a639ec97.pth, {DENSENET121_WEIGHTS_URL}); the 'gradient' mode needs none."
            )
        logger.info("IVIF weighting: DenseNet-121 feature gradients from %s", weights_path)
        return DenseNetWeighting(weights_path)
    if mode == "gradient":
        logger.info("IVIF weighting: network-free multi-scale Laplacian energy")
        return GradientWeighting()
    if mode == "fixed":
        if len(fixed) != 2:
            raise ValueError(f"fixed must be (w_ir, w_vis), got {fixed!r}")
        return FixedWeighting(float(fixed[0]), float(fixed[1]))
    raise ValueError(f"unknown IVIF weighting mode {mode!r}; expected densenet, gradient, fixed or auto")
