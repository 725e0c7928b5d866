"""MNIST-faithful preprocessing of a drawn digit, in numpy (Pillow only decodes and resamples).

MNIST's digits were size-normalised to fit a 20x20 box keeping their aspect ratio (with
anti-aliasing), then placed in a 28x28 field so that their centre of mass sits at its
centre. Measured on the 60,000 training digits: the ink's bounding box is exactly 20 px on
its longer side for all but 13, and the centre of mass is at (14.0, 14.0) in pixel indices
(std 0.29: an integer shift). `preprocess` does the same to any drawing:

1. grayscale in [0, 1];
2. white ink on black, like MNIST: inverted when the border is light (a dark-on-light
   canvas or paper), the background level subtracted and the ink's peak scaled to 1;
3. cropped to the ink's bounding box;
4. the longer side scaled to 20 px, keeping the aspect ratio, anti-aliased (Pillow's BOX
   filter: each pixel the average of its area);
5. pasted into 28x28 with the centre of mass on pixel (14, 14).

The model's own input normalisation (MNIST's mean and std) is applied by the model
(`gradscope.server.digits.models`), as training did.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gradscope.server.errors import GradscopeError, Invalid, TooLarge

SIDE = 28  # the MNIST frame
BOX = 20  # the longer side of the digit inside it
CENTRE = 14.0  # where MNIST's centre of mass sits (row, column), measured on the training set
MAX_BYTES = 1024 * 1024  # an upload larger than this is refused (413)
MAX_PIXELS = 4096 * 4096  # width * height refused above this (a decompression bomb)
# Decoding takes pixels x bytes per pixel (and a few copies of that): refused above this
# before decoding, e.g. a 130 KB PNG of 4096x4096 16-bit RGBA (128 MB). GRADSCOPE_MAX_DECODE_MB.
MAX_DECODE_BYTES = 32 * 2**20
WORK_SIDE = 1024  # larger images are shrunk to this longer side before the numpy work
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}
BLANK_PEAK = 0.1  # ink (against the background, 0..1) weaker than this everywhere: blank
INK_THRESHOLD = 0.05  # a pixel counts toward the bounding box above this share of the peak
# Shrinking averages each output pixel's area (anti-aliased: an MNIST digit shown at 10x
# comes back as it was); enlarging a tiny drawing interpolates.
SHRINK, ENLARGE = Image.Resampling.BOX, Image.Resampling.BILINEAR


class DigitError(GradscopeError, ValueError):
    """Input that cannot be read as a digit."""


class InvalidDigit(DigitError, Invalid):
    """Not an image, nothing drawn, or pixels out of shape or range."""


class DigitTooLarge(DigitError, TooLarge):
    """An upload over MAX_BYTES, or an image over MAX_PIXELS."""


def decode_cost(img: Image.Image) -> int:
    """Bytes of the decoded pixels, from the header alone: bands x bytes per sample."""
    bits = 16 if any(";16" in str(t[3]) for t in getattr(img, "tile", ())) else 8
    if img.mode in ("I", "F", "I;16", "I;16B", "I;16L"):
        bits = 32 if img.mode in ("I", "F") else 16
    return img.width * img.height * len(img.getbands()) * max(1, bits // 8)


def decode_image(data: bytes, max_decode: int = MAX_DECODE_BYTES) -> np.ndarray:
    """A PNG or JPEG as a float32 grayscale array in [0, 1] (transparency over white)."""
    if len(data) > MAX_BYTES:
        raise DigitTooLarge(f"the image is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    if not data:
        raise InvalidDigit("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
            if img.width * img.height > MAX_PIXELS:
                raise DigitTooLarge(
                    f"the image is {img.width}x{img.height} pixels; at most "
                    f"{MAX_PIXELS:,} pixels are accepted (a decompression bomb?)",
                )
            if img.width < 1 or img.height < 1:
                raise InvalidDigit("the image has no pixels")
            if max(img.size) > WORK_SIDE:
                img.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG: decode at a reduced scale
            cost = decode_cost(img)
            if cost > max_decode:
                raise DigitTooLarge(
                    f"decoding this {img.width}x{img.height} {img.mode} image would take "
                    f"{cost / 2**20:,.0f} MB; at most {max_decode / 2**20:,.0f} MB are allowed "
                    "(GRADSCOPE_MAX_DECODE_MB): send a smaller image"
                )
            img.load()
            if img.format != "PNG":
                img = ImageOps.exif_transpose(img)  # a phone photo's rotation
            return _gray(img)
    except DigitError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DigitTooLarge(f"the image is too large to decode: {e}") from None
    except UnidentifiedImageError:
        raise InvalidDigit(
            "not a PNG or JPEG image (other formats, and non-images, are not accepted)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidDigit(f"the image is corrupt or truncated: {e}") from None
    except Exception as e:  # a decoder's odd failure on a malformed file is still bad input
        raise InvalidDigit(f"the image cannot be decoded ({type(e).__name__}: {e})") from None


def _gray(img: Image.Image) -> np.ndarray:
    """Luminance in [0, 1]; transparent pixels over white (over black if that shows nothing)."""
    if max(img.size) > WORK_SIDE:
        img = img.copy()
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
        lum = np.asarray(rgba.convert("L"), dtype=np.float32) / 255
        over_white = lum * alpha + (1 - alpha)
        if np.ptp(over_white) >= BLANK_PEAK:
            return over_white
        return lum * alpha  # light ink on a transparent background
    if img.mode.startswith("I"):  # 16-bit grayscale PNGs open as I;16 or I
        return np.clip(np.asarray(img, dtype=np.float32) / 65535, 0, 1)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255


def pixels_array(pixels: Sequence[Any]) -> np.ndarray:
    """784 values (or 28 rows of 28) in [0, 1] as a (28, 28) float32 array, or DigitError."""
    if not isinstance(pixels, list | tuple) or not pixels:
        raise InvalidDigit("pixels: expected 784 numbers or 28 rows of 28, got nothing")
    nested = isinstance(pixels[0], list | tuple)
    if nested:
        if len(pixels) != SIDE or any(
            not isinstance(r, list | tuple) or len(r) != SIDE for r in pixels
        ):
            lengths = [len(r) if isinstance(r, list | tuple) else 1 for r in pixels]
            raise InvalidDigit(
                f"pixels: expected 28 rows of 28 values, got {len(pixels)} rows "
                f"(of lengths {sorted(set(lengths))})",
            )
        flat = [v for row in pixels for v in row]
    else:
        if len(pixels) != SIDE * SIDE:
            raise InvalidDigit(f"pixels: expected 784 values (28x28), got {len(pixels)} values")
        flat = list(pixels)
    for i, v in enumerate(flat):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidDigit(f"pixels[{i}]: expected a number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise InvalidDigit(f"pixels[{i}] is {v}: values must be finite numbers in [0, 1]")
        if not 0 <= v <= 1:
            raise InvalidDigit(f"pixels[{i}] is {v}: values must be in [0, 1]")
    return np.asarray(flat, dtype=np.float32).reshape(SIDE, SIDE)


def to_ink(gray: np.ndarray) -> np.ndarray:
    """White-on-black ink in [0, 1]: inverted when the border is light, background removed."""
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    background = float(np.median(border))
    ink = background - gray if background > 0.5 else gray - background
    np.maximum(ink, 0, out=ink)
    peak = float(ink.max())
    if peak < BLANK_PEAK:
        raise InvalidDigit("nothing drawn: the image is blank")
    ink /= peak
    return ink


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    """(row, column) of an array's centre of mass, in pixel indices."""
    total = float(a.sum())
    rows = float((a.sum(axis=1) * np.arange(a.shape[0])).sum()) / total
    cols = float((a.sum(axis=0) * np.arange(a.shape[1])).sum()) / total
    return rows, cols


def frame(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale the longer side to 20 px, centre by mass in 28x28 (as MNIST)."""
    mask = ink > INK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow: (width, height)
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(
            size, SHRINK if scale <= 1 else ENLARGE
        ),
        dtype=np.float32,
    )
    small = np.clip(small, 0, 1)
    if float(small.sum()) <= 0:
        raise InvalidDigit("nothing drawn: the ink vanishes at 20 px")
    cy, cx = centre_of_mass(small)
    top, left = round(CENTRE - cy), round(CENTRE - cx)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    # Paste with clipping: an off-centre mass can push an edge out of the frame, as in MNIST.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + small.shape[0], SIDE), min(left + small.shape[1], SIDE)
    out[y0:y1, x0:x1] = small[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def preprocess(gray: np.ndarray) -> np.ndarray:
    """A grayscale drawing (any size, either polarity) as a 28x28 MNIST-style digit in [0, 1]."""
    if gray.ndim != 2 or gray.size == 0:
        raise InvalidDigit(f"expected a 2-D grayscale image, got shape {gray.shape}")
    return frame(to_ink(np.asarray(gray, dtype=np.float32).copy()))
