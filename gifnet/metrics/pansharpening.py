"""Pansharpening metrics (METRICS.md section 2.22), written by hand with NumPy/SciPy.

Images are float64 arrays HxWxK (K bands; HxW is treated as K = 1) in digital numbers (e.g. 0-255 or
the sensor's DN range, not [0, 1]). Reduced-resolution metrics compare a fused image with the reference
MS image; full-resolution metrics (D_lambda, D_s, QNR) use the low-resolution MS and the PAN image.

Not pinned by golden data. Differences from the DLPan/Vivone MATLAB toolbox: UIQI/Q2n use
non-overlapping blocks (block = shift = 32) without the toolbox's uint16 cast, and the PAN degradation of
D_s uses a Gaussian low-pass whose gain at the Nyquist frequency of the decimated grid is 0.3 (a generic
MTF) instead of a sensor-specific MTF.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRIC_INFO = {
    "SAM": (False, "spectral angle mapper, mean over pixels, degrees (ideal 0)"),
    "ERGAS": (False, "relative dimensionless global error, (100/R) sqrt(mean_k RMSE_k^2/mu_k^2) (ideal 0)"),
    "Q": (True, "UIQI on 32x32 blocks averaged over blocks and bands (ideal 1)"),
    "Q2n": (True, "hypercomplex UIQI (Q4 for 4 bands) on 32x32 blocks (ideal 1)"),
    "SCC": (True, "spatial correlation coefficient of Laplacian-filtered details (ideal 1)"),
    "D_lambda": (False, "spectral distortion index, p = 1 (ideal 0)"),
    "D_s": (False, "spatial distortion index, q = 1 (ideal 0)"),
    "QNR": (True, "quality with no reference, (1 - D_lambda)(1 - D_s) (ideal 1)"),
}


def _bands(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[..., None] if x.ndim == 2 else x


def _check(ref: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, f = _bands(ref), _bands(fused)
    if r.shape != f.shape:
        raise ValueError(f"shape mismatch: reference {r.shape} vs fused {f.shape}")
    return r, f


def sam(ref: np.ndarray, fused: np.ndarray) -> float:
    """SAM in degrees: mean angle between band vectors; pixels with a zero-norm vector are excluded."""
    r, f = _check(ref, fused)
    dot = np.sum(r * f, axis=-1)
    nr = np.linalg.norm(r, axis=-1)
    nf = np.linalg.norm(f, axis=-1)
    valid = (nr > 0) & (nf > 0)
    if not np.any(valid):
        return 0.0
    cos = np.clip(dot[valid] / (nr[valid] * nf[valid]), -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def ergas(ref: np.ndarray, fused: np.ndarray, ratio: float = 4.0) -> float:
    """ERGAS = (100/R) sqrt((1/K) sum_k RMSE_k^2 / mu_k^2), mu_k = mean of reference band k."""
    r, f = _check(ref, fused)
    rmse2 = np.mean((r - f) ** 2, axis=(0, 1))
    mu2 = np.mean(r, axis=(0, 1)) ** 2
    return float(100.0 / ratio * np.sqrt(np.mean(rmse2 / mu2)))


def _uiqi_blocks(x: np.ndarray, y: np.ndarray, block: int) -> float:
    m, n = x.shape
    bm, bn = max(m // block, 1), max(n // block, 1)
    hs, ws = (block, block) if m >= block and n >= block else (m, n)
    vals = []
    for i in range(bm):
        for j in range(bn):
            a = x[i * hs : (i + 1) * hs, j * ws : (j + 1) * ws].ravel()
            b = y[i * hs : (i + 1) * hs, j * ws : (j + 1) * ws].ravel()
            ma, mb = a.mean(), b.mean()
            va, vb = a.var(ddof=1), b.var(ddof=1)
            cov = np.sum((a - ma) * (b - mb)) / (a.size - 1)
            den = (va + vb) * (ma * ma + mb * mb)
            if den == 0:
                vals.append(1.0 if (va + vb) == 0 and ma == mb else 0.0)
            else:
                vals.append(4 * cov * ma * mb / den)
    return float(np.mean(vals))


def uiqi(x: np.ndarray, y: np.ndarray, block: int = 32) -> float:
    """Universal image quality index (Wang-Bovik) of two 2-D images, mean over 32x32 blocks."""
    return _uiqi_blocks(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), block)


def q_index(ref: np.ndarray, fused: np.ndarray, block: int = 32) -> float:
    """Q: UIQI per band (32x32 blocks), averaged over bands."""
    r, f = _check(ref, fused)
    return float(np.mean([uiqi(r[..., k], f[..., k], block) for k in range(r.shape[-1])]))


def _cd_conj(x: np.ndarray) -> np.ndarray:
    out = -x.copy()
    out[..., 0] = x[..., 0]
    return out


def _cd_mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of hypercomplex numbers stored on the last axis (size a power of 2)."""
    d = x.shape[-1]
    if d == 1:
        return x * y
    h = d // 2
    a, b = x[..., :h], x[..., h:]
    c, e = y[..., :h], y[..., h:]
    return np.concatenate([_cd_mul(a, c) - _cd_mul(_cd_conj(e), b), _cd_mul(e, a) + _cd_mul(b, _cd_conj(c))], axis=-1)


def q2n(ref: np.ndarray, fused: np.ndarray, block: int = 32) -> float:
    """Q2n (Garzelli-Nencini; Q4 for 4 bands): hypercomplex UIQI on non-overlapping blocks.

    Bands are zero-padded to the next power of two. For each block, with x, y the hypercomplex pixel
    vectors: Q = |sigma_xy| / (sigma_x sigma_y) * 2 sigma_x sigma_y / (sigma_x^2 + sigma_y^2)
    * 2 |mu_x| |mu_y| / (|mu_x|^2 + |mu_y|^2), sigma_xy = E[x conj(y)] - mu_x conj(mu_y).
    """
    r, f = _check(ref, fused)
    k = r.shape[-1]
    d = 1 << max(int(np.ceil(np.log2(k))), 0)
    if d > k:
        pad = ((0, 0), (0, 0), (0, d - k))
        r, f = np.pad(r, pad), np.pad(f, pad)
    m, n = r.shape[:2]
    hs, ws = (block, block) if m >= block and n >= block else (m, n)
    vals = []
    for i in range(max(m // hs, 1)):
        for j in range(max(n // ws, 1)):
            x = r[i * hs : (i + 1) * hs, j * ws : (j + 1) * ws].reshape(-1, d)
            y = f[i * hs : (i + 1) * hs, j * ws : (j + 1) * ws].reshape(-1, d)
            mx, my = x.mean(axis=0), y.mean(axis=0)
            npx = x.shape[0]
            sx2 = np.sum((x - mx) ** 2) / (npx - 1)
            sy2 = np.sum((y - my) ** 2) / (npx - 1)
            sxy = np.sum(_cd_mul(x - mx, _cd_conj(y - my)), axis=0) / (npx - 1)
            nmx2, nmy2 = np.sum(mx * mx), np.sum(my * my)
            den = (sx2 + sy2) * (nmx2 + nmy2)
            if den == 0:
                vals.append(1.0 if sx2 + sy2 == 0 and np.array_equal(mx, my) else 0.0)
                continue
            vals.append(4 * np.linalg.norm(sxy) * np.sqrt(nmx2 * nmy2) / den)
    return float(np.mean(vals))


_LAPLACE = np.array([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])


def scc(ref: np.ndarray, fused: np.ndarray) -> float:
    """SCC: Pearson correlation of Laplacian-filtered (high-pass) images, all bands jointly."""
    r, f = _check(ref, fused)
    hr = np.stack([ndimage.correlate(r[..., k], _LAPLACE, mode="nearest") for k in range(r.shape[-1])], -1)
    hf = np.stack([ndimage.correlate(f[..., k], _LAPLACE, mode="nearest") for k in range(f.shape[-1])], -1)
    a, b = hr - hr.mean(), hf - hf.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else 1.0


def d_lambda(fused: np.ndarray, ms_lr: np.ndarray, p: float = 1.0, block: int = 32) -> float:
    """D_lambda = ((1/(K(K-1))) sum_{l != r} |Q(F_l, F_r) - Q(MS_l, MS_r)|^p)^(1/p)."""
    f, m = _bands(fused), _bands(ms_lr)
    k = f.shape[-1]
    if k < 2:
        return 0.0
    acc = 0.0
    for i in range(k):
        for j in range(k):
            if i != j:
                acc += abs(uiqi(f[..., i], f[..., j], block) - uiqi(m[..., i], m[..., j], block)) ** p
    return float((acc / (k * (k - 1))) ** (1.0 / p))


def degrade(img: np.ndarray, ratio: int, nyquist_gain: float = 0.3) -> np.ndarray:
    """Gaussian MTF-like low-pass (gain ``nyquist_gain`` at the decimated Nyquist) then decimation."""
    if ratio == 1:
        return np.asarray(img, dtype=np.float64)
    fc = 0.5 / ratio  # cycles/pixel
    sigma_f = fc / np.sqrt(-2.0 * np.log(nyquist_gain))
    sigma = 1.0 / (2 * np.pi * sigma_f)
    x = _bands(img)
    out = np.stack([ndimage.gaussian_filter(x[..., k], sigma, mode="nearest") for k in range(x.shape[-1])], -1)
    out = out[ratio // 2 :: ratio, ratio // 2 :: ratio]
    return out[..., 0] if np.asarray(img).ndim == 2 else out


def d_s(
    fused: np.ndarray, ms_lr: np.ndarray, pan: np.ndarray, ratio: int = 4, q: float = 1.0, block: int = 32
) -> float:
    """D_s = ((1/K) sum_l |Q(F_l, P) - Q(MS_l, P_LR)|^q)^(1/q), P_LR = degraded PAN (see :func:`degrade`)."""
    f, m = _bands(fused), _bands(ms_lr)
    p = np.asarray(pan, dtype=np.float64)
    if p.ndim == 3:
        p = p[..., 0]
    p_lr = degrade(p, ratio)
    if p_lr.shape != m.shape[:2]:
        raise ValueError(f"degraded PAN {p_lr.shape} does not match the MS size {m.shape[:2]}")
    lr_block = max(block // ratio, 2)
    acc = 0.0
    for k in range(f.shape[-1]):
        acc += abs(uiqi(f[..., k], p, block) - uiqi(m[..., k], p_lr, lr_block)) ** q
    return float((acc / f.shape[-1]) ** (1.0 / q))


def qnr(
    fused: np.ndarray, ms_lr: np.ndarray, pan: np.ndarray, ratio: int = 4, alpha: float = 1.0, beta: float = 1.0
) -> float:
    """QNR = (1 - D_lambda)^alpha (1 - D_s)^beta (ideal 1)."""
    dl = d_lambda(fused, ms_lr)
    ds = d_s(fused, ms_lr, pan, ratio)
    return float((1 - dl) ** alpha * (1 - ds) ** beta)


def compute_reduced(ref: np.ndarray, fused: np.ndarray, ratio: float = 4.0) -> dict[str, float]:
    """All reduced-resolution metrics (SAM, ERGAS, Q, Q2n, SCC) of a fused image against the reference."""
    return {
        "SAM": sam(ref, fused),
        "ERGAS": ergas(ref, fused, ratio),
        "Q": q_index(ref, fused),
        "Q2n": q2n(ref, fused),
        "SCC": scc(ref, fused),
    }


def compute_full(fused: np.ndarray, ms_lr: np.ndarray, pan: np.ndarray, ratio: int = 4) -> dict[str, float]:
    """Full-resolution metrics (D_lambda, D_s, QNR)."""
    dl = d_lambda(fused, ms_lr)
    ds = d_s(fused, ms_lr, pan, ratio)
    return {"D_lambda": dl, "D_s": ds, "QNR": (1 - dl) * (1 - ds)}
