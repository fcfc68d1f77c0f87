"""Image reading, pairing and writing shared by the whole project (training, fusion CLI, evaluation).

Conventions
-----------
- :func:`read_image` returns a ``numpy`` array exactly as stored: ``uint8`` or ``uint16``, ``H×W`` for
  single-channel images, ``H×W×3`` (RGB) or ``H×W×4`` (RGBA) otherwise. No EXIF rotation is applied.
- JPEG (and other lossy / 8-bit formats) are decoded with Pillow, the decoder of the official GIFNet
  scripts (OpenCV's JPEG decoder can differ by a grey level). PNG and TIFF are decoded with OpenCV
  (``IMREAD_UNCHANGED``, BGR → RGB), which keeps 16-bit colour images that Pillow would truncate.
- :func:`to_luma` is ITU-R BT.601 luma computed exactly like Pillow's ``convert("L")``.
- Every error names the file(s) and the problem.
- Pixel limit: an image with more than :func:`max_image_pixels` pixels (default 2**30 ≈ 1.07 gigapixels, OpenCV's
  own default; environment variable ``GIFNET_MAX_IMAGE_PIXELS`` or :func:`set_max_image_pixels`) is refused from
  its header, before any decoding, with an :class:`ImageReadError` naming the file, its size and the setting.
  Pillow's decompression-bomb limit is set to the same value, so one setting governs both decoders.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

# before cv2 is imported: OpenCV reads its limit once (the default below, DEFAULT_MAX_IMAGE_PIXELS)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("GIFNET_MAX_IMAGE_PIXELS", str(1 << 30)))

import cv2  # noqa: E402  (reads OPENCV_IO_MAX_IMAGE_PIXELS when first imported)
import numpy as np
from PIL import Image, UnidentifiedImageError

from gifnet.paths import atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "describe_error",
    "normalize_ext",
    "ImageReadError",
    "PairingError",
    "SizeMismatchError",
    "EmptyFolderError",
    "read_image",
    "read_image_size",
    "max_image_pixels",
    "check_pixel_count",
    "set_max_image_pixels",
    "is_gray",
    "to_luma",
    "to_float01",
    "list_images",
    "match_pairs",
    "write_image_atomic",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pnm",
)
"""File extensions treated as images (case-insensitive)."""

_CV2_FIRST = {".png", ".tif", ".tiff"}

DEFAULT_MAX_IMAGE_PIXELS = 1 << 30  # OpenCV's own default


def _pixel_limit_from_env() -> int:
    raw = os.environ.get("GIFNET_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_IMAGE_PIXELS))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"GIFNET_MAX_IMAGE_PIXELS must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"GIFNET_MAX_IMAGE_PIXELS must be a positive integer, got {raw!r}")
    return value


_MAX_PIXELS = _pixel_limit_from_env()
Image.MAX_IMAGE_PIXELS = _MAX_PIXELS  # Pillow warns above it and refuses above twice; our check comes first


def max_image_pixels() -> int:
    """The pixel limit of :func:`read_image` (width × height)."""
    return _MAX_PIXELS


def set_max_image_pixels(n: int) -> None:
    """Set the pixel limit of every image read (also Pillow's decompression-bomb limit)."""
    global _MAX_PIXELS
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"max image pixels must be a positive integer, got {n!r}")
    _MAX_PIXELS = n
    Image.MAX_IMAGE_PIXELS = n


def _check_pixel_limit(path: Path) -> None:
    """Refuse a file whose header announces more pixels than the limit (a header Pillow cannot parse: no check)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        w = h = None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return
    check_pixel_count(path, w, h)


def check_pixel_count(path: str | os.PathLike, w: int | None, h: int | None) -> None:
    """Refuse (``ImageReadError`` naming the file and the setting) a ``w`` × ``h`` image above the pixel limit;
    ``None`` sizes: a decoder already found it too large."""
    if w is None or h is None or w * h > _MAX_PIXELS:
        size = "" if w is None or h is None else f"{w}x{h} = {w * h:,} pixels, "
        raise ImageReadError(
            f"{path}: image too large ({size}limit {_MAX_PIXELS:,} pixels); raise the limit with "
            "GIFNET_MAX_IMAGE_PIXELS=N or gifnet.io.set_max_image_pixels(N) if the file is trusted"
        )


class DataError(ValueError):
    """Base class of every data problem raised by :mod:`gifnet.data`."""


def normalize_ext(ext: str | None, key: str = "ext") -> str | None:
    """An output extension setting, validated once: ``None``/``""``/``"null"`` keep the input's extension;
    ``"png"``, ``".PNG"``, ``" .png "`` → ``".png"``; anything not in :data:`IMAGE_EXTENSIONS` is a ``ValueError``
    naming ``key``."""
    if ext is None:
        return None
    if not isinstance(ext, str):
        raise ValueError(f"{key} must be an image extension such as .png, or null, got {ext!r}")
    e = ext.strip().lower()
    if e in ("", "null", "none"):
        return None
    e = e if e.startswith(".") else "." + e
    if e not in IMAGE_EXTENSIONS or any(c.isspace() for c in e):
        raise ValueError(f"{key}={ext!r} is not a supported image extension (one of {', '.join(IMAGE_EXTENSIONS)}, "
                         "or null to keep the input's)")
    return e


def describe_error(e: BaseException) -> str:
    """A one-line reason for a per-item failure: the message, with the error type when it is not self-evident."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, DataError | ValueError | OSError) and msg:
        return msg
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class ImageReadError(DataError):
    """A file could not be read or decoded as an image (missing, corrupt, truncated, unsupported)."""


class PairingError(DataError):
    """Files of two (or more) folders do not pair up by name."""


class SizeMismatchError(DataError):
    """Members of one aligned pair/scene do not have the same size."""


class EmptyFolderError(DataError):
    """A folder that should contain images contains none."""


# --------------------------------------------------------------------------------------------- reading
def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{path}: is a directory, not an image file") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc})") from exc


def _read_cv2(path: Path, data: bytes) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageReadError(f"{path}: OpenCV cannot decode this file (corrupt or unsupported format)")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported sample type {img.dtype} (expected 8- or 16-bit integers)")
    return np.ascontiguousarray(img)


@contextlib.contextmanager
def _pillow_errors(path: Path, what: str) -> Iterator[None]:
    """Pillow's exceptions while opening ``path`` as one :class:`ImageReadError` naming the file (``what``: what
    could not be read, e.g. ``image`` or ``image header``)."""
    try:
        yield
    except ImageReadError:
        raise
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file does not exist") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large for the pixel limit ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: corrupt or unsupported {what} ({exc})") from exc


def _read_pil(path: Path) -> np.ndarray:
    with _pillow_errors(path, "image"):
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("L", "RGB", "RGBA"):
                arr = np.asarray(im)
            elif mode == "1":
                arr = np.asarray(im.convert("L"))
            elif mode == "LA":
                arr = np.asarray(im.convert("RGBA"))
            elif mode == "P":
                has_alpha = "transparency" in im.info
                arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                arr = np.asarray(im.convert("RGB"))
            elif mode.startswith("I;16"):
                arr = np.asarray(im).astype(np.uint16)
            elif mode == "I":
                arr32 = np.asarray(im)
                if arr32.size and (arr32.min() < 0 or arr32.max() > 65535):
                    raise ImageReadError(f"{path}: 32-bit integer image with values outside 0..65535")
                arr = arr32.astype(np.uint16)
            elif mode == "F":
                raise ImageReadError(f"{path}: 32-bit floating-point image; gifnet reads 8- and 16-bit integer images "
                                     "(save it as a 16-bit PNG or TIFF; remote-sensing band stacks: task=remote)")
            else:
                raise ImageReadError(f"{path}: unsupported Pillow image mode {mode!r}")
    return np.ascontiguousarray(arr)


def read_image(path: str | os.PathLike, backend: str = "auto") -> np.ndarray:
    """Read an image file as stored: ``uint8``/``uint16`` array, ``H×W`` (gray) or ``H×W×C`` (RGB[A]).

    Args:
        path: image file.
        backend: ``"auto"`` (Pillow for JPEG and other 8-bit formats, OpenCV for PNG/TIFF so that 16-bit
            colour survives), ``"pil"`` or ``"cv2"``.

    Raises:
        ImageReadError: the file is missing, empty, truncated, corrupt or of an unsupported type; the
            message names the file.
    """
    p = Path(path)
    if backend not in ("auto", "pil", "cv2"):
        raise ValueError(f"read_image: unknown backend {backend!r} (use 'auto', 'pil' or 'cv2')")
    if not p.exists():
        raise ImageReadError(f"{p}: file does not exist")
    if p.is_dir():
        raise ImageReadError(f"{p}: is a directory, not an image file")
    _check_pixel_limit(p)
    if backend == "pil":
        return _read_pil(p)
    data = _read_bytes(p)
    if not data:
        raise ImageReadError(f"{p}: file is empty (0 bytes)")
    if backend == "cv2":
        return _read_cv2(p, data)
    if p.suffix.lower() in _CV2_FIRST:
        try:
            return _read_cv2(p, data)
        except ImageReadError:
            return _read_pil(p)  # raises a Pillow-flavoured ImageReadError if it fails too
    return _read_pil(p)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(height, width)`` from the file header only (cheap; does not decode the pixels).

    Raises:
        ImageReadError: the header cannot be parsed.
    """
    p = Path(path)
    with _pillow_errors(p, "image header"), Image.open(p) as im:
        w, h = im.size
    return int(h), int(w)


# ----------------------------------------------------------------------------------------- conversions
def is_gray(img: np.ndarray, tol: float = 0) -> bool:
    """True for single-channel images and for 3/4-channel images whose R, G, B planes are identical.

    Args:
        img: ``H×W`` or ``H×W×C`` array.
        tol: maximum absolute difference between colour planes still counted as gray (0 = identical).
    """
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 2)):
        return True
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"is_gray: expected an H×W or H×W×C image, got shape {img.shape}")
    r, g, b = (img[..., i].astype(np.float64) if tol else img[..., i] for i in range(3))
    if tol:
        return bool(np.abs(r - g).max(initial=0) <= tol and np.abs(r - b).max(initial=0) <= tol)
    return bool(np.array_equal(r, g) and np.array_equal(r, b))


def to_luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` with the dtype of the input, alpha dropped.

    Integer images use Pillow's exact fixed-point formula (``convert("L")``):
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, also for ``uint16``. Float images use the real
    weights without rounding. Single-channel input is returned unchanged (``H×W``).
    """
    if img.ndim == 2:
        return img
    if img.ndim != 3:
        raise ValueError(f"to_luma: expected an H×W or H×W×C image, got shape {img.shape}")
    c = img.shape[2]
    if c in (1, 2):
        return img[..., 0]
    if c not in (3, 4):
        raise ValueError(f"to_luma: unsupported number of channels {c}")
    if np.issubdtype(img.dtype, np.integer):
        r = img[..., 0].astype(np.int64)
        g = img[..., 1].astype(np.int64)
        b = img[..., 2].astype(np.int64)
        y = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16
        return y.astype(img.dtype)
    rgb = img[..., :3].astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return y.astype(img.dtype)


def to_float01(img: np.ndarray) -> np.ndarray:
    """Integer image → ``float32`` in [0, 1] (divided by 255 or 65535); float input is cast to float32."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32)
    raise ValueError(f"to_float01: unsupported dtype {img.dtype}")


# ------------------------------------------------------------------------------------- folders, pairs
def _check_dir(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    if not d.exists():
        raise FileNotFoundError(f"{d}: folder does not exist")
    if not d.is_dir():
        raise NotADirectoryError(f"{d}: is not a folder")
    return d


def list_images(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Sorted image files of a folder (by relative path); non-image files and hidden files are ignored.

    Args:
        directory: folder to list; must exist (``FileNotFoundError`` naming it otherwise).
        recursive: also descend into sub-folders.

    Returns an empty list for a folder without images (callers that need images raise
    :class:`EmptyFolderError`).
    """
    d = _check_dir(directory)
    it: Iterable[Path] = d.rglob("*") if recursive else d.iterdir()
    files = [
        p
        for p in it
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(d).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(d).as_posix())


def _format_names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def match_pairs(
    dir_a: str | os.PathLike,
    dir_b: str | os.PathLike,
    skip_unpaired: bool = False,
    by_stem: bool = False,
) -> list[tuple[str, Path, Path]]:
    """Pair the images of two folders by identical file name.

    Args:
        dir_a: first folder (e.g. ``A/`` = infrared).
        dir_b: second folder (e.g. ``B/`` = visible).
        skip_unpaired: warn about (and drop) names found in one folder only, instead of raising.
        by_stem: match on the name without extension (``x.png`` ↔ ``x.jpg``); duplicate stems are an error.

    Returns:
        ``[(name, path_a, path_b), ...]`` sorted by name (``name`` is the file name of ``path_a``, or the
        stem when ``by_stem``).

    Raises:
        FileNotFoundError: a folder does not exist.
        EmptyFolderError: a folder holds no image file.
        PairingError: names present on one side only (listed), unless ``skip_unpaired``; or no pair at all.
    """
    da, db = _check_dir(dir_a), _check_dir(dir_b)
    files: list[dict[str, Path]] = []
    for d in (da, db):
        imgs = list_images(d)
        if not imgs:
            raise EmptyFolderError(f"{d}: folder contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
        table: dict[str, Path] = {}
        for p in imgs:
            key = p.stem if by_stem else p.name
            if key in table:
                raise PairingError(f"{d}: two files share the name stem {key!r}: {table[key].name}, {p.name}")
            table[key] = p
        files.append(table)
    ta, tb = files
    only_a = sorted(set(ta) - set(tb))
    only_b = sorted(set(tb) - set(ta))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in {da}: {_format_names(only_a)}")
        if only_b:
            parts.append(f"only in {db}: {_format_names(only_b)}")
        msg = f"unpaired images ({len(only_a) + len(only_b)}): " + "; ".join(parts)
        if not skip_unpaired:
            raise PairingError(msg + " (pairs must have identical file names)")
        warnings.warn(msg + " — skipped", stacklevel=2)
    keys = sorted(set(ta) & set(tb))
    if not keys:
        raise PairingError(f"no image file name is shared by {da} and {db}")
    return [(k, ta[k], tb[k]) for k in keys]


# ---------------------------------------------------------------------------------------------- writing
def write_image_atomic(
    path: str | os.PathLike,
    array: np.ndarray,
    jpeg_quality: int = 95,
) -> Path:
    """Write an image atomically: encode, write a temp file in the same folder, ``os.replace`` it.

    Args:
        path: destination; the format follows its extension (no extension → ``.png`` is appended).
            PNG (default, lossless) and TIFF keep ``uint16``; JPEG needs ``uint8``.
        array: ``H×W``, ``H×W×1``, ``H×W×3`` (RGB) or ``H×W×4`` (RGBA); ``uint8``/``uint16``, or float in
            [0, 1] (clipped, rounded to ``uint8``). A torch tensor is accepted and moved to the CPU.
        jpeg_quality: JPEG quality (ignored for other formats).

    Returns:
        The final path. Parent folders are created. A reader never sees a partially written file.
    """
    p = Path(path)
    if p.suffix == "":
        p = p.with_suffix(".png")
    ext = p.suffix.lower()
    arr = array
    if hasattr(arr, "detach"):  # torch tensor
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{p}: image to write contains NaN or infinite values")
        arr = np.clip(np.rint(np.clip(arr, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{p}: cannot write dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"{p}: cannot write an image of shape {arr.shape}")
    if ext in (".jpg", ".jpeg") and arr.dtype != np.uint8:
        raise ValueError(f"{p}: JPEG cannot store {arr.dtype}; write a .png or .tif instead")
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"{p}: unsupported image extension {ext!r}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), params)
    if not ok:
        raise OSError(f"{p}: OpenCV failed to encode the image as {ext}")
    with atomic_path(p) as tmp:
        tmp.write_bytes(buf.tobytes())
    return p
