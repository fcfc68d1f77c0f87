"""Always-run unit tests of the metric suite on small synthetic images (hand-computable values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gifnet.metrics import (
    METRICS,
    compute,
    compute_checked,
    core,
    list_conventions,
    list_metrics,
    pansharpening,
    read_for_metrics,
)
from gifnet.metrics._matlab import (
    blocks_sum,
    conv2_same,
    conv3x3_same_matlab_order,
    filter2_valid,
    fspecial_gaussian,
    normalize1,
    rgb2gray,
    round_half_away,
)
from gifnet.metrics.golden import matches, tolerance


@pytest.fixture(scope="module")
def imgs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three related 48x40 float images on 0-255 (smooth structure + noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:40]
    a = 120 + 60 * np.sin(xx / 5.0) + rng.normal(0, 8, (48, 40))
    b = 100 + 50 * np.cos(yy / 4.0) + rng.normal(0, 8, (48, 40))
    f = 0.5 * (a + b)
    return tuple(np.clip(np.round(x), 0, 255) for x in (a, b, f))


# ---------------------------------------------------------------- MATLAB helpers


def test_round_half_away_and_rgb2gray() -> None:
    assert np.array_equal(round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -1.5])), [1, 2, 3, -1, -2])
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    g = rgb2gray(px)
    assert np.array_equal(g, [[76, 150, 29, 18]])  # 76.23, 149.70, 29.08, 18.12 rounded
    assert rgb2gray(px.astype(np.float64))[0, 0] == pytest.approx(0.298936021293775 * 255)


def test_fspecial_gaussian_normalised_and_symmetric() -> None:
    h = fspecial_gaussian(11, 1.5)
    assert h.sum() == pytest.approx(1.0, abs=1e-15)
    assert np.allclose(h, h.T) and np.allclose(h, h[::-1, ::-1])
    assert h[5, 5] == h.max()


def test_conv_orders_agree_on_integers() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (9, 7)).astype(float)
    k = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    from scipy.signal import convolve2d

    assert np.array_equal(conv2_same(x, k), convolve2d(x, k, mode="same"))
    assert np.array_equal(conv3x3_same_matlab_order(x, k), convolve2d(x, k, mode="same"))


def test_normalize1_and_blocks() -> None:
    assert np.array_equal(normalize1(np.array([[2.0, 4.0], [6.0, 3.0]])), [[0.0, 128.0], [255.0, 64.0]])
    assert np.array_equal(normalize1(np.zeros((2, 2))), np.zeros((2, 2)))
    s = blocks_sum(np.ones((20, 17)), 16)
    assert s.shape == (2, 2) and s[0, 0] == 256 and s[1, 1] == 4 * 1


# ---------------------------------------------------------------- information metrics


def test_entropy_hand_values() -> None:
    assert core.entropy(np.full((8, 8), 77.0)) == 0.0
    half = np.zeros((8, 8))
    half[:, 4:] = 200
    assert core.entropy(half) == pytest.approx(1.0)
    four = np.repeat(np.array([0.0, 50, 100, 150]), 16).reshape(8, 8)
    assert core.entropy(four) == pytest.approx(2.0)


def test_mi_of_image_with_itself_is_its_entropy(imgs) -> None:
    a, _, _ = imgs
    h = core.entropy(a)
    assert core.mutual_information(a, a) == pytest.approx(h, rel=1e-12)
    assert core.mutual_information(a, a, "nats") == pytest.approx(h * math.log(2), rel=1e-12)
    assert core.mi(a, a, a) == pytest.approx(2 * h)
    with pytest.raises(ValueError, match="bits"):
        core.mutual_information(a, a, "dits")


def test_mi_independent_is_small_and_symmetric(imgs) -> None:
    a, b, f = imgs
    assert core.mutual_information(a, f) == pytest.approx(core.mutual_information(f, a), rel=1e-12)
    assert core.mi(a, b, f) == pytest.approx(core.mi(b, a, f), rel=1e-12)


def test_nmi_te_ncie_ce(imgs) -> None:
    a, b, f = imgs
    assert core.nmi(a, a, a) == pytest.approx(2.0)
    assert 0 < core.nmi(a, b, f) < 2
    assert core.ce(a, a, a) == 0.0
    assert core.ce(a, b, f) > 0
    assert core.te(a, b, f) > 0
    assert core.te(a, b, f) == pytest.approx(core.te(b, a, f))
    assert 0 < core.q_ncie(a, b, f) <= 1
    # NCC(X, X) = H(X)/8 < 1, so even a perfect copy stays below 1, but above a mixture
    assert core.q_ncie(a, b, f) < core.q_ncie(a, a, a) < 1


# ---------------------------------------------------------------- statistics


def test_sd_sf_ag_hand_values() -> None:
    two = np.zeros((4, 4))
    two[:, 2:] = 10
    assert core.sd(two) == pytest.approx(5.0)
    stripes = np.tile([0.0, 10.0], (4, 2))  # 4x4 columns alternating 0, 10
    # RF^2 = 4 rows * 3 diffs * 100, CF^2 = 0
    assert core.sf(stripes, "mn") == pytest.approx(math.sqrt(1200 / 16))
    assert core.sf(stripes, "counts") == pytest.approx(math.sqrt(1200 / 12))
    ramp = np.tile(np.arange(5.0) * 2, (5, 1))  # gradient 2 along columns
    assert core.ag(ramp) == pytest.approx(25 * math.sqrt(4 / 2) / 16)
    assert core.ei(np.full((6, 6), 9.0)) == 0.0


def test_sd_uint8_legacy_saturates() -> None:
    x = np.array([[0.0, 255.0]])
    assert core.sd(x) == pytest.approx(127.5)
    # deviations -127.5 -> uint8 0 ; +127.5 -> 128, squared saturates at 255
    assert core.sd_uint8_legacy(x) == pytest.approx(math.sqrt(255 / 2))


def test_cc_scd(imgs) -> None:
    a, b, f = imgs
    assert core.cc(a, a, a) == pytest.approx(1.0)
    assert core.corr2(a, 3 * a + 7) == pytest.approx(1.0)
    assert core.corr2(a, -a) == pytest.approx(-1.0)
    assert -2 <= core.scd(a, b, f) <= 2


# ---------------------------------------------------------------- error conventions


def test_psnr_conventions() -> None:
    a = np.zeros((4, 4))
    f = np.full((4, 4), 10.0)
    assert core.mse(a, a, f) == pytest.approx(100.0)
    assert core.psnr(a, a, f) == pytest.approx(10 * math.log10(255**2 / 100))
    assert core.rmse(a, a, f) == pytest.approx(10.0)
    # Tang: MSE on [0, 1]; PSNR = standard + 20 log10(255)
    assert core.mse_tang(a, a, f) == pytest.approx(100 / 255**2)
    assert core.psnr_tang(a, a, f) - core.psnr(a, a, f) == pytest.approx(20 * math.log10(255), abs=1e-9)
    # VIFB: sqrt(sum((X-F)^2))/(MN) = sqrt(16*100)/16 = 2.5
    assert core.rmse_vifb(a, a, f) == pytest.approx(2.5)
    assert core.psnr_vifb(a, a, f) == pytest.approx(20 * math.log10(255 / math.sqrt(2.5)))


# ---------------------------------------------------------------- structural metrics


def test_ssim_family_identities(imgs) -> None:
    a, b, f = imgs
    assert core.ssim(a, a) == pytest.approx(1.0)
    assert core.ssim_sum(a, a, a) == pytest.approx(2.0)
    assert core.ssim(a, b) < 0.9
    assert core.ssim(a, b) == pytest.approx(core.ssim(b, a))
    assert core.ms_ssim(
        np.pad(a, ((0, 176), (0, 184)), mode="reflect"), np.pad(a, ((0, 176), (0, 184)), mode="reflect")
    ) == pytest.approx(1.0)
    assert core.mef_ssim([a, a], a) == pytest.approx(1.0, abs=1e-9)
    assert core.mef_ssim([a, b], f) < 1.0
    assert core.qy(a, a, a) == pytest.approx(1.0)
    assert core.qc(a, b, a) <= 1.0 + 1e-12
    assert core.q_s(a, b, a) <= 1.0
    assert core.q_w(a, a, a) == pytest.approx(1.0)
    assert core.q_e(a, a, a) == pytest.approx(1.0)


def _flat_scene(seed: int = 0):
    """Sources with flat bright areas (levels differ, so their round-off does too), a black area, and their
    mean: the case of saturated multi-exposure and black-background medical images."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (48, 56)).astype(float)
    b = rng.integers(0, 256, (48, 56)).astype(float)
    a[:20, :30] = 254.0  # flat in both sources
    b[:20, :30] = 201.0
    a[30:, 35:] = 0.0  # black in A only
    return a, b, np.round((a + b) / 2)


def test_liu_qy_qc_flag_values_that_round_off_decides() -> None:
    """With C = 2e-16, windows flat in two images are ratios of round-off: the bound says so; textured
    images have no such window (bound 0) and are never flagged."""
    a, b, f = _flat_scene()
    for fn in (core.qy_roundoff, core.qc_roundoff):
        value, bound = fn(a, b, f)
        assert bound > 0.01  # a fifth of the windows lie in the shared saturated area
        assert core.roundoff_dominated(value, bound)
    rng = np.random.default_rng(1)
    x, y = (rng.integers(1, 255, (40, 40)).astype(float) for _ in range(2))
    for fn, plain in ((core.qy_roundoff, core.qy), (core.qc_roundoff, core.qc)):
        value, bound = fn(x, y, np.round((x + y) / 2))
        assert bound == 0.0 and value == plain(x, y, np.round((x + y) / 2))
        assert not core.roundoff_dominated(value, bound)


def test_liu_qy_changes_with_the_summation_order_where_flagged(monkeypatch) -> None:
    """What the flag means: the same formula with another summation order (one 2-D filter instead of two
    1-D passes) moves flagged Liu values beyond their precision; well-conditioned values stay put."""
    a, b, f = _flat_scene()
    liu = {fn: fn(a, b, f) for fn in (core.qy, core.qc)}
    good = {fn: fn(a, b, f, well_conditioned=True) for fn in (core.qy, core.qc)}
    from gifnet.metrics import structural  # where Qy and Qc filter their local statistics

    monkeypatch.setattr(structural, "filter2_valid_sep", lambda x, g: filter2_valid(x, np.outer(g, g)))
    for fn in (core.qy, core.qc):
        assert not matches(fn(a, b, f), liu[fn])
        assert fn(a, b, f, well_conditioned=True) == pytest.approx(good[fn], rel=1e-12)


def test_standard_qy_qc_are_well_conditioned_and_bounded() -> None:
    """``standard``: Wang's constants and exact flat statistics: values in [-1, 1] on flat and saturated
    images, never flagged, 1 for a perfect fusion."""
    a, b, f = _flat_scene()
    for m in ("Qy", "Qc"):
        v = compute_checked("standard", a.astype(np.uint8), b.astype(np.uint8), f.astype(np.uint8), [m])[m]
        assert -1.0 <= v.value <= 1.0 and not v.roundoff
    flat = np.full((30, 30), 255.0)
    assert core.qy(flat, flat, flat, well_conditioned=True) == pytest.approx(1.0)
    assert core.qc(flat, flat, flat, well_conditioned=True) == pytest.approx(1.0)
    assert core.qy(a, a, a, well_conditioned=True) == pytest.approx(1.0)


def test_mefb_qy_qc_are_flagged_per_channel() -> None:
    """The mefb dispatch averages the channels' round-off bounds; ``compute`` returns the same values unflagged."""
    a, b, f = _flat_scene()
    rgb = [np.repeat(x[..., None], 3, axis=2).astype(np.uint8) for x in (a, b, f)]
    checked = compute_checked("mefb", *rgb, ["Qy", "Qc", "SD"])
    assert checked["Qy"].roundoff and checked["Qc"].roundoff and not checked["SD"].roundoff
    assert compute("mefb", *rgb, ["Qy", "Qc", "SD"]) == {k: v.value for k, v in checked.items()}
    assert checked["Qy"].roundoff_bound == pytest.approx(core.qy_roundoff(a, b, f)[1])


def test_tang_nabf_is_the_toolbox_call_and_standard_is_kumars_order() -> None:
    """Tang's analysis_nabf(IR, VIS, F) takes (F, A, B): IR plays the fused image; ``standard`` keeps
    Kumar's (A, B, F). The two differ, and an artefact-free fusion (F = A) has standard Nabf 0."""
    rng = np.random.default_rng(5)
    ir, vis = (rng.integers(0, 256, (64, 72)).astype(np.uint8) for _ in range(2))
    f = ((ir.astype(int) + vis) // 2).astype(np.uint8)
    t = compute("tang", ir, vis, f, ["Nabf", "MS_SSIM"])
    assert t["Nabf"] == pytest.approx(core.nabf(vis.astype(float), f.astype(float), ir.astype(float)))
    s = compute("standard", ir, vis, f, ["Nabf", "MEF_MS_SSIM"])
    assert s["Nabf"] == pytest.approx(core.nabf(ir.astype(float), vis.astype(float), f.astype(float)))
    assert s["Nabf"] != pytest.approx(t["Nabf"])
    assert t["MS_SSIM"] == pytest.approx(s["MEF_MS_SSIM"])
    assert compute("standard", ir, vis, ir, ["Nabf"])["Nabf"] == 0.0


def test_mef_ssim_matches_loop_reference() -> None:
    """Vectorised MEF-SSIM equals a direct per-patch transcription of the algorithm."""
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 256, (14, 15)).astype(float) for _ in range(2)]
    f = np.round(0.5 * (xs[0] + xs[1]))
    win = fspecial_gaussian(11, 1.5).ravel()
    q = []
    for i in range(14 - 10):
        for j in range(15 - 10):
            vec = [x[i : i + 11, j : j + 11].ravel() for x in xs]
            mus = [v.mean() for v in vec]
            eds = [np.linalg.norm(v - m) + 0.001 for v, m in zip(vec, mus)]
            s = vec[0] + vec[1]
            r = (np.linalg.norm(s - s.mean()) + np.finfo(float).eps) / (
                sum(np.linalg.norm(v - m) for v, m in zip(vec, mus)) + np.finfo(float).eps
            )
            r = min(max(r, 0), 1 - np.finfo(float).eps)
            p = min(math.tan(math.pi / 2 * r), 10)
            w = np.array([(e / 11) ** p + np.finfo(float).eps for e in eds])
            w /= w.sum()
            rb = sum(wk * (v - m) / e for wk, v, m, e in zip(w, vec, mus, eds))
            rb = rb / np.linalg.norm(rb) * max(eds)
            fv = f[i : i + 11, j : j + 11].ravel()
            m1, m2 = np.sum(win * rb), np.sum(win * fv)
            s1, s2 = np.sum(win * (rb - m1) ** 2), np.sum(win * (fv - m2) ** 2)
            s12 = np.sum(win * (rb - m1) * (fv - m2))
            c = (0.03 * 255) ** 2
            q.append((2 * s12 + c) / (s1 + s2 + c))
    assert core.mef_ssim(xs, f) == pytest.approx(float(np.mean(q)), rel=1e-9)


def test_vif_identities(imgs) -> None:
    a, b, f = imgs
    big = np.pad(a, ((0, 40), (0, 40)), mode="reflect")
    assert core.vifp(big, big) == pytest.approx(1.0)
    assert core.vif(big, big, big) == pytest.approx(2.0)
    assert 0 < core.viff(big, big, big) <= 1.0 + 1e-9
    bb = np.pad(b, ((0, 40), (0, 40)), mode="reflect")
    assert core.vifp(big, np.pad(f, ((0, 40), (0, 40)), mode="reflect")) < 1.0
    assert core.viff(big, bb, 0.5 * (big + bb)) < 1.0


def test_qabf_family(imgs) -> None:
    a, b, f = imgs
    v = core.qabf(a, a, a)
    # ties G = g_F (>= 1 on 0-255 data) saturate Q_g at Gamma_g; orientation term = Gamma_a
    assert v == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2)), rel=2e-3)
    assert 0 < core.qabf(a, b, f) < v
    assert core.qabf(a, b, f) == pytest.approx(core.qabf(b, a, f))
    assert core.q_g(a, a, a) == pytest.approx(1 / (1 + math.exp(-5)) * 1 / (1 + math.exp(-20 * 0.25)), rel=1e-6)
    assert core.nabf(a, a, a) == 0.0
    assert core.nabf(a, b, 2 * f) > 0.0
    assert 0 <= core.labf(a, b, f) <= 1


def test_perceptual(imgs) -> None:
    a, b, f = imgs
    assert core.qcb(a, a, a) == pytest.approx(1.0)
    assert 0 < core.qcb(a, b, f) < 1
    assert core.qcv(a, a, a) == pytest.approx(0.0, abs=1e-18)
    assert core.qcv(a, b, f) > 0


def test_fmi_features(imgs) -> None:
    a, b, f = imgs
    for feat in ("none", "gradient", "edge", "dct"):
        assert core.fmi(a, b, a, feat) >= 0.5  # FMI_AF = 1 in every window
        assert core.fmi(a, a, a, feat) == pytest.approx(1.0)
    assert 0 < core.fmi(a, b, f, "none") < 1
    with pytest.raises(ValueError, match="unknown FMI feature"):
        core.fmi(a, b, f, "sift")



def _fmi_window(x: np.ndarray, y: np.ndarray) -> float:
    """FMI_XY of one window pair written out with loops (x: source, y: fused; positions column-major)."""
    if np.array_equal(x, y):
        return 1.0
    n = len(x)

    def norm(w):
        w = np.full(n, 1.0) if w.max() == w.min() else (w - w.min()) / (w.max() - w.min())
        return w / w.sum()

    p, q = norm(x), norm(y)
    sxy = sum((p[i] - p.mean()) * (q[i] - q.mean()) for i in range(n))
    c = 0.0 if sxy == 0 else sxy / math.sqrt(sum((p - p.mean()) ** 2) * sum((q - q.mean()) ** 2))
    pos = np.arange(1, n + 1)
    sd_p = math.sqrt(max(sum(pos**2 * p) - sum(pos * p) ** 2, 0.0))
    sd_q = math.sqrt(max(sum(pos**2 * q) - sum(pos * q) ** 2, 0.0))
    cp, cq = np.cumsum(p), np.cumsum(q)
    up = np.array([[min(cq[i], cp[j]) for j in range(n)] for i in range(n)])
    lo = np.array([[max(cq[i] + cp[j] - 1, 0.0) for j in range(n)] for i in range(n)])
    prod = np.outer(cq, cp)
    bound = up if c >= 0 else lo
    cov = (bound - prod).sum()
    weight = 0.0 if c == 0 or sd_p * sd_q == 0 else c / (cov / (sd_p * sd_q))
    pad = np.zeros((n + 1, n + 1))
    pad[1:, 1:] = bound
    joint = np.array([[pad[i + 1, j + 1] - pad[i, j + 1] - pad[i + 1, j] + pad[i, j] for j in range(n)]
                      for i in range(n)])  # fmt: skip
    jpdf = weight * joint + (1 - weight) * np.outer(q, p)

    def entropy(v):
        return -sum(t * math.log2(t) for t in v.ravel() if t > 0)

    mi = entropy(p) + entropy(q) - entropy(jpdf)
    return 0.0 if mi == 0 else 2 * mi / (entropy(p) + entropy(q))


def test_fmi_equals_the_written_out_window_formula() -> None:
    """The vectorised FMI (windows batched along the last axis, the fused image's part shared by both sources)
    equals the per-window formula written out with loops, on windows that take every branch: equal to the fused
    window, constant, negatively and positively correlated."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (9, 11)).astype(np.float64)
    b = np.round(255 - a * 0.6 + rng.normal(0, 20, a.shape))  # mostly negative correlation with a
    f = np.round((a + rng.integers(0, 256, a.shape)) / 2)
    f[:4, :4] = a[:4, :4]  # windows equal to A's
    a[5:, 7:] = 40.0  # constant windows
    order = np.arange(9).reshape(3, 3).T.ravel()

    def windows(x):
        return [x[r : r + 3, c : c + 3].ravel()[order] for r in range(x.shape[0] - 2) for c in range(x.shape[1] - 2)]

    want = np.mean([(_fmi_window(wa, wf) + _fmi_window(wb, wf)) / 2
                    for wa, wb, wf in zip(windows(a), windows(b), windows(f))])  # fmt: skip
    assert core.fmi(a, b, f, "none") == pytest.approx(want, rel=1e-12)


def test_phase_congruency_metric_ordering(imgs) -> None:
    a, b, f = imgs
    # the reference masks the source feature maps but not the fused one, so a copy scores < 1
    assert 0 < core.qp(a, b, f) < core.qp(a, a, a) <= 1.0 + 1e-9


def test_qp_computes_the_sources_part_once(imgs, monkeypatch) -> None:
    """Scoring a second method against the same sources reuses their phase congruency (cached by content,
    read-only): 4 phase-congruency computations for two methods instead of 6, and the same values."""
    from gifnet.metrics import _memo, phase

    a, b, f = imgs
    g = np.round(0.7 * f + 0.3 * a)
    want = [core.qp(a.copy(), b.copy(), x) for x in (f, g)]
    monkeypatch.setattr(_memo, "_MEMO", {})
    calls = []
    real = phase.phase_congruency
    monkeypatch.setattr(phase, "phase_congruency", lambda x: calls.append(x) or real(x))
    assert [core.qp(a, b, x) for x in (f, g)] == want
    assert len(calls) == 4
    pc, _, _ = _memo._MEMO[next(iter(_memo._MEMO))]
    with pytest.raises(ValueError, match="read-only"):
        pc[0, 0] = 0.0


def test_memo_keeps_within_its_byte_budget(monkeypatch) -> None:
    """Oldest entries go first once the arrays held would pass the budget; a value above it is not kept."""
    from gifnet.metrics import _memo

    monkeypatch.setattr(_memo, "_MEMO", {})
    monkeypatch.setattr(_memo, "_MEMO_BYTES", 3 * 800)
    xs = [np.full((10, 10), float(i)) for i in range(4)]  # 800 bytes each
    for x in xs:
        assert _memo._memo("t", x, lambda v: v * 2)[0, 0] == 2 * x[0, 0]
    assert [k[3] for k in _memo._MEMO] == [hash(x.tobytes()) for x in xs[1:]]
    big = np.zeros((40, 40))
    assert _memo._memo("t", big, lambda v: v + 1).shape == (40, 40)
    assert len(_memo._MEMO) == 3  # not kept, nothing evicted for it


# ---------------------------------------------------------------- pansharpening


def test_pansharpening_identities() -> None:
    rng = np.random.default_rng(2)
    ms = rng.uniform(20, 200, (64, 64, 4))
    assert pansharpening.sam(ms, ms) == pytest.approx(0.0, abs=1e-6)
    assert pansharpening.ergas(ms, ms) == 0.0
    assert pansharpening.q_index(ms, ms) == pytest.approx(1.0)
    assert pansharpening.q2n(ms, ms) == pytest.approx(1.0)
    assert pansharpening.scc(ms, ms) == pytest.approx(1.0)
    pan = ms.mean(axis=-1)
    assert pansharpening.d_lambda(ms, ms) == 0.0
    assert pansharpening.qnr(ms, ms, pan, ratio=1) == pytest.approx(1.0)
    # a pure scaling keeps all spectral angles
    assert pansharpening.sam(ms, 3 * ms) == pytest.approx(0.0, abs=1e-6)
    noisy = ms + rng.normal(0, 10, ms.shape)
    assert pansharpening.sam(ms, noisy) > 0
    assert pansharpening.ergas(ms, noisy, 4) > 0
    assert pansharpening.q2n(ms, noisy) < 1
    # ERGAS hand value: one band, constant error 5 over mean 50, ratio 4 -> 25 * 0.1
    one = np.full((8, 8), 50.0)
    assert pansharpening.ergas(one, one + 5, 4) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="shape mismatch"):
        pansharpening.sam(ms, ms[:, :10])


def test_pansharpening_reduced_and_full() -> None:
    rng = np.random.default_rng(5)
    ms_hr = rng.uniform(20, 200, (64, 64, 4))
    pan = ms_hr.mean(axis=-1)
    ms_lr = pansharpening.degrade(ms_hr, 4)
    assert ms_lr.shape == (16, 16, 4)
    full = pansharpening.compute_full(ms_hr, ms_lr, pan, ratio=4)
    assert set(full) == {"D_lambda", "D_s", "QNR"}
    assert 0 <= full["D_lambda"] <= 1 and full["QNR"] == pytest.approx((1 - full["D_lambda"]) * (1 - full["D_s"]))
    red = pansharpening.compute_reduced(ms_hr, ms_hr)
    assert red["SAM"] == pytest.approx(0.0, abs=1e-6) and red["Q2n"] == pytest.approx(1.0)


# ---------------------------------------------------------------- registry / API


def test_registry_lists_and_directions() -> None:
    assert set(list_conventions()) >= {"vifb", "tang", "tang_2023", "mefb", "standard"}
    assert len(list_metrics("vifb")) == 13
    assert len(list_metrics("tang")) == 13  # 11 of Metric_TNO.xlsx + the easy=0 Nabf and MS_SSIM
    assert len(list_metrics("mefb")) == 16
    assert METRICS["vifb"]["Qcv"].direction == "lower"
    assert METRICS["vifb"]["Rmse"].higher_is_better is False
    assert METRICS["vifb"]["Cross_entropy"].direction == "lower"
    assert METRICS["vifb"]["Qabf"].direction == "higher"
    assert METRICS["tang"]["MSE"].direction == "lower"
    assert METRICS["standard"]["Nabf"].direction == "lower"
    for table in METRICS.values():
        for name, info in table.items():
            assert info.name == name and info.description


def test_compute_errors_and_shapes() -> None:
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="valid conventions"):
        compute("nope", a, a, a)
    with pytest.raises(ValueError, match="valid metrics"):
        compute("vifb", a, a, a, ["Entropy", "Bogus"])
    with pytest.raises(ValueError, match=r"\(20, 21\)"):
        compute("vifb", a, a, np.zeros((20, 21), np.uint8))
    with pytest.raises(ValueError, match=r"\(20, 21, 3\)"):
        compute("tang", np.zeros((20, 21, 3), np.uint8), a, a)


def test_compute_conventions_run_on_uint8() -> None:
    rng = np.random.default_rng(4)
    vis = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    fused = ((vis.astype(int) + ir[..., None]) // 2).astype(np.uint8)
    v = compute("vifb", vis, ir, fused)
    assert list(v) == list_metrics("vifb") and all(np.isfinite(list(v.values())))
    t = compute("tang", ir, vis, fused, ["EN", "SD"])
    assert set(t) == {"EN", "SD"} and t["SD"] <= math.sqrt(255)
    g = compute("tang_2023", ir, vis, fused, ["SD"])
    assert g["SD"] > t["SD"]
    # VIFB per-channel dispatch equals the mean of the per-channel metric
    en = np.mean([core.entropy(fused[..., k].astype(float)) for k in range(3)])
    assert v["Entropy"] == pytest.approx(en)
    # VIFB Spatial_frequency = SF of the channels laid side by side
    side = np.concatenate([fused[..., k] for k in range(3)], axis=1).astype(float)
    assert v["Spatial_frequency"] == pytest.approx(core.sf(side, "mn"))
    s = compute("standard", ir, vis, fused, ["EN", "PSNR", "Qabf"])
    assert s["EN"] == pytest.approx(core.entropy(rgb2gray(fused)))


def test_tolerance_rule() -> None:
    assert tolerance(1.0) == pytest.approx(1e-4)
    assert tolerance(0.0012345) == pytest.approx(1.2345e-7)
    assert matches(250.0719, 250.0719122) and not matches(250.1, 250.0719122)


def test_read_for_metrics(tmp_path) -> None:
    from PIL import Image

    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    x = read_for_metrics(tmp_path / "x.png")
    g = read_for_metrics(tmp_path / "g.png")
    assert x.dtype == np.uint8 and np.array_equal(x, rgb)
    assert g.shape == (4, 5) and np.array_equal(g, rgb[..., 0])
