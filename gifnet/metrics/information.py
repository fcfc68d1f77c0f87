"""Information-theoretic fusion metrics: entropy, mutual information (VIFB/Tang variants), NMI, Tsallis entropy (TE),
cross-entropy and Q_NCIE. Input conventions: :mod:`gifnet.metrics.core`.
"""

from __future__ import annotations

import numpy as np

from gifnet.metrics._matlab import (
    entropy_from_counts,
    hist256,
    joint_hist256,
    normalize1,
    round_half_away,
)


def entropy(f: np.ndarray) -> float:
    """EN (bits): Shannon entropy of the 256-bin histogram of ``floor(f)`` (MATLAB ``entropy`` for uint8)."""
    return entropy_from_counts(hist256(f))


def _mi_from_joint(h: np.ndarray, log=np.log2) -> float:
    hx = entropy_from_counts(h.sum(axis=1), log)
    hy = entropy_from_counts(h.sum(axis=0), log)
    return hx + hy - entropy_from_counts(h, log)


def mutual_information(x: np.ndarray, f: np.ndarray, unit: str = "bits") -> float:
    """MI(X, F) = H(X) + H(F) - H(X, F) on raw integer grey levels, 256x256 joint histogram.

    Args:
        unit: ``"bits"`` (log2) or ``"nats"`` (natural log).
    """
    log = _log_for(unit)
    return _mi_from_joint(joint_hist256(np.clip(x, 0, 255), np.clip(f, 0, 255)), log)


def mi(a: np.ndarray, b: np.ndarray, f: np.ndarray, unit: str = "bits") -> float:
    """MI = MI(A, F) + MI(B, F) (sum, raw grey levels); ``unit`` is ``"bits"`` or ``"nats"``."""
    return mutual_information(a, f, unit) + mutual_information(b, f, unit)


def _log_for(unit: str):
    if unit == "bits":
        return np.log2
    if unit == "nats":
        return np.log
    raise ValueError(f"unit must be 'bits' or 'nats', got {unit!r}")


def mi_vifb_pair(x: np.ndarray, f: np.ndarray) -> float:
    """VIFB ``Mutinf`` for one source (nats): min-max stretch, ``int16(x*255)``, joint histogram."""

    def stretch(im: np.ndarray) -> np.ndarray:
        lo, hi = im.min(), im.max()
        s = np.zeros_like(im) if hi == lo else (im - lo) / (hi - lo)
        return round_half_away(s * 255.0)

    return _mi_from_joint(joint_hist256(stretch(x), stretch(f)), np.log)


def mi_tang_pair(x: np.ndarray, f: np.ndarray) -> float:
    """Legacy Tang MI for one source (bits): marginals by ``entropy``; joint histogram indexed in uint8.

    The joint histogram index ``value + 1`` saturates in uint8, so grey level 255 is counted in the
    bin of 254 (joint only), METRICS.md section 4.2.
    """
    hx = entropy_from_counts(hist256(x))
    hf = entropy_from_counts(hist256(f))
    hj = entropy_from_counts(joint_hist256(np.minimum(x, 254), np.minimum(f, 254)))
    return hx + hf - hj


def nmi(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """NMI (Hossny): 2[MI(A,F)/(H(A)+H(F)) + MI(B,F)/(H(B)+H(F))] after ``normalize1``, log2. Range 0-2."""
    a, b, f = normalize1(a), normalize1(b), normalize1(f)
    out = 0.0
    for x in (a, b):
        h = joint_hist256(x, f)
        hx = entropy_from_counts(h.sum(axis=1))
        hf = entropy_from_counts(h.sum(axis=0))
        out += (hx + hf - entropy_from_counts(h)) / (hx + hf)
    return 2.0 * out


def _tsallis(x: np.ndarray, y: np.ndarray, q: float, liu_marginals: bool) -> float:
    h = joint_hist256(x, y)
    h = h / h.sum()
    px, py = h.sum(axis=1), h.sum(axis=0)
    if liu_marginals:
        # Liu's tsallis.m pairs h(i, j) with marg_y(i) * marg_x(j) (its marginals are swapped).
        buff = np.outer(py, px)
    else:
        buff = np.outer(px, py)
    m = buff != 0
    res = np.sum(h[m] ** q / buff[m] ** (q - 1.0))
    return float((1.0 - res) / (1.0 - q))


def te(a: np.ndarray, b: np.ndarray, f: np.ndarray, q: float = 1.85, liu_marginals: bool = False) -> float:
    """TE (Tsallis entropy metric, Cvejic): I_q(A,F) + I_q(B,F) after ``normalize1``.

    Args:
        q: Tsallis order (Cvejic's 1.85).
        liu_marginals: reproduce Liu's/MEFB's ``tsallis.m``, which divides ``p(x, f)`` by the product of
            the swapped marginals ``p_F(x) p_X(f)`` (this is what MEFB reports, values in the thousands).
    """
    a, b, f = normalize1(a), normalize1(b), normalize1(f)
    return _tsallis(a, f, q, liu_marginals) + _tsallis(b, f, q, liu_marginals)


def cross_entropy(x: np.ndarray, f: np.ndarray) -> float:
    """D(h_X || h_F) in bits over the bins where both 256-bin histograms are non-zero (Bulanon)."""
    p = hist256(x)
    q = hist256(f)
    p /= x.size
    q /= x.size
    m = (p != 0) & (q != 0)
    return float(np.sum(p[m] * np.log2(p[m] / q[m])))


def ce(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CE = [D(h_A||h_F) + D(h_B||h_F)]/2 (lower is better)."""
    return 0.5 * (cross_entropy(a, f) + cross_entropy(b, f))


def q_ncie(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_NCIE (Wang, Shen, Jin) on ``normalize1``'d images, nonlinear correlation from joint histograms."""
    a, b, f = normalize1(a), normalize1(b), normalize1(f)

    def ncc(x: np.ndarray, y: np.ndarray) -> float:
        h = joint_hist256(x, y)
        lb = np.log2(256.0)
        return (entropy_from_counts(h.sum(axis=1)) + entropy_from_counts(h.sum(axis=0)) - entropy_from_counts(h)) / lb

    nab, naf, nbf = ncc(a, b), ncc(a, f), ncc(b, f)
    r = np.linalg.eigvalsh(np.array([[1.0, nab, naf], [nab, 1.0, nbf], [naf, nbf, 1.0]]))
    k = 3.0
    hr = np.sum(r * np.log2(r / k) / k)
    return float(1.0 + hr / np.log2(256.0))


