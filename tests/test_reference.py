"""The released-step reference (gifnet/reference.py) against gifnet's step and the released outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gifnet.engine.steps import LossConfig, compute_step_loss, parse_steps
from gifnet.losses import FixedWeighting
from gifnet.models import GIFNet
from gifnet.models.convert import load_official
from gifnet.reference import check_released_semantics, released_cfgm, released_iteration, released_step_loss

STEPS = parse_steps([
    {"task": "ivif", "inputs": ["ir", "vis"], "stream": "mm", "loss": "ivif", "other": ["near", "far"]},
    {"task": "mfif", "inputs": ["near", "far"], "stream": "dp", "loss": "dp", "other": ["ir", "vis"]},
    {"task": "meif", "inputs": ["over", "under"], "stream": "dp", "loss": "dp", "other": ["ir", "vis"]},
])  # fmt: skip


def _model(seed: int = 0) -> GIFNet:
    torch.manual_seed(seed)
    m = GIFNet()
    with torch.no_grad():  # the released α are U[0, 1); make both directions clearly non-zero
        for a in m.fusion.alpha.values():
            a.uniform_(0.3, 0.9)
    return m


def _batch(h: int = 21, w: int = 26, n: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 1, h, w, generator=g) for k in ("ir", "vis", "near", "far", "over", "under")}


@pytest.mark.parametrize("step", ["mm", "dp"])
@pytest.mark.parametrize("hw", [(16, 16), (13, 21)])  # window multiple; neither side a multiple of 4 or 8
def test_released_cfgm_equals_gifnet_cfgm(step, hw):
    m = _model()
    g = torch.Generator().manual_seed(2)
    f_mm, f_dp = (torch.randn(2, 98, *hw, generator=g) for _ in range(2))
    with torch.no_grad():
        ours = m.cfgm(f_mm, f_dp, step)
        ref = released_cfgm(m.fusion, f_mm, f_dp, step)
    assert ref.shape == ours.shape == f_mm.shape
    assert torch.allclose(ref, ours, rtol=1e-4, atol=1e-5), (ref - ours).abs().max()
    # the streams really differ (a reference that mixed them up could not pass)
    assert (m.cfgm(f_mm, f_dp, "dp" if step == "mm" else "mm") - ours).abs().max() > 1e-2


@pytest.mark.parametrize("spec", STEPS, ids=[s.task for s in STEPS])
def test_released_step_has_gifnet_losses_and_gradients(spec):
    """Same weights, same batch, float64: the reference's loss and every parameter's gradient equal gifnet's
    (channels-last, discarded outputs skipped, split Q/K, fused attention); the same parameters get none."""
    ref_model = _model().double()
    ours = copy.deepcopy(ref_model).to_channels_last()
    batch = {k: v.double() for k, v in _batch().items()}
    weighting = FixedWeighting(0.7, 0.3)
    loss_ref, sc = released_step_loss(ref_model, batch, spec, weighting=weighting)
    loss_ours, sc_ours, _ = compute_step_loss(ours, batch, spec, LossConfig(), weighting)
    assert loss_ref.dtype == loss_ours.dtype == torch.float64
    assert sc == {f"{spec.task}/total": pytest.approx(sc_ours[f"{spec.task}/total"], rel=1e-12)}
    loss_ref.backward()
    loss_ours.backward()
    params_ours = dict(ours.named_parameters())
    with_grad = 0
    for name, p in ref_model.named_parameters():
        q = params_ours[name]
        assert (p.grad is None) == (q.grad is None), name
        if name.endswith("rel_pos.mlp.2.bias"):  # a per-head constant added to the logits: zero gradient in exact
            assert max(p.grad.abs().max(), q.grad.abs().max()) < 1e-15  # arithmetic (softmax is shift-invariant)
        elif p.grad is not None:
            with_grad += 1
            err = ((p.grad - q.grad).norm() / q.grad.norm()).item()
            assert err <= 1e-10, (name, err)  # measured <= 5e-14
    # the partial stop-gradient: the other stream's attention weights get none, its MLP (block 0) does
    other = "dp" if spec.stream == "mm" else "mm"
    assert params_ours[f"fusion.blocks.0.streams.{other}.qk.weight"].grad is None
    assert params_ours[f"fusion.blocks.0.streams.{other}.mlp.0.weight"].grad is not None
    assert with_grad > 60


def test_released_iteration_steps_the_optimiser_once_per_step():
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    sc = released_iteration(m, opt, STEPS[:2], _batch(), weighting=FixedWeighting())
    assert set(sc) == {"ivif/total", "mfif/total"} and all(np.isfinite(v) for v in sc.values())
    assert opt.state[m.encoder.convs[0].weight]["step"] == 2  # gradient in both steps
    assert opt.state[m.fusion.alpha["mm"]]["step"] == opt.state[m.fusion.alpha["dp"]]["step"] == 1  # one each
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])]
    assert "fusion.blocks.0.streams.dp.qk.weight" in changed and "encoder.convs.0.weight" in changed


def test_reference_refuses_ablated_models():
    with pytest.raises(ValueError, match="gating"):
        check_released_semantics(GIFNet(gating="off"))
    with pytest.raises(ValueError, match="released model semantics"):
        released_iteration(GIFNet(official_dwconv_quirk=False), None, STEPS, _batch())
    with pytest.raises(ValueError, match="unknown stream"):
        released_cfgm(GIFNet().fusion, torch.zeros(1, 98, 8, 8), torch.zeros(1, 98, 8, 8), "ivif")


@pytest.mark.parametrize("case", ["ivif", "nirvis"])
def test_released_cfgm_reproduces_the_parity_fixtures(shared, case):
    d = np.load(shared / "official" / "parity" / f"{case}.npz")
    m = load_official(shared / "official" / "Final.model")
    a, b = (torch.from_numpy(d[k].astype(np.float32) / 255)[None, None] for k in ("a", "b"))
    with torch.no_grad():
        f = m.encode(a, b)
        fused = m.decode(f, released_cfgm(m.fusion, f, f, "dp"))[0, 0].numpy()
        fused_tag1 = m.decode(f, released_cfgm(m.fusion, f, f, "mm"))[0, 0].numpy()
    assert np.abs(fused - d["fused"]).max() <= 1e-5
    assert np.abs(fused_tag1 - d["fused_tag1"]).max() <= 1e-5
