"""Array-level colour handling around the GIFNet network (which fuses one luma channel in [0, 1]).

Two modes (see ``docs/colour.md`` for every difference):

``"standard"`` (default, corrected)
    Full-range BT.601 YCbCr (JPEG/JFIF convention) with the chroma offset at half the range
    (128 for uint8, 32768 for uint16) and its exact inverse, all in float64. Colour is detected from
    the data (:func:`is_gray`) unless flags are given. Two colour inputs have their chroma fused with
    saturation weights ``|C - offset|``. Outputs are rounded and clipped.

``"official"``
    Bit-for-bit the behaviour of the released ``test.py`` (GIFNET.md section 10 and quirk 14): colour
    slots are chosen by the task's flags, Y is truncated to uint8 before the network, chroma is
    zero-centred but fused with a 128-centred rule, the inverse matrix is not the exact inverse,
    colour outputs are rounded and gray outputs truncated. uint8 only.

Typical use::

    luma_a, luma_b, ctx = prepare_inputs(img_a, img_b)            # float32 H x W in [0, 1]
    fused = network(luma_a, luma_b)                                # float H x W in [0, 1]
    out = finish_output(fused, ctx)                                # uint8/uint16, H x W or H x W x 3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gifnet.io import is_gray

Mode = Literal["standard", "official"]
OfficialGrayCast = Literal["truncate", "round_half_even"]

__all__ = [
    "KR",
    "KB",
    "OFFICIAL_FORWARD",
    "OFFICIAL_INVERSE",
    "ChromaContext",
    "chroma_offset",
    "max_value_of",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "is_gray",
    "fuse_chroma",
    "official_rgb_to_ycbcr",
    "official_fuse_chroma",
    "official_ycbcr_to_rgb",
    "official_gray_read",
    "prepare_inputs",
    "finish_output",
]

# BT.601 luma weights.
KR = 0.299
KB = 0.114
KG = 1.0 - KR - KB

# Exact full-range BT.601 forward matrix (rows: Y, Cb - offset, Cr - offset) and its exact inverse.
_FORWARD = np.array(
    [
        [KR, KG, KB],
        [-KR / (2.0 * (1.0 - KB)), -KG / (2.0 * (1.0 - KB)), 0.5],
        [0.5, -KG / (2.0 * (1.0 - KR)), -KB / (2.0 * (1.0 - KR))],
    ],
    dtype=np.float64,
)
_INVERSE = np.linalg.inv(_FORWARD)

# The released script's matrices (rounded coefficients; the inverse is not the inverse of the forward one).
OFFICIAL_FORWARD = np.array([[0.299, 0.587, 0.114], [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]], dtype=np.float64)
OFFICIAL_INVERSE = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=np.float64)

_SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


# ----------------------------------------------------------------------------------------------------
# Basic conversions
# ----------------------------------------------------------------------------------------------------
def max_value_of(dtype: np.dtype | type) -> int:
    """Return the largest code value of an unsigned integer image dtype (255 for uint8, 65535 for uint16)."""
    dt = np.dtype(dtype)
    if dt not in _SUPPORTED_DTYPES:
        raise TypeError(f"unsupported image dtype {dt}; expected uint8 or uint16")
    return int(np.iinfo(dt).max)


def chroma_offset(max_value: float = 255) -> float:
    """Return the chroma offset (half the code range) for ``max_value = 2**bits - 1``: 128, 32768, ...

    ``max_value`` must be one less than a power of two (integer code values); a [0, 1] float range has no
    integer offset and is rejected.
    """
    levels = float(max_value) + 1.0
    bits = np.log2(levels)
    if not (levels >= 2 and float(bits).is_integer()):
        raise ValueError(f"max_value must be 2**bits - 1 (e.g. 255, 65535), got {max_value}")
    return levels / 2.0


def rgb_to_ycbcr(rgb: np.ndarray, max_value: float = 255) -> np.ndarray:
    """Full-range BT.601 RGB -> YCbCr (JPEG style) in float64; chroma offset ``(max_value + 1) / 2``.

    ``Y = .299 R + .587 G + .114 B``, ``Cb = off + (B - Y) / 1.772``, ``Cr = off + (R - Y) / 1.402``.
    No rounding or clipping; ``rgb`` is ``... x 3`` in any real dtype.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"expected a ... x 3 RGB array, got shape {rgb.shape}")
    ycc = rgb.astype(np.float64) @ _FORWARD.T
    off = chroma_offset(max_value)
    ycc[..., 1:] += off
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray, max_value: float = 255) -> np.ndarray:
    """Exact inverse of :func:`rgb_to_ycbcr` in float64 (no rounding or clipping)."""
    ycc = np.asarray(ycc, dtype=np.float64)
    if ycc.shape[-1:] != (3,):
        raise ValueError(f"expected a ... x 3 YCbCr array, got shape {ycc.shape}")
    centred = ycc.copy()
    centred[..., 1:] -= chroma_offset(max_value)
    return centred @ _INVERSE.T


def fuse_chroma(c1: np.ndarray, c2: np.ndarray, offset: float = 128.0) -> np.ndarray:
    """Saturation-weighted chroma fusion (standard mode), one chroma plane at a time, float64.

    ``C = (C1 w1 + C2 w2) / (w1 + w2)`` with ``w = |C - offset|``; where both weights are 0 the result is
    ``offset``. Evaluated in offset-centred form, so the more saturated input always gets more weight and
    the result is symmetric in the two inputs.
    """
    d1 = np.asarray(c1, dtype=np.float64) - offset
    d2 = np.asarray(c2, dtype=np.float64) - offset
    w1, w2 = np.abs(d1), np.abs(d2)
    den = w1 + w2
    num = d1 * w1 + d2 * w2
    safe = np.where(den > 0, den, 1.0)
    return offset + np.where(den > 0, num / safe, 0.0)


# ----------------------------------------------------------------------------------------------------
# Official (released test.py) primitives
# ----------------------------------------------------------------------------------------------------
def official_rgb_to_ycbcr(rgb_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The released ``rgb_to_ycbcr``: float64 ``(Y clipped to [0, 255], Cb, Cr)``, chroma zero-centred.

    ``rgb_uint8`` is ``H x W x 3`` uint8 (what ``np.array(PIL.Image.convert("RGB"))`` gives). The caller
    truncates Y to uint8 as the script does (see :func:`prepare_inputs`).
    """
    rgb = np.asarray(rgb_uint8)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"official mode expects an H x W x 3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    ycc = np.dot(rgb, OFFICIAL_FORWARD.T)  # same call and operand types as the script
    y = np.clip(ycc[:, :, 0], 0, 255)
    return y, ycc[:, :, 1], ycc[:, :, 2]


def official_fuse_chroma(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """The released ``fuse_cb_cr`` rule for one plane, vectorised; float32 result.

    ``C = (C1 |C1 - 128| + C2 |C2 - 128|) / (|C1 - 128| + |C2 - 128|)`` (128 where both terms are 0)
    applied to *zero-centred* chroma, so the weights are effectively ``128 - C``: more negative chroma wins.
    The script calls it as ``fuse_cb_cr(vis_cb, vis_cr, ir_cb, ir_cr)``, i.e. ``c1`` is slot b and ``c2``
    slot a; the order only matters for the last floating-point bit.
    """
    c1 = np.asarray(c1, dtype=np.float64)
    c2 = np.asarray(c2, dtype=np.float64)
    w1 = np.abs(c1 - 128)
    w2 = np.abs(c2 - 128)
    num = c1 * w1 + c2 * w2
    den = w1 + w2
    both_zero = (w1 == 0) & (w2 == 0)
    out = np.where(both_zero, 128.0, num / np.where(both_zero, 1.0, den))
    return out.astype(np.float32)


def official_ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """The released ``ycbcr_to_rgb``: official inverse matrix, clip to [0, 255], round half to even, uint8."""
    ycc = np.stack((y, cb, cr), axis=-1)  # dtype promotion exactly as in the script
    rgb = np.dot(ycc, OFFICIAL_INVERSE.T)
    rgb = np.clip(rgb, 0, 255)
    return np.round(rgb).astype(np.uint8)


def official_gray_read(img: np.ndarray) -> np.ndarray:
    """Approximate ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` for an unflagged slot, from decoded pixels.

    Gray files and files stored as 3 identical channels give the stored value (as OpenCV does). For a
    genuinely colour image OpenCV's result depends on the codec (JPEG: the decoder's luma plane; PNG:
    libpng's fixed-point conversion, close to ``floor`` of BT.601); this returns ``round`` of BT.601 luma
    of the decoded RGB, which can differ by one level (PNG) or more (JPEG chroma subsampling).
    """
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"official mode expects uint8 images, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img.copy()
    if is_gray(img):
        return img[:, :, 0].copy()
    y = img.astype(np.float64) @ np.array([KR, KG, KB])
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Pipeline API
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChromaContext:
    """Everything :func:`finish_output` needs to turn the fused luma back into an image.

    Attributes:
        mode: ``"standard"`` or ``"official"``.
        cb, cr: chroma planes of the output (``None`` for a gray output). Standard mode: float64 with the
            ``max_value`` range's offset; official mode: zero-centred, float64 (one colour slot) or float32
            (fused), exactly as the script keeps them.
        max_value: largest code value of the output (255 or 65535).
        dtype: output dtype (uint8 or uint16).
        source: where the chroma comes from: ``"fused"``, ``"a"``, ``"b"`` or ``"none"``.
        shape: ``(H, W)`` of the inputs.
    """

    mode: str
    cb: np.ndarray | None
    cr: np.ndarray | None
    max_value: int
    dtype: np.dtype
    source: str
    shape: tuple[int, int]

    @property
    def is_color(self) -> bool:
        """True when :func:`finish_output` returns ``H x W x 3`` RGB."""
        return self.cb is not None


def _check_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"{name}: expected H x W, H x W x 1 or H x W x 3 image, got shape {img.shape}")
    if img.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"{name}: unsupported dtype {img.dtype}; expected uint8 or uint16")
    return img


def _standard_planes(
    img: np.ndarray, flag: bool | None, out_max: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Luma in [0, 1] (float64) and, for a colour input, Cb/Cr rescaled to the output range."""
    in_max = max_value_of(img.dtype)
    color = (not is_gray(img)) if flag is None else bool(flag)
    if not color:
        gray = img if img.ndim == 2 else (img[:, :, 0] if is_gray(img) else None)
        if gray is None:  # forced gray on a real colour image: BT.601 luma, no rounding
            gray = rgb_to_ycbcr(img, in_max)[:, :, 0]
        return np.asarray(gray, dtype=np.float64) / in_max, None, None
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    ycc = rgb_to_ycbcr(rgb, in_max)
    luma = ycc[:, :, 0] / in_max
    if is_gray(rgb):  # keep the exact stored value (no float round-off in Y)
        luma = rgb[:, :, 0].astype(np.float64) / in_max
    scale = out_max / in_max
    off_in, off_out = chroma_offset(in_max), chroma_offset(out_max)
    cb = (ycc[:, :, 1] - off_in) * scale + off_out
    cr = (ycc[:, :, 2] - off_in) * scale + off_out
    return luma, cb, cr


def _official_planes(img: np.ndarray, flag: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """uint8 luma as the script feeds it, plus zero-centred float64 chroma for a flagged slot."""
    if img.dtype != np.uint8:
        raise TypeError(f"official mode supports uint8 images only, got {img.dtype}")
    if not flag:
        return official_gray_read(img), None, None
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)  # PIL convert("RGB") of L
    y, cb, cr = official_rgb_to_ycbcr(rgb)
    return y.astype(np.uint8), cb, cr  # truncation, as ``ir_img.astype(np.uint8)``


def prepare_inputs(
    img_a: np.ndarray,
    img_b: np.ndarray,
    mode: Mode = "standard",
    *,
    flag_a: bool | None = None,
    flag_b: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, ChromaContext]:
    """Split two images into network luma inputs and the chroma context for :func:`finish_output`.

    Args:
        img_a, img_b: slot a and slot b images, ``H x W``, ``H x W x 1`` or ``H x W x 3`` (RGB order),
            uint8 or uint16 (official mode: uint8), same ``H x W``.
        mode: ``"standard"`` or ``"official"``.
        flag_a, flag_b: whether a slot is treated as RGB. Official mode: required, the task preset's
            ``--IR_IS_RGB`` (slot a) / ``--VIS_IS_RGB`` (slot b). Standard mode: ``None`` (default) detects
            colour with :func:`is_gray`; ``False`` forces a slot to gray (its chroma is ignored), ``True``
            forces it to be treated as colour.

    Returns:
        ``(luma_a, luma_b, ctx)``: float32 ``H x W`` arrays in [0, 1] and a :class:`ChromaContext`.
        Chroma policy: both colour -> fused chroma (standard: :func:`fuse_chroma`; official:
        :func:`official_fuse_chroma`); one colour -> that slot's chroma; none -> gray output.
        Standard mode outputs the wider dtype of the two inputs.
    """
    a = _check_image(img_a, "img_a")
    b = _check_image(img_b, "img_b")
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"img_a and img_b differ in size: {a.shape[:2]} vs {b.shape[:2]}")
    shape = (int(a.shape[0]), int(a.shape[1]))

    if mode == "official":
        if flag_a is None or flag_b is None:
            raise ValueError("official mode needs explicit flag_a/flag_b (the task preset's RGB flags)")
        ya, cba, cra = _official_planes(a, flag_a)
        yb, cbb, crb = _official_planes(b, flag_b)
        if flag_a and flag_b:
            cb, cr, source = official_fuse_chroma(cbb, cba), official_fuse_chroma(crb, cra), "fused"
        elif flag_a:
            cb, cr, source = cba, cra, "a"
        elif flag_b:
            cb, cr, source = cbb, crb, "b"
        else:
            cb = cr = None
            source = "none"
        luma_a = ya.astype(np.float32) / np.float32(255)  # torchvision ToTensor on uint8
        luma_b = yb.astype(np.float32) / np.float32(255)
        ctx = ChromaContext("official", cb, cr, 255, np.dtype(np.uint8), source, shape)
        return luma_a, luma_b, ctx

    if mode != "standard":
        raise ValueError(f"mode must be 'standard' or 'official', got {mode!r}")
    out_max = max(max_value_of(a.dtype), max_value_of(b.dtype))
    la, cba, cra = _standard_planes(a, flag_a, out_max)
    lb, cbb, crb = _standard_planes(b, flag_b, out_max)
    off = chroma_offset(out_max)
    if cba is not None and cbb is not None:
        cb, cr, source = fuse_chroma(cba, cbb, off), fuse_chroma(cra, crb, off), "fused"
    elif cba is not None:
        cb, cr, source = cba, cra, "a"
    elif cbb is not None:
        cb, cr, source = cbb, crb, "b"
    else:
        cb = cr = None
        source = "none"
    dtype = np.dtype(np.uint16 if out_max > 255 else np.uint8)
    ctx = ChromaContext("standard", cb, cr, out_max, dtype, source, shape)
    return la.astype(np.float32), lb.astype(np.float32), ctx


def _as_plane(fused: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(fused)
    while arr.ndim > 2 and arr.shape[0] == 1:  # drop leading batch/channel axes of size 1
        arr = arr[0]
    if arr.shape != shape:
        raise ValueError(f"fused luma has shape {np.asarray(fused).shape}, expected {shape}")
    return arr


def finish_output(
    fused_luma: np.ndarray,
    ctx: ChromaContext,
    *,
    official_gray: OfficialGrayCast = "truncate",
) -> np.ndarray:
    """Turn the network's fused luma (float, nominally [0, 1], ``H x W`` or ``1 x 1 x H x W``) into an image.

    Standard mode: ``Y = y * max_value``; gray -> round + clip; colour -> exact inverse BT.601 with the
    context's chroma, then round (half to even) + clip; dtype ``ctx.dtype``.

    Official mode: ``Y = float32(y) * 255`` (untruncated); colour -> :func:`official_ycbcr_to_rgb`
    (official inverse matrix, clip, round); gray -> ``official_gray="truncate"`` (default, GIFNET.md §10
    item 4: clip then truncate) or ``"round_half_even"`` (what ``cv2.imwrite`` of a float32 array to
    PNG/JPEG does: saturating ``convertTo(CV_8U)``).

    Returns:
        ``H x W`` (gray) or ``H x W x 3`` RGB image of dtype ``ctx.dtype``.
    """
    y = _as_plane(fused_luma, ctx.shape)
    if ctx.mode == "official":
        y32 = y.astype(np.float32) * 255  # float32, as ``out_y_or_gray * 255`` in the script
        if ctx.is_color:
            return official_ycbcr_to_rgb(y32, ctx.cb, ctx.cr)
        clipped = np.clip(y32, 0, 255)
        if official_gray == "truncate":
            return clipped.astype(np.uint8)
        if official_gray == "round_half_even":
            return np.rint(clipped).astype(np.uint8)
        raise ValueError(f"official_gray must be 'truncate' or 'round_half_even', got {official_gray!r}")
    if ctx.mode != "standard":
        raise ValueError(f"unknown context mode {ctx.mode!r}")
    big_y = y.astype(np.float64) * ctx.max_value
    if ctx.is_color:
        out = ycbcr_to_rgb(np.stack((big_y, ctx.cb, ctx.cr), axis=-1), ctx.max_value)
    else:
        out = big_y
    return np.clip(np.rint(out), 0, ctx.max_value).astype(ctx.dtype)
