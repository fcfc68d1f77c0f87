"""The released code's computation, ported plainly: the benchmarks' in-project reference and a test oracle.

Not used for training or inference. ``gifnet benchmark mode=train references=[released]`` times the released
training step (:func:`released_iteration`) beside gifnet's in the same invocation, ``mode=fuse`` (path
``straightforward``) the released test script's model call (:func:`released_fuse`) and ``mode=process`` a whole
fusion process built like the released test script (``python -m gifnet.reference``) beside ``gifnet fuse``
(issue 16). The tests use it as an independent oracle: from the same weights and batch it gives gifnet's losses and
gradients up to round-off, and with the released checkpoint the parity fixtures' outputs (``tests/test_reference.py``).

Written from ``../shared/reference/GIFNET.md`` (sections 3 and 9) and the released code's order of operations, on
gifnet's own modules (the same parameters, so the same state dict). What it does that gifnet's step does not:

* both CFGM streams run through every block, the discarded stream's last block included (quirk 4);
* the attention operands are ``cat(QK, V)`` (294 channels), padded and cut into windows with one token copy, then
  split per head by a reshape/permute view; the attention is explicit (``(q·scale) @ kᵀ + bias``, softmax,
  ``@ v``) and its output is copied back twice (heads merged, windows merged);
* the RLN statistics terms are the 1×1 convolutions of the ``B×1×1×1`` statistics; the depthwise branch is the
  plain convolution module;
* no-grad regions exactly where the released code has them (GIFNET.md 3.7), the tag-1 DWConv input quirk included.

The caller chooses the rest of what a port of the released code would do: NCHW tensors (a model not converted to
channels-last), glibc's default allocator, the literal C×C DenseNet kernel, fp32. The loss terms are gifnet's
functions (tested against the released values on their own), not a port of the released MS-SSIM code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from gifnet.models import GIFNet
from gifnet.models.cfgm import CFGM, CFGMBlock, other_stream

#: Model switches the reference reproduces (the released network's semantics, GIFNET.md section 3).
RELEASED_SEMANTICS = {
    "dual_stream": True, "gating": "learned", "cross_attention": True, "stop_gradient": True,
    "official_dwconv_quirk": True, "reconstruction": True,
}  # fmt: skip


def check_released_semantics(model: GIFNet) -> None:
    """Refuse a model the reference does not describe (an ablation switch away from the released network)."""
    cfg = model.config.to_dict()
    wrong = {k: cfg[k] for k, v in RELEASED_SEMANTICS.items() if cfg[k] != v}
    if wrong:
        raise ValueError(f"the released-step reference needs the released model semantics {RELEASED_SEMANTICS}; "
                         f"this model has {wrong}")


def _rln(norm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = torch.mean(x, dim=(1, 2, 3), keepdim=True)
    std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + norm.eps)
    return (x - mean) / std * norm.weight + norm.bias, norm.meta1(std), norm.meta2(mean)


def _window_pad(x: torch.Tensor, window: int, shift: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (window - h % window) % window, (window - w % window) % window
    if shift:
        pad = (shift, (window - shift + pw) % window, shift, (window - shift + ph) % window)
    else:
        pad = (0, pw, 0, ph)
    return F.pad(x, pad, mode="reflect")


def _to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``B×C×H×W`` → ``(B·nW)×window²×C`` tokens (one copy)."""
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window * window, c)


def _from_windows(t: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows` into an NHWC ``B×H×W×C`` tensor (one copy)."""
    t = t.view(b, h // window, w // window, window, window, -1)
    return t.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def _qkv_windows(qk: torch.Tensor, v: torch.Tensor, window: int, shift: int, heads: int):
    """``cat(QK, V)`` padded and cut into windows, viewed as per-head Q, K, V; also the padded size."""
    qkv = _window_pad(torch.cat([qk, v], dim=1), window, shift)
    t = _to_windows(qkv, window)
    dim = v.shape[1]
    return t.reshape(t.shape[0], t.shape[1], 3, heads, dim // heads).permute(2, 0, 3, 1, 4), qkv.shape[-2:]


def _merge_windows(out: torch.Tensor, window: int, b: int, hp: int, wp: int, shift: int, h: int, w: int):
    """Attention output windows back to the image, cropped to ``h×w``, as an NCHW view."""
    full = _from_windows(out, window, b, hp, wp)
    return full[:, shift : shift + h, shift : shift + w, :].permute(0, 3, 1, 2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dim: int) -> torch.Tensor:
    attn = torch.softmax(q @ k.transpose(-2, -1) + bias.unsqueeze(0), dim=-1)
    return (attn @ v).transpose(1, 2).reshape(q.shape[0], q.shape[2], dim)


def _attention(block: CFGMBlock, active: str, xn_a: torch.Tensor, xn_o: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Attention + DWConv branch of both streams of ``block`` (active with gradient, the other without)."""
    other = other_stream(active)
    pa, po = block.streams[active], block.streams[other]
    ws, heads, dim, shift = block.window, block.heads, block.dim, block.shift
    b, _, h, w = xn_a.shape
    v_a, qk_a = pa.v(xn_a), pa.qk(xn_a)
    with torch.no_grad():
        v_o, qk_o = po.v(xn_o), po.qk(xn_o)
    (q_a, k_a, vv_a), (hp, wp) = _qkv_windows(qk_a, v_a, ws, shift, heads)
    with torch.no_grad():
        (q_o, k_o, vv_o), _ = _qkv_windows(qk_o, v_o, ws, shift, heads)
    scale = (dim // heads) ** -0.5
    bias = block.rel_pos()
    q_a = q_a * scale
    out_a = _merge_windows(_attend(q_a, k_a, vv_a, bias, dim), ws, b, hp, wp, shift, h, w)
    with torch.no_grad():
        q_o = q_o * scale
        out_o = _attend(q_a if shift == 0 else q_o, k_o, vv_o, bias, dim)  # cross-attention in unshifted blocks
        out_o = _merge_windows(out_o, ws, b, hp, wp, shift, h, w)
    conv_a = pa.dwconv(v_a)
    with torch.no_grad():
        conv_o = po.dwconv(v_a if active == "mm" else v_o)  # the released tag-1 quirk reads the active V
        y_o = po.proj(conv_o + out_o)
    return pa.proj(conv_a + out_a), y_o


def released_cfgm(cfgm: CFGM, f_mm: torch.Tensor, f_dp: torch.Tensor, step: str) -> torch.Tensor:
    """The CFGM as the released code computes it (``step`` ``"mm"`` = tag 1, ``"dp"`` = tag 2)."""
    active, other = step, other_stream(step)  # other_stream validates the name
    h, w = f_mm.shape[-2:]
    ph, pw = (4 - h % 4) % 4, (4 - w % 4) % 4
    xs = {s: cfgm.embed[s](F.pad(f, (0, pw, 0, ph), mode="reflect")) for s, f in (("mm", f_mm), ("dp", f_dp))}
    x, y = xs[active], xs[other]
    for k, block in enumerate(cfgm.blocks):
        pa, po = block.streams[active], block.streams[other]
        xn, g_a, b_a = _rln(pa.norm, x)
        yn, g_o, b_o = _rln(po.norm, y)
        att_a, att_o = _attention(block, active, xn, yn)
        x = x + (att_a * g_a + b_a)
        y = y + (att_o * g_o + b_o)
        x = x + pa.mlp(x)
        y = y + po.mlp(y)  # computed in every block, also where nothing reads it any more
        if k % 2 == 0:
            x = x + cfgm.alpha[active][k] * y
    return cfgm.unembed(x)[:, :, :h, :w]


def released_step_loss(
    model: GIFNet, batch: Mapping[str, torch.Tensor], spec, msssim: str = "official", weighting=None
) -> tuple[torch.Tensor, dict[str, float]]:
    """One step (:class:`gifnet.engine.steps.StepSpec`) in the released order of GIFNET.md 9.2: encoder, the
    other pair's encoder without gradient, R-Dec, CFGM, G-Dec, the IVIF weights, the loss."""
    from gifnet.losses import dp_loss, ivif_loss, reconstruction_loss

    f = model.encode(batch[spec.inputs[0]], batch[spec.inputs[1]])
    pair = spec.other or spec.inputs
    with torch.no_grad():
        f_other = model.encode(batch[pair[0]], batch[pair[1]])
    rec = model.reconstruct(f)
    fused = released_cfgm(model.fusion, f, f_other, "mm") if spec.stream == "mm" else (
        released_cfgm(model.fusion, f_other, f, "dp"))
    out = model.decode(f, fused)
    if spec.loss == "ivif":
        w_ir, w_vis = weighting(batch["ir"], batch["vis"])
        fuse = ivif_loss(out, batch["ir"], batch["vis"], w_ir, w_vis)
    else:
        fuse = dp_loss(out, batch[spec.target])
    total = spec.weight * (fuse + reconstruction_loss(rec, batch["vis"], msssim=msssim))
    return total, {f"{spec.task}/total": float(total.detach())}


def released_iteration(
    model: GIFNet, optimizer: torch.optim.Optimizer, steps: Sequence, batch: Mapping[str, torch.Tensor],
    msssim: str = "official", weighting=None,
) -> dict[str, float]:
    """Every step of the protocol on one batch, one optimiser step each, as the released loop does."""
    check_released_semantics(model)
    scalars: dict[str, float] = {}
    for spec in steps:
        optimizer.zero_grad()
        loss, sc = released_step_loss(model, batch, spec, msssim, weighting)
        loss.backward()
        optimizer.step()
        scalars.update(sc)
    return scalars


def released_fuse(model: GIFNet, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The released test script's model call: under ``no_grad``, S-Enc, the CFGM with tag 2 (both streams through
    every block) and G-Dec; no R-Dec. Fused luma ``B×1×H×W`` in (0, 1)."""
    with torch.no_grad():
        f = model.encode(a, b)
        return model.decode(f, released_cfgm(model.fusion, f, f, "dp"))


def fuse_process(a_path: str, b_path: str, checkpoint: str, out: str) -> None:
    """A whole fusion process built like the released test script, for one gray pair: the released checkpoint read
    with ``torch.load`` into the model, both images read as 8-bit gray, :func:`released_fuse` in NCHW with glibc's
    allocator, the output truncated to 8 bits and written. (The released script also imports OpenCV, matplotlib
    and timm, which this process does not: its start-up is, if anything, shorter than the released one.)"""
    import numpy as np
    from PIL import Image

    from gifnet.models.convert import load_official

    model = load_official(checkpoint)
    a, b = (torch.from_numpy(np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255)[None, None]
            for p in (a_path, b_path))  # fmt: skip
    y = released_fuse(model, a, b)[0, 0].numpy() * 255
    Image.fromarray(y.astype(np.uint8)).save(out)


if __name__ == "__main__":  # python -m gifnet.reference A B CHECKPOINT OUT (gifnet benchmark mode=process)
    fuse_process(*sys.argv[1:5])
