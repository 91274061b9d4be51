"""Pixel arrays as the digit finder takes them: uint8, grey (HxW) or BGR (HxWx3).

Whatever a decoder gave (OpenCV's layouts, or a Pillow image through `pil_to_array`): 8-bit
without alpha is kept as it is; 16-bit is scaled by a table, alpha composited onto white paper
in integer arithmetic, floats scaled in float32 - the same values as the float formula used
before for everything, in bands of rows so that the temporaries stay small. `upright` applies
an EXIF orientation as Pillow's `exif_transpose` does.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

BAND_ROWS = 256  # rows converted at a time (16-bit, alpha, float)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as OpenCV lays it out: gray, BGR or BGRA; 16-bit and float kept as is."""
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return np.array(image)  # 16/32-bit integer or float gray: scaled by to_uint8_bgr_or_gray
    if mode in ("LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif mode in ("1", "L") or (mode == "P" and _palette_is_gray(image)):
        return np.array(image.convert("L"))
    elif mode != "RGBA":
        image = image.convert("RGB")
    array = np.array(image)
    if array.shape[-1] == 4:
        return cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)


def _palette_is_gray(image: Image.Image) -> bool:
    colors = np.array(image.getpalette("RGB") or [], np.uint8).reshape(-1, 3)
    return bool(np.all(colors == colors[:, :1]))


def _float_lut_16() -> np.ndarray:
    """16-bit -> 8-bit by the float formula used before (v / 65535 * 255, rounded), tabled."""
    unit = np.arange(65536, dtype=np.uint16).astype(np.float32) / 65535.0
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


LUT_16 = _float_lut_16()


def to_uint8_bgr_or_gray(image: np.ndarray, grey: bool = False) -> np.ndarray:
    """Scale any bit depth to uint8, and composite an alpha channel onto white paper.

    uint8 without alpha is returned as it is (or turned grey); the rest is converted in bands
    of BAND_ROWS rows into one uint8 result. The same values as the float arithmetic this
    replaced: 16-bit by its table, 8-bit alpha by integer rounding, the rest in float32.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 2:  # gray + alpha: as BGRA, composited below
        image = image[:, :, [0, 0, 0, 1]]
    alpha = image.ndim == 3 and image.shape[2] == 4
    if image.dtype == np.uint8 and not alpha:
        return _to_grey(image) if grey else image
    convert = _band_converter(image)
    h, w = image.shape[:2]
    colour_out = image.ndim == 3 and not grey
    out = np.empty((h, w, 3) if colour_out else (h, w), np.uint8)
    for y in range(0, h, BAND_ROWS):
        band = convert(image[y : y + BAND_ROWS])
        out[y : y + BAND_ROWS] = band if colour_out or band.ndim == 2 else _to_grey(band)
    if alpha and colour_out and _is_gray(out):
        return np.ascontiguousarray(out[:, :, 0])
    return out


def _band_converter(image: np.ndarray):
    """A function from a band of `image` to uint8 (BGR after compositing, or grey)."""
    alpha = image.ndim == 3 and image.shape[2] == 4
    if image.dtype == np.uint8:  # with alpha
        return _composite_uint8
    if image.dtype == np.uint16 and not alpha:
        return lambda band: LUT_16[band]
    peak = _float_peak(image)  # over the whole image, so every band scales alike

    def convert(band: np.ndarray) -> np.ndarray:
        unit = np.clip(np.nan_to_num(band.astype(np.float32) / peak), 0.0, 1.0)
        if alpha:
            a = unit[:, :, 3:4]
            unit = unit[:, :, :3] * a + (1.0 - a)
        return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)

    return convert


def _float_peak(image: np.ndarray) -> float:
    """What full scale is: 16-bit, or for Pillow's int32 16-bit data and floats, by content."""
    if image.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(image.dtype, np.integer):  # Pillow's "I" mode: 16-bit data in int32
        return 255.0 if image.max(initial=0) <= 255 else 65535.0
    return 1.0 if np.nanmax(image, initial=0.0) <= 1.0 else 255.0  # floats: [0, 1] or 0..255


def _composite_uint8(bgra: np.ndarray) -> np.ndarray:
    """BGRA uint8 onto white paper: c * a / 255 + (255 - a), rounded, in uint16 integers.

    Exactly the rounding of the float formula: 255 * (255 - a) is a multiple of 255, so only
    c * a / 255 is rounded, by the exact integer identity round(x / 255) =
    (x + 128 + ((x + 128) >> 8)) >> 8 for 0 <= x <= 65025.
    """
    a = bgra[:, :, 3:4].astype(np.uint16)
    x = bgra[:, :, :3] * a + 128  # uint16: at most 65153
    inked = (x + (x >> 8)) >> 8
    return (inked + (255 - a)).astype(np.uint8)


def _to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def _is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1])) and bool(
        np.array_equal(image[:, :, 1], image[:, :, 2])
    )


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation as Pillow's exif_transpose does."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(image), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image
