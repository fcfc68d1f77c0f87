"""Band-wise exact inference for GIFNet: bounded memory, cache-sized matrix products, no autograd.

:func:`banded_fuse` returns what ``GIFNet.forward`` returns (within float round-off) while

* holding at most three full-resolution feature maps at a time (the block inputs/outputs; everything else lives
  in bands of a few rows), so peak memory is ~3 × 98 floats per pixel instead of the dozens of maps a full
  forward allocates;
* running every product on bands small enough for the CPU caches (1×1 convolutions as matrix products on
  ``pixels × channels`` NHWC matrices, window attention as batched products of ≤ a few hundred windows);
* folding the per-sample RLN normalisation into the QK/V weights and the RLN rescale (γ, β) into the
  attention projection, so the normalised map is never materialised;
* computing only what the returned stream needs (the other stream's query, and its blocks after the last
  mixing block, are skipped).

Why band-wise is exact: every operation of the network is either pointwise (1×1 convs, MLP, gating), local
(3×3 / 5×5 convs, 8×8 window attention) or a per-sample global statistic (RLN's mean and standard deviation
over C×H×W). The engine therefore runs one pass over the image per CFGM block: the pass computes its block's
output band by band (with the exact halo rows and the reflect padding the full-frame code applies at the map
borders) into one full-resolution buffer while accumulating the buffer's sum and sum of squares in float64,
which give the next block's RLN statistics. The S-Enc features are recomputed in the last pass instead of
being kept (they are ~4 % of the cost). Written by hand because no library offers tiled execution with
global-statistics normalisation.

Precision ``bf16`` runs the convolutions and matrix products in bfloat16 (AMX on recent x86 CPUs, tensor
cores on CUDA) while the residual stream, the RLN statistics, the attention logits and softmax, the final
decoder convolution and the operations named in ``BF16_FP32_PARTS`` stay in float32 (docs/inference.md).
bfloat16 only ever rounds centred quantities: product inputs are centred on per-channel means and every
bias or offset is carried in float32 outside the products (``_folded``).
"""

from __future__ import annotations

import mmap
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ..devices import check_precision
from ..models.cfgm import CFGM, CFGMBlock, other_stream
from ..runtime import keeps_freed_memory


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Map indices of a reflect-padded axis (``F.pad(mode="reflect")`` semantics, one bounce) into ``[0, n)``."""
    idx = idx.abs()
    return torch.where(idx >= n, 2 * (n - 1) - idx, idx)


_CHUNK = 4096  # rows of the NHWC matrices per matrix product: small enough for the caches


def _centred(x: torch.Tensor, c: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``x - c`` cast to ``dtype`` (``c``: per-channel centre or None; subtracted before any rounding)."""
    if c is None:
        return x.to(dtype)
    return torch.sub(x, c, out=torch.empty(x.shape, dtype=dtype, device=x.device))


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w``, computed in cache-sized row chunks (1.5-2× the GFLOP/s of one big product)."""
    out = torch.empty(x.shape[0], w.shape[1], dtype=x.dtype, device=x.device)
    for i in range(0, x.shape[0], _CHUNK):
        torch.mm(x[i : i + _CHUNK], w, out=out[i : i + _CHUNK])
    return out


def _acc(y: torch.Tensor, a: torch.Tensor, w: torch.Tensor) -> None:
    """``y += a @ w`` (in place; ``y`` may be float32 while ``a``, ``w`` are bfloat16)."""
    if y.dtype == a.dtype:
        y.addmm_(a, w)
    else:
        y += torch.mm(a, w)


class _BufferPool:
    """Full-resolution float32 feature buffers on CPU, each its own anonymous memory map outside ``malloc``'s heap.

    From the heap (with ``gifnet.runtime.keep_freed_memory()``, which the entry points set) a second
    3840×2160 bf16 call peaked at 13-20 GB instead of the first call's 10.4 GB, because small temporaries
    split the holes the previous call's buffers left; a 1280×1024 fp32 call settled at 3.1 GB instead of
    2.3 GB. Mapped buffers cannot fragment the heap. Freed buffers are reused by the next pass; between calls
    they are kept only in processes that keep freed memory anyway (``keep_freed_memory()``: the entry points),
    so that a folder of equal-sized pairs maps them once; a call of another size, or :func:`release_buffers`,
    unmaps them. Library calls in other processes unmap them when they return.
    """

    def __init__(self):
        self.shape: tuple[int, int] | None = None
        self.free: list[torch.Tensor] = []

    def take(self, rows: int, cols: int, device: torch.device) -> torch.Tensor:
        if device.type != "cpu":
            return torch.empty(rows, cols, device=device)
        if self.shape != (rows, cols):
            self.shape, self.free = (rows, cols), []
        if self.free:
            return self.free.pop()
        return torch.frombuffer(mmap.mmap(-1, rows * cols * 4), dtype=torch.float32).view(rows, cols)

    def give(self, *bufs: torch.Tensor) -> None:
        self.free += [t for t in bufs if t.device.type == "cpu" and tuple(t.shape) == self.shape]


_POOL = _BufferPool()


def release_buffers() -> None:
    """Unmap the full-resolution buffers :func:`banded_fuse` keeps between calls of the same image size."""
    _POOL.shape, _POOL.free = None, []


def _rows_cover(rows: torch.Tensor) -> tuple[int, int]:
    return int(rows.min()), int(rows.max()) + 1


class _Stats:
    """Running per-channel sums and total sum of squares of a feature map: the next RLN's mean and standard
    deviation, and the per-channel means that centre low-precision products.

    Values are shifted by the first chunk's mean before squaring (no cancellation in ``E[x²] - E[x]²``);
    each chunk is summed per channel (torch's cascade summation in float32) and the chunk sums are accumulated
    in float64. Every sum reduces over the rows of each channel first and never over a whole chunk at once:
    torch splits a full reduction (``mean()``, ``dot``) among its threads, so its round-off, and through the RLN
    statistics the fused image, would depend on the thread count (with a ``dot`` here, 3 pixels of TNO_01
    differed by one grey level between 1 and 2 threads); a per-channel reduction is split by channels, each
    summed in the same order whatever the thread count.
    """

    def __init__(self, device):
        self.sc = None  # per-channel sums of (x - shift)
        self.ss = torch.zeros((), dtype=torch.float64, device=device)
        self.shift = None
        self.pixels = 0

    def add(self, x: torch.Tensor) -> None:
        if self.shift is None:
            first = x[:_CHUNK]
            self.shift = (first.sum(0, dtype=torch.float64).sum() / first.numel()).to(x.dtype)
            self.sc = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        for i in range(0, x.shape[0], _CHUNK):
            d = x[i : i + _CHUNK] - self.shift
            self.sc += d.sum(0)
            self.ss += d.square_().sum(0).sum(dtype=torch.float64)
        self.pixels += x.shape[0]

    def mean_std(self, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.pixels * len(self.sc)
        m = self.sc.sum() / n
        var = (self.ss / n - m * m).clamp_min(0)
        return (m + self.shift).float(), torch.sqrt(var + eps).float()

    def channel_means(self) -> torch.Tensor:
        return (self.sc / self.pixels + self.shift).float()


#: operations kept in float32 under ``precision="bf16"`` (measured on the parity fixtures, see the README)
BF16_FP32_PARTS = ("embed", "unembed", "mix", "dec")
PARTS = ("embed", "qkv", "attn", "dw", "proj", "mlp", "unembed", "mix", "dec")


class _Engine:
    def __init__(self, model, step: str, precision: str, band_pixels: int, fp32_parts=()):
        self.m = model
        self.cfgm: CFGM = model.fusion
        self.active = self.cfgm._stream(step)
        self.cdt = torch.bfloat16 if precision == "bf16" else torch.float32
        self.fp32_parts = set(fp32_parts)
        self.band_pixels = band_pixels

    def dt(self, part: str) -> torch.dtype:
        """Compute dtype of one kind of operation (``precision``, unless ``part`` is kept in float32)."""
        return torch.float32 if part in self.fp32_parts else self.cdt

    # -- small helpers --------------------------------------------------------------------------------------
    def _conv(self, x4: torch.Tensor, conv: torch.nn.Conv2d, top: bool, bottom: bool, dtype: torch.dtype):
        """3×3 reflect conv of a row band; pads vertically only at map borders (``top``/``bottom``)."""
        p = conv.padding[0]
        x4 = F.pad(x4.to(dtype), (p, p, p if top else 0, p if bottom else 0), mode="reflect")
        return F.conv2d(x4, conv.weight.to(dtype), conv.bias.to(dtype) if conv.bias is not None else None)

    @staticmethod
    def _cl(x2: torch.Tensor, rows: int, w: int) -> torch.Tensor:
        """``(rows·w)×C`` NHWC matrix → ``1×C×rows×w`` channels-last view."""
        return x2.view(1, rows, w, x2.shape[1]).permute(0, 3, 1, 2)

    @staticmethod
    def _mat(x4: torch.Tensor) -> torch.Tensor:
        """``1×C×h×w`` → ``(h·w)×C`` (a view when ``x4`` is channels-last)."""
        return x4.permute(0, 2, 3, 1).reshape(-1, x4.shape[1])

    def _bands(self, n: int, w: int, align: int = 1, offset: int = 0) -> list[tuple[int, int]]:
        """Split ``[0, n)`` into bands whose inner edges ``e`` satisfy ``(e + offset) % align == 0``."""
        rows = max(align, (self.band_pixels // max(w, 1)) // align * align)
        edges = [0]
        e = rows - offset % align if offset % align else rows
        while e < n:
            edges.append(e)
            e += rows
        edges.append(n)
        if len(edges) > 2 and edges[-1] - edges[-2] < 8:
            edges.pop(-2)  # avoid a sliver band at the bottom
        return list(zip(edges[:-1], edges[1:]))

    # -- S-Enc on a row range ---------------------------------------------------------------------------------
    def _encode_rows(self, x0: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """S-Enc features of image rows ``[lo, hi)`` as a ``1×98×(hi-lo)×W`` channels-last tensor (float32)."""
        h = x0.shape[2]
        n = len(self.m.encoder.convs)
        c_lo, c_hi = max(0, lo - n), min(h, hi + n)
        x = x0[:, :, c_lo:c_hi]
        for conv in self.m.encoder.convs:
            top, bottom = c_lo == 0, c_hi == h
            y = F.relu_(self._conv(x, conv, top, bottom, dtype=torch.float32))
            d0 = 0 if top else 1
            c_lo, c_hi = c_lo + d0, c_hi - (0 if bottom else 1)
            x = torch.cat((x[:, :, d0 : d0 + (c_hi - c_lo)], y), 1)
        return x[:, :, lo - c_lo : hi - c_lo].contiguous(memory_format=torch.channels_last)

    # -- CFGM pieces ------------------------------------------------------------------------------------------
    def _folded(self, block: CFGMBlock, stream: str, mean, std, centre):
        """Per-sample weights of one stream of ``block``, with RLN folded in.

        Returns the product weights (``q`` scaled by 1/√d, ``k``, ``v``, ``proj`` with γ folded in, ``dw``,
        ``mlp``) in their compute dtype and every additive constant in float32, outside the products:

        * the Q bias is added to the float32 queries; the K bias is dropped (it shifts each logit row by a
          constant, which the softmax ignores);
        * the V bias passes through attention unchanged (softmax rows sum to one) and through the depthwise
          conv as ``b_v · Σw``; both, with the conv bias, are folded into the projection bias (``_proj_bias``);
        * low-precision products take their input centred on ``centre`` (the block input's per-channel means;
          the biases absorb it): the residual stream's channels sit 2-3 standard deviations off zero, so
          rounding ``x - centre`` instead of ``x`` to bfloat16 loses several times less.

        So bfloat16 rounds only zero-centred quantities; the model's offsets stay exact.
        """
        p = block.streams[stream]
        dim = block.dim
        scale = p.norm.weight.view(dim) / std
        shift = p.norm.bias.view(dim) - mean * scale
        gamma = p.norm.meta1.weight.view(dim) * std + p.norm.meta1.bias
        beta = p.norm.meta2.weight.view(dim) * mean + p.norm.meta2.bias
        qkv_dt, mlp_dt = self.dt("qkv"), self.dt("mlp")
        cq = centre if self.cdt != torch.float32 else None
        if cq is not None:
            shift = shift + cq * scale

        def fold(conv):
            wt = conv.weight.view(conv.out_channels, dim).t()  # in × out
            return wt * scale[:, None], conv.bias + shift @ wt

        wqk, bqk = fold(p.qk)
        wv, bv = fold(p.v)
        w1, b1, w2 = p.mlp[0].weight.view(-1, dim).t(), p.mlp[0].bias, p.mlp[2].weight.view(dim, -1).t()
        wp = p.proj.weight.view(dim, dim).t() * gamma[None, :]
        sq = block.head_dim**-0.5
        wqk[:, :dim] *= sq
        return {
            "qk": wqk.to(qkv_dt),
            "bq": bqk[:dim] * sq,
            "k": wqk[:, dim:].to(qkv_dt),
            "v": wv.to(qkv_dt),
            "bv": bv,
            "proj": wp.to(self.dt("proj")),
            "proj32": (wp, p.proj.bias * gamma + beta),
            "dw": p.dwconv.weight.to(self.dt("dw")),
            "dw_bias": (p.dwconv.weight.sum((1, 2, 3)), p.dwconv.bias),
            "mlp": (w1.to(mlp_dt), w2.to(mlp_dt), p.mlp[2].bias),
            "mlp32": (w1, b1),
            "centre": cq,
        }

    @staticmethod
    def _proj_bias(f, bv_dw: torch.Tensor) -> torch.Tensor:
        """Projection bias absorbing the V bias (attention path, ``f``'s own) and the depthwise conv's constants
        (``bv_dw``: the V bias of the stream the conv reads)."""
        dw_sum, dw_b = f["dw_bias"]
        wp, bp = f["proj32"]
        return torch.addmv(bp, wp.t(), f["bv"] + dw_sum * bv_dw + dw_b)

    def _window_index(self, block: CFGMBlock, r0: int, r1: int, hc: int, wc: int):
        """Gather / scatter indices of one band's attention windows (reflect padding and shift folded in)."""
        ws, s = block.window, block.shift
        p0 = (r0 + s) // ws * ws
        p1 = -(-(r1 + s) // ws) * ws
        wp = wc + s + (s + (-wc) % ws) % ws
        dev = self.dev
        prow = torch.arange(p0, p1, device=dev)
        pcol = torch.arange(0, wp, device=dev)
        srow = _reflect(prow - s, hc)
        scol = _reflect(pcol - s, wc)
        nwr, nwc = (p1 - p0) // ws, wp // ws
        # token order: window row, window col, row in window, col in window
        tr = srow.view(nwr, 1, ws, 1).expand(nwr, nwc, ws, ws)
        tc = scol.view(1, nwc, 1, ws).expand(nwr, nwc, ws, ws)
        # output pixels r ∈ [r0, r1), c ∈ [0, wc) → token position
        orow = torch.arange(r0, r1, device=dev) + s - p0
        ocol = torch.arange(0, wc, device=dev) + s
        tok = (
            ((orow // ws)[:, None] * nwc + (ocol // ws)[None, :]) * (ws * ws)
            + ((orow % ws)[:, None] * ws + (ocol % ws)[None, :])
        ).reshape(-1)
        return tr.reshape(-1), tc.reshape(-1), tok, nwr * nwc

    def _attend(self, q, k, v, bias, heads: int, n_win: int) -> torch.Tensor:
        """Attention of gathered window tokens (``(n_win·N)×C`` each); returns the same layout (float32)."""
        c = q.shape[1]
        hd = c // heads
        n_tok = q.shape[0] // n_win
        dt = self.dt("attn")
        # logits always in float32: a bf16 logit of magnitude ~10 is off by ~0.04, i.e. ~4 % in the softmax
        q3, k3 = (t.float().reshape(n_win, n_tok, c) for t in (q, k))
        v3 = v.to(dt).view(n_win, n_tok, c)
        out = torch.empty(n_win, n_tok, c, dtype=torch.float32, device=q.device)
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            logits = torch.bmm(q3[:, :, sl], k3[:, :, sl].transpose(1, 2))
            logits += bias[h]
            torch.softmax(logits, -1, out=logits)
            out[:, :, sl] = torch.bmm(logits.to(dt), v3[:, :, sl])
        return out.view(-1, c)

    def _block_band(self, block, k, bufs, folded, bias, r0, r1, hc, wc, mixing, need_other_out, out):
        """Outputs of block ``k`` for rows ``[r0, r1)`` of the active (and, if needed, the other) stream."""
        act, oth = self.active, other_stream(self.active) if mixing else None
        tr, tc, tok, n_win = self._window_index(block, r0, r1, hc, wc)
        pad = block.streams[act].dwconv.padding[0]
        dw_rows = _reflect(torch.arange(r0 - pad, r1 + pad, device=self.dev), hc)
        dw_cols = _reflect(torch.arange(-pad, wc + pad, device=self.dev), wc)
        lo, hi = _rows_cover(torch.cat((tr, dw_rows)))
        att_idx = (tr - lo) * wc + tc
        dw_idx = ((dw_rows - lo)[:, None] * wc + dw_cols[None, :]).reshape(-1)

        def qkv(stream, need_q):
            """Bias-free V and K (see ``_folded``) in the compute dtype, Q in float32."""
            f = folded[stream]
            x = _centred(bufs[stream][lo * wc : hi * wc], f["centre"], self.dt("qkv"))
            v = _linear(x, f["v"])
            xa = x.index_select(0, att_idx)
            if not need_q:
                return None, _linear(xa, f["k"]), v
            qk = _linear(xa, f["qk"])
            return qk[:, : block.dim].float().add_(f["bq"]), qk[:, block.dim :], v

        def finish(stream, q, kk, v, dw_src, bv_dw, y):
            f = folded[stream]
            att = self._attend(q, kk, v.index_select(0, att_idx), bias, block.heads, n_win)
            dw_in = self._cl(dw_src.index_select(0, dw_idx).to(self.dt("dw")), r1 - r0 + 2 * pad, wc + 2 * pad)
            d = self._mat(F.conv2d(dw_in, f["dw"], None, groups=block.dim))
            x = bufs[stream][r0 * wc : r1 * wc]
            y = torch.empty_like(x) if y is None else y
            att = att.index_select(0, tok)
            pb = self._proj_bias(f, bv_dw)
            w1, w2, b2 = f["mlp"]
            # MLP input centre: the block input's channel means plus the projection's constant
            cm = None if f["centre"] is None else f["centre"] + pb
            b1 = torch.addmv(f["mlp32"][1], f["mlp32"][0].t(), cm) if cm is not None else f["mlp32"][1]
            b1 = b1.to(self.dt("mlp"))
            for i in range(0, len(x), _CHUNK):  # pointwise tail, one cache-sized chunk at a time
                sl = slice(i, i + _CHUNK)
                dc = torch.add(att[sl], d[sl], out=torch.empty_like(att[sl], dtype=self.dt("proj")))
                yc = y[sl]
                torch.add(x[sl], pb, out=yc)
                _acc(yc, dc, f["proj"])
                hmid = torch.addmm(b1, _centred(yc, cm, self.dt("mlp")), w1).relu_()
                _acc(yc, hmid, w2)
                yc += b2
            return y

        q_a, k_a, v_a = qkv(act, True)
        y_a = finish(act, q_a, k_a, v_a, v_a, folded[act]["bv"], out.get(act))
        if oth is None:
            return y_a, None
        cross = k % 2 == 0 and self.cfgm.cross_attention
        q_o, k_o, v_o = qkv(oth, not cross)
        if cross:
            q_o = q_a
        src = act if (self.cfgm.official_dwconv_quirk and act == "mm") else oth
        dw_src = v_a if src == act else v_o
        y_o = finish(oth, q_o, k_o, v_o, dw_src, folded[src]["bv"], out.get(oth))
        if k % 2 == 0:
            y_a.add_(y_o, alpha=float(self.cfgm.gate(act, k)))
        return y_a, (y_o if need_other_out else None)

    # -- the passes -----------------------------------------------------------------------------------------
    def run(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.dev = a.device
        m, cfgm = self.m, self.cfgm
        h, w = a.shape[-2:]
        x0 = torch.cat((a, b), 1).float().contiguous(memory_format=torch.channels_last)
        hc, wc = h + (-h) % 4, w + (-w) % 4
        act = self.active
        oth = other_stream(act) if cfgm.dual_stream else None
        mixing = cfgm._mixing_blocks()
        last_mix = mixing[-1] if mixing else -1
        needs_other = oth is not None and cfgm.gating != "off"
        dim = cfgm.dim

        # pass 0: S-Enc + patch embedding of the streams still needed
        streams = [act] + ([oth] if needs_other and last_mix >= 0 else [])
        bufs = {s: _POOL.take(hc * wc, dim, self.dev) for s in streams}
        stats = {s: _Stats(self.dev) for s in streams}
        for r0, r1 in self._bands(hc, wc):
            p_lo, p_hi = max(0, r0 - 1), min(hc, r1 + 1)
            frows = _reflect(torch.arange(p_lo, p_hi, device=self.dev), h)  # CFGM pad = reflect of the image
            f_lo, f_hi = _rows_cover(frows)
            f = self._encode_rows(x0, f_lo, f_hi)
            if len(frows) != f_hi - f_lo or (frows != torch.arange(f_lo, f_hi, device=self.dev)).any():
                f = f.index_select(2, frows - f_lo)
            if wc != w:
                f = F.pad(f, (0, wc - w, 0, 0), mode="reflect")
            for s in streams:
                dst = bufs[s][r0 * wc : r1 * wc]
                dst.copy_(self._mat(self._conv(f, cfgm.embed[s], r0 == 0, r1 == hc, self.dt("embed"))))
                stats[s].add(dst)

        # one pass per block
        for k, block in enumerate(cfgm.blocks):
            mix_here = needs_other and k <= last_mix
            keep_other = mix_here and k < last_mix
            bias = block.rel_pos().float()
            folded = {}
            for s in [act] + ([oth] if mix_here else []):
                mean, std = stats[s].mean_std(block.streams[s].norm.eps)
                folded[s] = self._folded(block, s, mean, std, stats[s].channel_means())
            out_streams = [act] + ([oth] if keep_other else [])
            new = {s: _POOL.take(hc * wc, dim, self.dev) for s in out_streams}
            new_stats = {s: _Stats(self.dev) for s in out_streams}
            for r0, r1 in self._bands(hc, wc, align=block.window, offset=block.shift):
                dst = {s: buf[r0 * wc : r1 * wc] for s, buf in new.items()}
                self._block_band(block, k, bufs, folded, bias, r0, r1, hc, wc, mix_here, keep_other, dst)
                for s in new:
                    new_stats[s].add(dst[s])
            _POOL.give(*bufs.values())
            bufs, stats = new, new_stats

        # last pass: patch unembed + G-Dec (S-Enc features recomputed band-wise)
        xf = bufs[act]
        dec = m.decoder
        m1 = dec.mix[0].weight.view(dim, 2 * dim).t()
        mdt = self.dt("mix")
        m1f = m1[:dim].to(mdt)
        # Linear maps with nothing in between are merged into one conv (fewer FLOPs, fewer full-band maps):
        # the patch unembedding (3×3) with the mixing conv's half that reads it (1×1, bias-free), and the second
        # mixing conv (1×1, bias-free) with the first G-Dec conv (3×3).
        ue = cfgm.unembed
        unembed = SimpleNamespace(
            weight=torch.einsum("co,cikl->oikl", m1[dim:], ue.weight), bias=ue.bias @ m1[dim:], padding=ue.padding
        )
        convs = [mod for mod in dec.convs if isinstance(mod, torch.nn.Conv2d)]
        m2 = dec.mix[2].weight.view(dec.mix[2].out_channels, dim)
        convs[0] = SimpleNamespace(
            weight=torch.einsum("ockl,ci->oikl", convs[0].weight, m2), bias=convs[0].bias, padding=convs[0].padding
        )
        # Two band sweeps, so that no band recomputes the unembedding and the S-Enc for the G-Dec's halo rows:
        # (A) the G-Dec input z = relu(mix(S-Enc, unembed)) into a full-resolution buffer (the pool's free one:
        # no extra memory), (B) the G-Dec on bands of z with its own halo.
        zbuf = _POOL.take(hc * wc, dim, self.dev)
        zmap = zbuf[: h * w]
        for r0, r1 in self._bands(h, w):
            u_lo, u_hi = max(0, r0 - 1), min(hc, r1 + 1)
            g = self._cl(xf[u_lo * wc : u_hi * wc], u_hi - u_lo, wc)
            g = self._conv(g, unembed, u_lo == 0, u_hi == hc, self.dt("unembed"))
            g = g[:, :, r0 - u_lo - (0 if u_lo == 0 else 1) :][:, :, : r1 - r0, :w]
            fm = self._mat(self._encode_rows(x0, r0, r1))
            gm = self._mat(g.contiguous(memory_format=torch.channels_last))
            dst = zmap[r0 * w : r1 * w]
            for i in range(0, len(fm), _CHUNK):
                sl = slice(i, i + _CHUNK)
                zc = torch.mm(fm[sl].to(mdt), m1f, out=dst[sl] if mdt == dst.dtype else None)
                zc.add_(gm[sl]).relu_()
                if zc.dtype != dst.dtype:
                    dst[sl] = zc  # exact: bfloat16 values are float32 values
        _POOL.give(xf)
        halo = len(convs)
        out = torch.empty(1, 1, h, w, device=self.dev)
        for r0, r1 in self._bands(h, w):
            c_lo, c_hi = max(0, r0 - halo), min(h, r1 + halo)
            x = self._cl(zmap[c_lo * w : c_hi * w], c_hi - c_lo, w)
            for i, conv in enumerate(convs):
                last = i == len(convs) - 1
                top, bottom = c_lo == 0, c_hi == h
                x = self._conv(x, conv, top, bottom, torch.float32 if last else self.dt("dec"))
                if not last:
                    x = F.relu_(x)
                c_lo, c_hi = c_lo + (0 if top else 1), c_hi - (0 if bottom else 1)
            x = x.float()[:, :, r0 - c_lo : r1 - c_lo]
            out[:, :, r0:r1] = torch.tanh(x) / 2 + 0.5
        _POOL.give(zbuf)
        return out


@torch.inference_mode()
def banded_fuse(
    model, a: torch.Tensor, b: torch.Tensor, step: str | None = None, precision: str = "fp32",
    band_pixels: int = 1 << 15, fp32_parts=None,
) -> torch.Tensor:  # fmt: skip
    """Fused luma ``B×1×H×W`` of ``model`` (a :class:`~gifnet.models.GIFNet`), computed band by band.

    Equal to ``model(a, b, step)`` up to float round-off (fp32) for every model configuration. ``band_pixels``
    sets the band height (``band_pixels / width`` rows, rounded to whole attention windows); smaller bands use
    less memory and fit the caches better, larger ones repeat fewer halo rows and run fewer, larger kernels.
    """
    check_precision(precision)
    model._check_inputs(a, b)
    step = step or model.config.inference_stream
    eng = _Engine(model, step, precision, band_pixels, BF16_FP32_PARTS if fp32_parts is None else fp32_parts)
    try:
        return torch.cat([eng.run(a[i : i + 1], b[i : i + 1]) for i in range(a.shape[0])], 0)
    finally:
        if not keeps_freed_memory():
            release_buffers()


__all__ = ["banded_fuse", "release_buffers"]
