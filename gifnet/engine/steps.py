"""One optimisation step of one task, written once for every task (GIFNET.md section 9.2).

A :class:`StepSpec` says which sample members feed slot a / slot b, which CFGM stream is optimised, which
members feed the *other* stream (encoded without gradient, as released), and which loss applies::

    IVIF step (official tag 1): inputs (ir, vis), stream mm, other (near, far), loss ivif
    MFIF step (official tag 2): inputs (near, far), stream dp, other (ir, vis), loss dp → vis
    MEIF step (ours):           inputs (over, under), stream dp, other (ir, vis), loss dp → vis

Slot order of MEIF follows the released inference order (over-exposed in slot a, GIFNET.md section 10).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gifnet.losses import IVIFWeighting, dp_loss, ivif_loss, reconstruction_loss
from gifnet.models import GIFNet

MEMBERS = ("ir", "vis", "near", "far", "under", "over")
LOSSES = ("ivif", "dp")


@dataclass
class StepSpec:
    """What one step of a training iteration does."""

    task: str
    inputs: tuple[str, str]
    stream: str  # "mm" or "dp"
    loss: str  # "ivif" or "dp"
    other: tuple[str, str] | None = None  # members encoded (no grad) for the other stream; None = inputs
    target: str = "vis"  # ground truth of a dp loss
    weight: float = 1.0

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)  # type: ignore[assignment]
        self.other = None if self.other is None else tuple(self.other)  # type: ignore[assignment]
        for m in (*self.inputs, *(self.other or ()), self.target):
            if m not in MEMBERS:
                raise ValueError(f"step {self.task!r}: unknown sample member {m!r}; members are {MEMBERS}")
        if len(self.inputs) != 2 or (self.other is not None and len(self.other) != 2):
            raise ValueError(f"step {self.task!r}: inputs/other must name two members")
        if self.stream not in ("mm", "dp"):
            raise ValueError(f"step {self.task!r}: stream must be 'mm' or 'dp', got {self.stream!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"step {self.task!r}: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "ivif" and set(self.inputs) != {"ir", "vis"}:
            raise ValueError(f"step {self.task!r}: the ivif loss needs inputs (ir, vis)")


def parse_steps(steps: Sequence[Mapping]) -> list[StepSpec]:
    if not steps:
        raise ValueError("task config defines no steps")
    specs = [StepSpec(**dict(s)) for s in steps]
    names = [s.task for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"task config repeats a step name: {names}")
    return specs


@dataclass
class LossConfig:
    rec_weight: float = 1.0
    msssim: str = "official"  # official | standard
    dp_ssim_weight: float = 0.0


def _global_weights(weighting: IVIFWeighting, ir: torch.Tensor, vis: torch.Tensor):
    """IVIF weights from energies averaged over all ranks (identical to one process on the global batch)."""
    if not (dist.is_available() and dist.is_initialized()) or not hasattr(weighting, "energy"):
        return weighting(ir, vis)
    with torch.no_grad():
        e = torch.stack([weighting.energy(ir).reshape(()), weighting.energy(vis).reshape(())]).float()
        dist.all_reduce(e)
        e = e / dist.get_world_size()
        return weighting.weights_from_energies(e[0], e[1])


def _loss_dtype(x: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 at least: bf16/fp16 outputs of autocast are cast up, fp32 and fp64 ones kept."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def compute_step_loss(
    model: GIFNet,
    batch: Mapping[str, torch.Tensor],
    spec: StepSpec,
    loss_cfg: LossConfig,
    weighting: IVIFWeighting | None,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[torch.Tensor | None, dict[str, float], dict[str, torch.Tensor]]:
    """Forward one step; returns (total loss or None if the step has no usable sample, scalars, images)."""
    ctx = autocast or contextlib.nullcontext()
    b = dict(batch)
    if spec.loss == "ivif" and "has_ir" in b:
        keep = b["has_ir"].bool()
        if not keep.all():  # natural-image samples have no real infrared: no IVIF loss on them
            if not keep.any():
                return None, {}, {}
            b = {k: v[keep] for k, v in b.items()}
    a_in, b_in = b[spec.inputs[0]], b[spec.inputs[1]]
    needs_other = model.fusion.dual_stream and model.fusion.gating != "off"
    with ctx:
        f = model.encode(a_in, b_in)
        if needs_other and spec.other is not None and tuple(spec.other) != tuple(spec.inputs):
            with torch.no_grad():
                f_other = model.encode(b[spec.other[0]], b[spec.other[1]])
        else:
            f_other = f.detach()
        if spec.stream == "mm":
            g = model.cfgm(f, f_other, "mm")
        else:
            g = model.cfgm(f_other, f, "dp")
        out = model.decode(f, g)
    out = _loss_dtype(out)
    terms: dict[str, torch.Tensor] = {}
    if spec.loss == "ivif":
        if weighting is None:
            raise ValueError("an ivif step needs an IVIF weighting")
        w_ir, w_vis = _global_weights(weighting, b["ir"], b["vis"])
        terms["fuse"] = ivif_loss(out, b["ir"], b["vis"], w_ir, w_vis)
        terms["w_ir"] = torch.as_tensor(w_ir).detach()
    else:
        terms["fuse"] = dp_loss(out, b[spec.target], ssim_weight=loss_cfg.dp_ssim_weight)
    total = terms["fuse"]
    rec = None
    if model.reconstructor is not None and loss_cfg.rec_weight:
        with ctx:
            rec = model.reconstruct(f)
        terms["rec"] = reconstruction_loss(_loss_dtype(rec), b["vis"], msssim=loss_cfg.msssim)
        total = total + loss_cfg.rec_weight * terms["rec"]
    total = spec.weight * total
    scalars = {f"{spec.task}/{k}": float(v.detach()) for k, v in terms.items()}
    scalars[f"{spec.task}/total"] = float(total.detach())
    images = {"a": a_in[:4].detach(), "b": b_in[:4].detach(), "fused": out[:4].detach()}
    if rec is not None:
        images["rec"] = rec[:4].detach().float().clamp(0, 1)
    return total, scalars, images
