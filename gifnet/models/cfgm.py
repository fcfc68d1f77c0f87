"""Cross-fusion gating module (CFGM): two task streams of DehazeFormer-style window-attention blocks.

The two streams are the multimodal stream ``"mm"`` (the official *ivif* stream, trained by the IVIF step,
``tag=1``) and the digital-photography stream ``"dp"`` (the official *mfif* stream, trained by the MFIF/MEIF
steps, ``tag=2``). Every per-stream sub-module exists once per stream in a :class:`torch.nn.ModuleDict`
keyed by stream name; the forward pass is written once and parameterised by which stream is *active*
(optimised, and returned) and which is the *other* one. See ``../shared/reference/GIFNET.md`` section 3.

Semantics reproduced from the released code (quirk numbers refer to GIFNET.md section 13):

* In even (non-shifted) blocks the other stream attends with the **active** stream's query (cross-attention),
  and after the block the active stream receives ``x_active += alpha_active[k] * x_other`` (quirks 3, 4).
* The other stream's attention path runs without gradient (partial stop-gradient, quirk 5).
* With ``official_dwconv_quirk`` the dp stream's depthwise conv reads the mm stream's ``V`` when the mm
  stream is active (quirk 2); it is needed to reproduce ``fused_tag1`` of the released checkpoint.
* Block outputs of the other stream that cannot reach the returned stream are not computed (the released
  code computes and discards them; the result is identical).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ReflectConv2d

STREAMS = ("mm", "dp")


def other_stream(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    return "dp" if stream == "mm" else "mm"


def relative_log_positions(window: int) -> torch.Tensor:
    """Relative offsets ``sign(d) * ln(1 + |d|)`` of every (query, key) token pair of a window.

    Returns a ``(window², window², 2)`` float32 tensor; tokens are numbered row-major inside the window.
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)  # 2 x N
    d = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous().float()
    return torch.sign(d) * torch.log1p(d.abs())


class _SampleMean(torch.autograd.Function):
    """``x.mean(dim=(1, 2, 3), keepdim=True)`` whose gradient is a broadcast view, not a dense NCHW map.

    Autograd's own mean backward divides an expanded gradient into a fresh tensor, and a tensor built from
    stride-0 operands is laid out NCHW-contiguous; added to or multiplied with the channels-last gradients
    around it, every such element-wise op then walks two layouts (4× slower than within one: 19 against 4 ms per
    add at 8×98×128², docs/performance.md). Here the same values ``grad / N`` are returned as an expanded view,
    so the gradients that meet them keep their own layout. Forward and gradient values are autograd's.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.mean(dim=(1, 2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        shape = ctx.shape
        return (grad / (shape[1] * shape[2] * shape[3])).expand(shape)


def sample_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over (C, H, W), kept as ``B×1×1×1`` (see :class:`_SampleMean`)."""
    if x.dim() != 4:
        raise ValueError(f"expected a B×C×H×W tensor, got shape {tuple(x.shape)}")
    return _SampleMean.apply(x)


class RLN(nn.Module):
    """Revised layer norm: per-sample statistics over (C, H, W); also returns the rescale/rebias terms."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = sample_mean(x)
        std = torch.sqrt(sample_mean((x - mean).pow(2)) + self.eps)
        normed = (x - mean) / std * self.weight + self.bias
        return normed, self._meta(self.meta1, std), self._meta(self.meta2, mean)

    @staticmethod
    def _meta(conv: nn.Conv2d, s: torch.Tensor) -> torch.Tensor:
        """``conv(s)`` for the ``B×1×1×1`` statistic ``s``: a 1→dim 1×1 convolution is ``bias + s·weight``.

        Written as one ``addcmul`` because the convolution costs milliseconds per call on CPU (forward and
        backward) for this 1×1 map and the element-wise product microseconds (docs/performance.md). The value
        is the convolution's up to one rounding (oneDNN may or may not fuse the multiply-add: equal in
        channels-last fp32 inference, within 1 ulp otherwise). The weights stay in the ``Conv2d`` (released
        key names).
        """
        w, b = conv.weight.view(1, -1, 1, 1), conv.bias.view(1, -1, 1, 1)
        if torch.is_autocast_enabled(s.device.type):  # autocast would run the convolution in bf16/fp16
            dtype = torch.get_autocast_dtype(s.device.type)
            return torch.addcmul(b.to(dtype), s.to(dtype), w.to(dtype))
        return torch.addcmul(b, s, w)


class StreamBlockParams(nn.Module):
    """The per-stream weights of one transformer block (norm, attention projections, DWConv, MLP)."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm = RLN(dim)
        self.qk = nn.Conv2d(dim, 2 * dim, 1)
        self.v = nn.Conv2d(dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode="reflect")
        self.proj = nn.Conv2d(dim, dim, 1)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, dim, 1))


class RelativePositionBias(nn.Module):
    """``MLP(sign(d)·ln(1+|d|))`` giving one additive attention bias per head (shared by both streams)."""

    def __init__(self, window: int, heads: int, hidden: int = 256):
        super().__init__()
        self.register_buffer("positions", relative_log_positions(window), persistent=True)
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(True), nn.Linear(hidden, heads))

    def forward(self) -> torch.Tensor:
        return self.mlp(self.positions).permute(2, 0, 1).contiguous()  # heads x N x N


def _window_heads(x: torch.Tensor, window: int, heads: int) -> torch.Tensor:
    """``B×C×H×W`` (H, W multiples of ``window``) → ``(B·nW)×heads×window²×(C/heads)`` attention operands.

    Tokens are row-major inside a window, windows row-major over the image, head ``h`` holds channels
    ``h·C/heads …``. One copy (through an NHWC view, so a channels-last input is read in order) straight into the
    layout ``scaled_dot_product_attention`` takes, instead of a token copy and a second per-head copy.
    """
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, h // window, window, w // window, window, heads, c // heads)
    return x.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, heads, window * window, c // heads)


def _window_unheads(o: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_window_heads`: ``(B·nW)×heads×window²×d`` → an NHWC ``B×H×W×(heads·d)`` tensor.

    One copy when ``o`` is contiguous (CPU attention returns it so); any other layout is copied once more.
    """
    heads, d = o.shape[1], o.shape[3]
    o = o.reshape(b, h // window, w // window, heads, window, window, d)
    return o.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, heads * d)


class CFGMBlock(nn.Module):
    """One transformer block holding both streams' weights and their shared relative-position MLP.

    ``shift`` selects DehazeFormer's shifted windows, realised as an asymmetric reflect pad without a mask.
    """

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, shift: int, streams: tuple[str, ...]):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dim {dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.window, self.shift = dim, heads, window, shift
        self.head_dim = dim // heads
        self.streams = nn.ModuleDict({s: StreamBlockParams(dim, mlp_ratio) for s in streams})
        self.rel_pos = RelativePositionBias(window, heads)

    # -- attention helpers -------------------------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Reflect-pad to multiples of the window (with the shift on top/left); returns (padded, offset)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.window, (-w) % self.window
        s = self.shift
        if s:
            pad = (s, (s + pw) % self.window, s, (s + ph) % self.window)
        else:
            pad = (0, pw, 0, ph)
        if any(pad):
            x = F.pad(x, pad, mode="reflect")
        return x, s

    #: windows per attention chunk when no gradient is needed (bounds the token copies and attention matrices)
    inference_chunk_windows: int = 4096

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Window attention of ``B×C×H×W`` query/key/value maps; returns ``B×C×H×W`` (cropped back).

        Without autograd the windows are processed in strips of window rows written into one preallocated
        output, so peak memory does not grow with a full copy of every window's tokens; with autograd all
        windows go at once (identical values either way).
        """
        b, _, h, w = q.shape
        (q, off), (k, _), (v, _) = self._pad(q), self._pad(k), self._pad(v)
        hp, wp = q.shape[-2:]
        ws, rows = self.window, q.shape[-2] // self.window
        if torch.is_grad_enabled() or not self.inference_chunk_windows:
            out = self._attend_windows(q, k, v, bias).view(b, hp, wp, self.dim)
        else:
            per_row = b * (wp // ws)
            step = max(1, self.inference_chunk_windows // per_row)
            out = q.new_empty(b, hp, wp, self.dim)
            for r0 in range(0, rows, step):
                sl = slice(r0 * ws, min(rows, r0 + step) * ws)
                out[:, sl] = self._attend_windows(q[:, :, sl], k[:, :, sl], v[:, :, sl], bias).view(
                    b, sl.stop - sl.start, wp, self.dim
                )
        return out.permute(0, 3, 1, 2)[:, :, off : off + h, off : off + w]

    def _attend_windows(self, q, k, v, bias) -> torch.Tensor:
        """Attention inside every window of padded maps → NHWC-ordered ``B×H×W×C`` values."""
        b, _, hp, wp = q.shape
        ws, nh = self.window, self.heads
        o = F.scaled_dot_product_attention(
            _window_heads(q, ws, nh), _window_heads(k, ws, nh), _window_heads(v, ws, nh), attn_mask=bias
        )
        return _window_unheads(o, ws, b, hp, wp)

    def attention(
        self,
        stream: str,
        xn: torch.Tensor,
        bias: torch.Tensor,
        query: torch.Tensor | None = None,
        dw_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention + DWConv branch of ``stream`` on its normalised input ``xn``.

        ``query`` replaces the stream's own query (cross-attention); ``dw_input`` replaces the DWConv input
        (the released code's tag-1 quirk). Returns (output, own query, own V) so a caller can reuse them.
        """
        p = self.streams[stream]
        qk = p.qk(xn)
        own_q, k = qk.split(self.dim, 1)  # split, not slicing: one cat in backward instead of two zero-fills
        v = p.v(xn)
        attn = self._attend(own_q if query is None else query, k, v, bias)
        y = p.proj(self._depthwise(p.dwconv, v if dw_input is None else dw_input) + attn)
        return y, own_q, v

    @staticmethod
    def _depthwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """The 5×5 depthwise convolution; under CPU autocast with autograd on it runs in fp32, not bf16.

        oneDNN's bf16 depthwise weight gradient is 2.2× slower than its fp32 one on CPU (344 vs 155 ms forward
        + backward at 8×98×128², docs/performance.md) and was the largest operator of a bf16 training step; fp32
        here is also closer to the fp32 model. Without autograd (inference, the other stream's no-grad path),
        outside autocast and on CUDA it runs as given.
        """
        if x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return conv(x.float())
        return conv(x)

    def finish(self, stream: str, x: torch.Tensor, y: torch.Tensor, gamma, beta) -> torch.Tensor:
        """Residual with RLN rescale/rebias, then the residual MLP."""
        x = x + y * gamma + beta
        return x + self.streams[stream].mlp(x)

    def forward_single(self, stream: str, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Plain self-attention block on one stream."""
        bias = self.rel_pos() if bias is None else bias
        xn, gamma, beta = self.streams[stream].norm(x)
        y, _, _ = self.attention(stream, xn, bias)
        return self.finish(stream, x, y, gamma, beta)


class CFGM(nn.Module):
    """Two-stream cross-fusion gating module.

    Args:
        dim: feature channels (the S-Enc output width).
        depth: number of blocks; odd blocks use shifted windows.
        heads, window, mlp_ratio: attention hyper-parameters.
        gating: ``"learned"`` (one learnable α per direction and block, as released), ``"fixed"`` (constant
            ``gate_value``) or ``"off"`` (no stream mixing).
        gate_value: α for ``gating="fixed"``.
        cross_attention: the other stream attends with the active stream's query in even blocks.
        dual_stream: ``False`` builds a single-stream baseline: one set of weights (named ``mm``) that serves
            every step; no cross-attention and no gating.
        stop_gradient: run the other stream's attention path without gradient (released semantics).
        official_dwconv_quirk: reproduce the released tag-1 DWConv input bug (GIFNET.md quirk 2).
    """

    def __init__(
        self,
        dim: int = 98,
        depth: int = 2,
        heads: int = 2,
        window: int = 8,
        mlp_ratio: float = 2.0,
        gating: str = "learned",
        gate_value: float = 0.1,
        cross_attention: bool = True,
        dual_stream: bool = True,
        stop_gradient: bool = True,
        official_dwconv_quirk: bool = True,
    ):
        super().__init__()
        if gating not in ("learned", "fixed", "off"):
            raise ValueError(f"gating must be 'learned', 'fixed' or 'off', got {gating!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if window < 2 or window % 2:
            raise ValueError(f"window must be an even integer >= 2, got {window}")
        self.dim, self.depth, self.window = dim, depth, window
        self.dual_stream = dual_stream
        self.gating = gating if dual_stream else "off"
        self.cross_attention = cross_attention and dual_stream
        self.stop_gradient = stop_gradient
        self.official_dwconv_quirk = official_dwconv_quirk
        streams = STREAMS if dual_stream else ("mm",)
        self.embed = nn.ModuleDict(
            {s: ReflectConv2d(dim, dim, 3) for s in streams}
        )
        self.blocks = nn.ModuleList(
            CFGMBlock(dim, heads, window, mlp_ratio, shift=0 if i % 2 == 0 else window // 2, streams=streams)
            for i in range(depth)
        )
        self.unembed = ReflectConv2d(dim, dim, 3)
        if self.gating == "learned":
            self.alpha = nn.ParameterDict(
                {s: nn.Parameter(torch.rand(depth)) for s in streams}
            )
        elif self.gating == "fixed":
            self.register_buffer("alpha_fixed", torch.full((depth,), float(gate_value)), persistent=True)

    # -- helpers --------------------------------------------------------------------------------------------
    def _stream(self, step: str) -> str:
        if step not in STREAMS:
            raise ValueError(f"step must be one of {STREAMS}, got {step!r}")
        return step if self.dual_stream else "mm"

    def gate(self, stream: str, k: int) -> torch.Tensor | float | None:
        if self.gating == "learned":
            return self.alpha[stream][k]
        if self.gating == "fixed":
            return self.alpha_fixed[k]
        return None

    def _mixing_blocks(self) -> list[int]:
        """Indices of blocks where the streams interact (even, non-shifted blocks)."""
        return [k for k in range(self.depth) if k % 2 == 0]

    # -- forward --------------------------------------------------------------------------------------------
    def forward(self, f_mm: torch.Tensor, f_dp: torch.Tensor | None, step: str) -> torch.Tensor:
        """Run the module with ``step`` (``"mm"`` = official tag 1, ``"dp"`` = tag 2) as the active stream.

        ``f_mm`` feeds the mm stream and ``f_dp`` the dp stream (both ``B×dim×H×W``); only the active stream
        is returned, cropped back to ``H×W``. In single-stream mode the features of ``step`` are used.
        """
        active = self._stream(step)
        if not self.dual_stream:
            x = f_mm if step == "mm" else f_dp
            return self._run(x, None, active)
        if f_dp is None:
            f_dp = f_mm
        if f_mm.shape != f_dp.shape:
            raise ValueError(f"stream features differ in shape: {tuple(f_mm.shape)} vs {tuple(f_dp.shape)}")
        xs = {"mm": f_mm, "dp": f_dp}
        return self._run(xs[active], xs[other_stream(active)], active)

    def _run(self, x_act: torch.Tensor, x_oth: torch.Tensor | None, active: str) -> torch.Tensor:
        h, w = x_act.shape[-2:]
        if min(h, w) < 2:
            raise ValueError(f"CFGM input must be at least 2x2, got {h}x{w}")
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            x_act = F.pad(x_act, (0, pw, 0, ph), mode="reflect")
            x_oth = None if x_oth is None else F.pad(x_oth, (0, pw, 0, ph), mode="reflect")
        other = other_stream(active)
        x = self.embed[active](x_act)
        # The other stream is needed only while some later block can still mix it into the active one.
        needs_other = x_oth is not None and self.gating != "off"
        mixing = self._mixing_blocks()
        last_mix = mixing[-1] if mixing else -1
        y = self.embed[other](x_oth) if needs_other else None
        for k, block in enumerate(self.blocks):
            bias = block.rel_pos()
            if not (needs_other and k <= last_mix):
                x = block.forward_single(active, x, bias)
                continue
            x, y = self._mixed_block(block, k, x, y, active, other, bias)
        x = self.unembed(x)
        return x[:, :, :h, :w]

    def _mixed_block(self, block: CFGMBlock, k: int, x, y, active: str, other: str, bias):
        xn, g_a, b_a = block.streams[active].norm(x)
        y_att, q_act, v_act = block.attention(active, xn, bias)
        yn, g_o, b_o = block.streams[other].norm(y)
        mixes = k % 2 == 0
        ctx = torch.no_grad() if self.stop_gradient else contextlib.nullcontext()
        with ctx:
            query = q_act if (mixes and self.cross_attention) else None
            dw_in = v_act if (self.official_dwconv_quirk and active == "mm") else None
            y_oth, _, _ = block.attention(other, yn, bias, query=query, dw_input=dw_in)
        x = block.finish(active, x, y_att, g_a, b_a)
        y = block.finish(other, y, y_oth, g_o, b_o)
        if mixes:
            x = x + self.gate(active, k) * y
        return x, y


def trunc_normal_init(module: nn.Conv2d, std: float) -> None:
    nn.init.trunc_normal_(module.weight, std=std, a=-2.0, b=2.0)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def reset_cfgm_parameters(cfgm: CFGM) -> None:
    """Initialise as the released training script does (GIFNET.md section 8)."""
    gain = (8 * cfgm.depth) ** -0.25
    for block in cfgm.blocks:
        for p in block.streams.values():
            for conv in (p.v, p.proj, p.dwconv):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
                trunc_normal_init(conv, gain * math.sqrt(2.0 / (fan_in + fan_out)))
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(p.qk.weight)
            trunc_normal_init(p.qk, math.sqrt(2.0 / (fan_in + fan_out)))
            for conv in (p.mlp[0], p.mlp[2]):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
                trunc_normal_init(conv, gain * math.sqrt(2.0 / (fan_in + fan_out)))
            nn.init.ones_(p.norm.weight)
            nn.init.zeros_(p.norm.bias)
            nn.init.trunc_normal_(p.norm.meta1.weight, std=0.02, a=-2.0, b=2.0)
            nn.init.trunc_normal_(p.norm.meta2.weight, std=0.02, a=-2.0, b=2.0)
            nn.init.ones_(p.norm.meta1.bias)
            nn.init.zeros_(p.norm.meta2.bias)
