"""Synthesis of multi-focus (MFIF) and multi-exposure (MEIF) pairs from one all-in-focus visible image.

**This recipe is the project's own choice.** How the official GIFNet near/far-focus training images were
made (masks, blur kernel, σ) is not known (reference GIFNET.md §14), and the official training uses no
MEIF data at all (MEIF is an unseen task there). The defaults below are documented in ``data/README.md``.

All functions work on ``float32`` ``H×W`` arrays in [0, 1] and are deterministic given a
``numpy.random.Generator``.

MFIF
    A smooth random *focus mask* ``m`` ∈ [0, 1] (union of ellipses, a random polygon, or a thresholded
    smooth random "depth" field; feathered edges) selects the region in focus in the near image::

        near = m · vis + (1 − m) · blur_near(vis)
        far  = (1 − m) · vis + m · blur_far(vis)

    ``blur`` is a Gaussian (σ = radius / 2) or an anti-aliased disk (pillbox, the thin-lens defocus PSF)
    of a random radius; near and far get independently drawn radii by default.
MEIF
    A camera-like exposure model: ``lin = vis ** γ`` (inverse display gamma), ``lin · 2**EV`` with
    ``EV < 0`` (under) and ``EV > 0`` (over), signal-dependent sensor noise (shot + read), clipping at
    the sensor's full well (saturation), gamma ``1/γ`` back and optional 8-bit quantisation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

__all__ = [
    "FocusConfig",
    "ExposureConfig",
    "random_focus_mask",
    "blur_kernel",
    "defocus",
    "synthesize_focus_pair",
    "apply_exposure",
    "synthesize_exposure_pair",
    "config_from_mapping",
]

Range = tuple[float, float]


@dataclass
class FocusConfig:
    """Options of the multi-focus synthesis (project's own recipe; all ranges are inclusive [lo, hi]).

    Attributes:
        mask_kinds: mask generators to draw from: ``"blobs"`` (union of 1–``max_blobs`` ellipses),
            ``"polygon"`` (one random star-shaped polygon), ``"depth"`` (smooth random depth field,
            thresholded at a random focal depth: irregular, scene-spanning regions).
        mask_weights: sampling weights of ``mask_kinds`` (same length), or ``None`` for uniform.
        max_blobs: maximum number of ellipses of a ``"blobs"`` mask.
        coverage: accepted fraction of the crop in focus in the near image; masks are redrawn (up to
            ``max_tries``) until the mean of the mask falls in this range.
        edge_softness: σ (pixels) of the Gaussian feathering of the mask boundary.
        kernels: defocus kernels to draw from: ``"gaussian"`` (σ = radius / 2) and/or ``"disk"``.
        kernel_weights: sampling weights of ``kernels``, or ``None`` for uniform.
        blur_radius: defocus radius range in pixels.
        independent_radii: draw the near and far blur radii independently (else one radius for both).
        invert_probability: probability of swapping the roles of mask and complement (so that the
            in-focus region is not always the "object").
        max_tries: attempts to meet ``coverage``.
    """

    mask_kinds: tuple[str, ...] = ("blobs", "polygon", "depth")
    mask_weights: tuple[float, ...] | None = None
    max_blobs: int = 4
    coverage: Range = (0.25, 0.75)
    edge_softness: Range = (0.5, 4.0)
    kernels: tuple[str, ...] = ("gaussian", "disk")
    kernel_weights: tuple[float, ...] | None = None
    blur_radius: Range = (2.0, 6.0)
    independent_radii: bool = True
    invert_probability: float = 0.5
    max_tries: int = 8

    def __post_init__(self) -> None:
        self.mask_kinds = tuple(self.mask_kinds)
        self.kernels = tuple(self.kernels)
        self.coverage = _check_range("coverage", self.coverage, 0.0, 1.0)
        self.edge_softness = _check_range("edge_softness", self.edge_softness, 0.0, None)
        self.blur_radius = _check_range("blur_radius", self.blur_radius, 0.0, None)
        for k in self.mask_kinds:
            if k not in ("blobs", "polygon", "depth"):
                raise ValueError(f"FocusConfig.mask_kinds: unknown mask kind {k!r} (blobs, polygon, depth)")
        for k in self.kernels:
            if k not in ("gaussian", "disk"):
                raise ValueError(f"FocusConfig.kernels: unknown kernel {k!r} (gaussian, disk)")
        if not self.mask_kinds or not self.kernels:
            raise ValueError("FocusConfig: mask_kinds and kernels must not be empty")
        self.mask_weights = _check_weights("mask_weights", self.mask_weights, len(self.mask_kinds))
        self.kernel_weights = _check_weights("kernel_weights", self.kernel_weights, len(self.kernels))

    @property
    def max_radius(self) -> float:
        """Largest blur radius (sets the context margin that avoids border artefacts)."""
        return float(self.blur_radius[1])


@dataclass
class ExposureConfig:
    """Options of the multi-exposure synthesis (project's own recipe).

    Attributes:
        gamma: display gamma range; the scene is linearised with ``vis ** γ`` and re-encoded with ``1/γ``.
        ev_under: exposure change (stops) of the under-exposed image (negative).
        ev_over: exposure change (stops) of the over-exposed image (positive).
        shot_noise: range of the shot-noise variance factor ``a`` (variance ``a · signal``, linear units).
        read_noise: range of the read-noise standard deviation ``b`` (linear units).
        saturation: range of the sensor full-well level (linear); values above clip to it and the output
            is normalised so that the full well maps to 1 (white).
        quantize: round the result to 8-bit levels (like a stored 8-bit photograph).
    """

    gamma: Range = (2.0, 2.4)
    ev_under: Range = (-3.0, -1.0)
    ev_over: Range = (1.0, 3.0)
    shot_noise: Range = (0.0, 2e-4)
    read_noise: Range = (0.0, 2e-3)
    saturation: Range = (0.9, 1.0)
    quantize: bool = True

    def __post_init__(self) -> None:
        self.gamma = _check_range("gamma", self.gamma, 1e-3, None)
        self.ev_under = _check_range("ev_under", self.ev_under, None, 0.0)
        self.ev_over = _check_range("ev_over", self.ev_over, 0.0, None)
        self.shot_noise = _check_range("shot_noise", self.shot_noise, 0.0, None)
        self.read_noise = _check_range("read_noise", self.read_noise, 0.0, None)
        self.saturation = _check_range("saturation", self.saturation, 1e-3, 1.0)


def _check_range(name: str, value: Any, lo: float | None, hi: float | None) -> Range:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a [low, high] pair of numbers, got {value!r}") from exc
    if a > b:
        raise ValueError(f"{name}: low {a} is larger than high {b}")
    if (lo is not None and a < lo) or (hi is not None and b > hi):
        raise ValueError(f"{name}: range [{a}, {b}] outside the allowed [{lo}, {hi}]")
    return (a, b)


def _check_weights(name: str, w: Any, n: int) -> tuple[float, ...] | None:
    if w is None:
        return None
    w = tuple(float(x) for x in w)
    if len(w) != n or any(x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"{name}: expected {n} non-negative weights with a positive sum, got {w}")
    return w


def config_from_mapping(cls: type, mapping: Any) -> Any:
    """Build a :class:`FocusConfig`/:class:`ExposureConfig` from a dict / DictConfig / instance / None."""
    if mapping is None:
        return cls()
    if isinstance(mapping, cls):
        return mapping
    if hasattr(mapping, "items"):
        data = {str(k): v for k, v in mapping.items()}
    else:
        raise TypeError(f"{cls.__name__}: expected a mapping, got {type(mapping).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(known)}")
    out = {}
    for k, v in data.items():
        if v is not None and not isinstance(v, str | int | float | bool):
            v = tuple(v)  # ListConfig → tuple
        out[k] = v
    return cls(**out)


def _choice(rng: np.random.Generator, items: tuple[str, ...], weights: tuple[float, ...] | None) -> str:
    if weights is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


# ------------------------------------------------------------------------------------------------ masks
def _mask_blobs(h: int, w: int, rng: np.random.Generator, max_blobs: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    n = int(rng.integers(1, max(1, max_blobs) + 1))
    s = min(h, w)
    for _ in range(n):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        ax = rng.uniform(0.15, 0.45) * s
        ay = ax * rng.uniform(0.5, 1.5)
        ang = rng.uniform(0, 180)
        cv2.ellipse(
            m,
            (int(round(cx)), int(round(cy))),
            (max(1, int(ax)), max(1, int(ay))),
            ang,
            0,
            360,
            1,
            -1,
            lineType=cv2.LINE_AA,
        )
    return m.astype(np.float32)


def _mask_polygon(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(3, 9))
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    base = rng.uniform(0.25, 0.6) * min(h, w)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = base * rng.uniform(0.5, 1.4, n)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_AA)
    return m.astype(np.float32)


def _smooth_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency random field in [0, 1]: upsampled coarse noise plus a random tilted plane."""
    cells = int(rng.integers(2, 6))
    gh, gw = cells + 1, max(2, int(round((cells + 1) * w / max(h, 1))))
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    f = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    plane = (np.cos(theta) * xx / max(w, 1) + np.sin(theta) * yy / max(h, 1)) * rng.uniform(0.0, 3.0)
    f = f + plane.astype(np.float32)
    f -= f.min()
    return f / max(float(f.max()), 1e-6)


def _mask_depth(h: int, w: int, rng: np.random.Generator, coverage: Range) -> np.ndarray:
    depth = _smooth_field(h, w, rng)
    target = _uniform(rng, coverage)
    t = float(np.quantile(depth, target))  # near region: depth below the focal threshold
    return (depth <= t).astype(np.float32)


def random_focus_mask(
    h: int, w: int, rng: np.random.Generator, cfg: FocusConfig | None = None, kind: str | None = None
) -> np.ndarray:
    """Smooth random focus mask ``float32 H×W`` in [0, 1] (1 = in focus in the *near* image).

    Args:
        h, w: mask size.
        rng: random generator (the only source of randomness).
        cfg: options (:class:`FocusConfig` defaults when ``None``).
        kind: force a mask kind (``"blobs"``, ``"polygon"``, ``"depth"``); drawn from ``cfg`` otherwise.
    """
    cfg = cfg or FocusConfig()
    kind = kind or _choice(rng, cfg.mask_kinds, cfg.mask_weights)
    best: np.ndarray | None = None
    best_err = np.inf
    lo, hi = cfg.coverage
    for _ in range(max(1, cfg.max_tries)):
        if kind == "blobs":
            m = _mask_blobs(h, w, rng, cfg.max_blobs)
        elif kind == "polygon":
            m = _mask_polygon(h, w, rng)
        elif kind == "depth":
            m = _mask_depth(h, w, rng, cfg.coverage)
        else:
            raise ValueError(f"random_focus_mask: unknown kind {kind!r}")
        if rng.uniform() < cfg.invert_probability:
            m = 1.0 - m
        cov = float(m.mean())
        err = max(lo - cov, cov - hi, 0.0)
        if err < best_err:
            best, best_err = m, err
        if err == 0.0:
            break
    assert best is not None
    sigma = _uniform(rng, cfg.edge_softness)
    if sigma > 0:
        best = cv2.GaussianBlur(best, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(best, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------- blur
def blur_kernel(radius: float, kind: str = "gaussian") -> np.ndarray:
    """Normalised 2-D defocus kernel: Gaussian (σ = radius / 2, support ±3σ) or anti-aliased disk."""
    if radius <= 0:
        return np.ones((1, 1), np.float32)
    if kind == "gaussian":
        sigma = radius / 2.0
        half = max(1, int(np.ceil(3 * sigma)))
        x = np.arange(-half, half + 1, dtype=np.float64)
        g = np.exp(-0.5 * (x / sigma) ** 2)
        k = np.outer(g, g)
    elif kind == "disk":
        half = int(np.ceil(radius))
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
        k = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0)  # pixel coverage of the disk edge
    else:
        raise ValueError(f"blur_kernel: unknown kernel {kind!r} (gaussian, disk)")
    return (k / k.sum()).astype(np.float32)


def defocus(img: np.ndarray, radius: float, kind: str = "gaussian") -> np.ndarray:
    """Blur ``img`` (``float32 H×W``) with :func:`blur_kernel` (reflected borders)."""
    if radius <= 0:
        return img.astype(np.float32, copy=True)
    k = blur_kernel(radius, kind)
    out = cv2.filter2D(img.astype(np.float32), -1, k, borderType=cv2.BORDER_REFLECT_101)
    return out


def synthesize_focus_pair(
    vis: np.ndarray, rng: np.random.Generator, cfg: FocusConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make a (near, far) multi-focus pair from the all-in-focus ``vis`` (``float32 H×W`` in [0, 1]).

    Returns:
        ``(near, far, mask)``; ``near`` is sharp where ``mask`` ≈ 1, ``far`` where ``mask`` ≈ 0.
    """
    cfg = cfg or FocusConfig()
    vis = vis.astype(np.float32, copy=False)
    h, w = vis.shape
    mask = random_focus_mask(h, w, rng, cfg)
    kind = _choice(rng, cfg.kernels, cfg.kernel_weights)
    r_near = _uniform(rng, cfg.blur_radius)
    r_far = _uniform(rng, cfg.blur_radius) if cfg.independent_radii else r_near
    blur_n = defocus(vis, r_near, kind)
    blur_f = defocus(vis, r_far, kind)
    near = mask * vis + (1.0 - mask) * blur_n
    far = (1.0 - mask) * vis + mask * blur_f
    return np.clip(near, 0, 1).astype(np.float32), np.clip(far, 0, 1).astype(np.float32), mask


# --------------------------------------------------------------------------------------------- exposure
def apply_exposure(
    vis: np.ndarray,
    ev: float,
    rng: np.random.Generator | None,
    gamma: float = 2.2,
    shot_noise: float = 0.0,
    read_noise: float = 0.0,
    saturation: float = 1.0,
    quantize: bool = True,
) -> np.ndarray:
    """Re-expose a display-referred image by ``ev`` stops with a simple camera model.

    ``lin = vis ** gamma`` → ``lin · 2**ev`` → ``+ N(0, shot_noise · lin + read_noise²)`` → clip to
    ``[0, saturation]`` → ``(· / saturation) ** (1 / gamma)`` → optional 8-bit quantisation.
    """
    lin = np.power(np.clip(vis.astype(np.float32), 0, 1), np.float32(gamma)) * np.float32(2.0**ev)
    if (shot_noise > 0 or read_noise > 0) and rng is not None:
        var = shot_noise * np.maximum(lin, 0) + read_noise**2
        lin = lin + np.sqrt(var).astype(np.float32) * rng.standard_normal(lin.shape).astype(np.float32)
    lin = np.clip(lin, 0.0, saturation) / np.float32(saturation)
    out = np.power(lin, np.float32(1.0 / gamma))
    if quantize:
        out = np.rint(out * 255.0) / 255.0
    return out.astype(np.float32)


def synthesize_exposure_pair(
    vis: np.ndarray, rng: np.random.Generator, cfg: ExposureConfig | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Make an (under, over) exposure pair of one scene (same gamma and sensor, different EV).

    Returns:
        ``(under, over, params)`` with ``params`` = ``gamma``, ``ev_under``, ``ev_over``, noise levels and
        ``saturation`` actually drawn.
    """
    cfg = cfg or ExposureConfig()
    params = {
        "gamma": _uniform(rng, cfg.gamma),
        "ev_under": _uniform(rng, cfg.ev_under),
        "ev_over": _uniform(rng, cfg.ev_over),
        "shot_noise": _uniform(rng, cfg.shot_noise),
        "read_noise": _uniform(rng, cfg.read_noise),
        "saturation": _uniform(rng, cfg.saturation),
    }
    common = {k: params[k] for k in ("gamma", "shot_noise", "read_noise", "saturation")}
    under = apply_exposure(vis, params["ev_under"], rng, quantize=cfg.quantize, **common)
    over = apply_exposure(vis, params["ev_over"], rng, quantize=cfg.quantize, **common)
    return under, over, params
