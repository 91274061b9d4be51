"""Decode image files into what the digit finder takes: uint8, grey (HxW) or BGR (HxWx3).

Before any pixel is decoded, the file is read as a regular file within a size limit
(`inputs.open_regular_file`) and Pillow parses only its header: the format must be one the
README lists (PNG, JPEG, BMP, TIFF, WebP, GIF; nothing else reaches a decoder, so an EPS file
named .png is never handed to Ghostscript), and the image must fit the pixel limit and the
memory budget, so a decompression bomb (a few KB that decode to GBs) is refused without
allocating it. Pillow's own pixel limit is set aside: ours applies, at any value.

What is decoded is what is needed:
- 8-bit images go straight from the decoder to uint8 grey (or BGR when colour is asked for,
  for an annotated copy): no conversion at all, no copy;
- a big JPEG is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg itself (DCT scaling, a
  fraction of the work), never below MIN_DECODED_SIDE on its long side; `DecodedImage.size`
  keeps the full size so boxes can be reported in the file's own pixels;
- awkward but valid images are read as a person sees them: 16-bit scaled to 8-bit,
  transparency composited onto white paper (transparent paper, opaque ink), palettes expanded
  (runtime/pixels.py), EXIF orientation applied.
OpenCV decodes PNG, JPEG, BMP, TIFF and WebP; Pillow decodes GIF and whatever OpenCV refuses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_edge.runtime.inputs import (
    IMAGE_SUFFIXES,
    ImageReadError,
    MemoryFile,
    RegularFile,
    open_regular_file,
    too_big,
)
from mnist_edge.runtime.pixels import pil_to_array, to_uint8_bgr_or_gray, upright

# 64 MP: more than a 48 MP phone photo, far less than a bomb.
MAX_PIXELS = 64_000_000
# Decoding may take up to this many bytes a pixel of the pixel limit (an 8-bit RGBA image at
# the limit); a 16-bit colour image counts its real size, so it may have fewer pixels.
BYTES_PER_PIXEL = 4
FILE_SLACK = 1 << 20  # metadata (EXIF, ICC profiles) on top of uncompressed pixels
# The long side a reduced JPEG keeps at least. The recognizer reads the real photos as well
# from a 320-px copy as at full size, and starts losing digits below that
# (tests/decode_size_study.py, docs/predict-speed.md); this stays more than twice clear, and a
# 3000x2250 phone photo is decoded at 750x563 (1/4), a 1920x1080 one at 960x540 (1/2).
MIN_DECODED_SIDE = 720
DIRECT_PIXELS = 4_000_000  # from this size on, decoded straight into our array (see below)

# Pillow's format names -> the formats the README lists (MPO: a phone's multi-picture JPEG).
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "BMP": "BMP", "TIFF": "TIFF",
           "WEBP": "WebP", "GIF": "GIF"}  # fmt: skip
PILLOW_PLUGINS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")  # the only ones Pillow may try
OPENCV_FORMATS = {"PNG", "JPEG", "BMP", "TIFF", "WEBP"}
SUPPORTED = "PNG, JPEG, BMP, TIFF, WebP and GIF"
EXIF_ORIENTATION = 0x0112
PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PLAIN_MODES = {"1", "L", "P", "RGB", "CMYK", "YCbCr"}  # 8-bit, no alpha: decoded as is
IGNORE_ORIENTATION = cv2.IMREAD_IGNORE_ORIENTATION  # we apply EXIF ourselves, for every path
REDUCED = {
    (1, True): cv2.IMREAD_GRAYSCALE,
    (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    (1, False): cv2.IMREAD_COLOR,
    (2, False): cv2.IMREAD_REDUCED_COLOR_2,
    (4, False): cv2.IMREAD_REDUCED_COLOR_4,
    (8, False): cv2.IMREAD_REDUCED_COLOR_8,
}

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "DecodedImage",
    "ImageReadError",
    "decode_file",
    "decode_image",
    "pil_to_array",
    "read_image",
    "to_uint8_bgr_or_gray",
]


@dataclass(frozen=True)
class DecodedImage:
    """Pixels as decoded (maybe reduced), and the size of the full image (upright)."""

    pixels: np.ndarray  # uint8 grey HxW or BGR HxWx3
    size: tuple[int, int]  # (width, height) of the image as a person sees it

    def to_full(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, w, h) in `pixels` as a box in the full image's pixels."""
        h, w = self.pixels.shape[:2]
        if (w, h) == self.size:
            return box
        sx, sy = self.size[0] / w, self.size[1] / h
        x, y, bw, bh = box
        x0, y0 = int(x * sx), int(y * sy)
        x1 = min(self.size[0], int(np.ceil((x + bw) * sx)))
        y1 = min(self.size[1], int(np.ceil((y + bh) * sy)))
        return x0, y0, x1 - x0, y1 - y0


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, grey: bool = False) -> np.ndarray:
    """Read an image file into a uint8 BGR (HxWx3) or gray (HxW) array, or raise ImageReadError.

    Full size; `grey` decodes straight to grey (colour images too).
    """
    return decode_file(path, max_pixels, grey=grey, min_side=None).pixels


def decode_file(
    path: str | Path,
    max_pixels: int = MAX_PIXELS,
    grey: bool = False,
    min_side: int | None = MIN_DECODED_SIDE,
) -> DecodedImage:
    """Decode an image file, a big JPEG at a reduced size whose long side stays >= min_side
    (None: full size), or raise ImageReadError with a one-line reason."""
    with open_regular_file(path, max_pixels * BYTES_PER_PIXEL + FILE_SLACK) as file:
        return _decode(file, path, max_pixels, grey, min_side)


def decode_image(data: bytes, path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """`read_image` for bytes already in memory (an upload); `path` names them in errors."""
    if len(data) > max_pixels * BYTES_PER_PIXEL + FILE_SLACK:
        raise ImageReadError(path, too_big(len(data), max_pixels * BYTES_PER_PIXEL + FILE_SLACK))
    return _decode(MemoryFile(path, data), path, max_pixels, grey=False, min_side=None).pixels


def _decode(
    file: RegularFile | MemoryFile,
    path: str | Path,
    max_pixels: int,
    grey: bool,
    min_side: int | None,
) -> DecodedImage:
    """The checks and the decoding, from an open file or bytes in memory."""
    header = _open_header(path, file)
    width, height = header.size
    if width * height > max_pixels:
        raise ImageReadError(
            path,
            f"{width}x{height} is {width * height:,} pixels, over the pixel limit of "
            f"{max_pixels:,} (raise it with --max-pixels if the image is genuine)",
        )
    if width == 0 or height == 0:
        raise ImageReadError(path, f"the image has no pixels ({width}x{height})")
    depth = _bit_depth(header, file)
    plain = header.mode in PLAIN_MODES and "transparency" not in header.info and depth == 8
    channels = _stored_channels(header)
    need = width * height * channels * ((depth + 7) // 8)
    if not plain and need > max_pixels * BYTES_PER_PIXEL:
        raise ImageReadError(
            path,
            f"{width}x{height} with {channels} channels of {depth} bits takes {need:,} "
            f"bytes to decode, over the {max_pixels * BYTES_PER_PIXEL:,} that the pixel "
            "limit allows (raise it with --max-pixels if the image is genuine)",
        )
    orientation = _orientation(header)
    try:
        image = None
        if _opencv_can_decode(header, file):
            if plain:
                grey_out = grey or header.mode in ("1", "L")
                k = _reduction(header, min_side)
                shape = (-(-height // k), -(-width // k)) + (() if grey_out else (3,))
                flags = REDUCED[k, grey_out] | IGNORE_ORIENTATION
                image = _opencv_decode(file, flags, shape, np.uint8)
            else:  # 16-bit, alpha, float: as stored, converted below
                shape = _unchanged_shape(header, depth)
                dtype = np.uint16 if depth == 16 else np.uint8
                image = _opencv_decode(file, cv2.IMREAD_UNCHANGED, shape, dtype)
        if image is None:  # Pillow's format, or OpenCV refused it: Pillow decides
            image = _decode_with_pillow(path, header)
            orientation = 1  # exif_transpose did it
        image = to_uint8_bgr_or_gray(image, grey=grey)
    except MemoryError:
        reason = f"not enough memory to decode {width}x{height}"
        raise ImageReadError(path, reason) from None
    image = upright(image, orientation)
    size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return DecodedImage(image, size)


def _opencv_decode(
    file: RegularFile | MemoryFile, flags: int, shape: tuple[int, ...] | None, dtype: type
) -> np.ndarray | None:
    """OpenCV's decoder; None when it cannot (Pillow then decides, and says why).

    A big image is decoded straight into an array made here, from the open file: decoding
    from bytes in memory would hold the image twice at its peak (OpenCV's own buffer, then
    the copy into numpy), and the compressed bytes too.
    """
    where = file.fd_path
    if shape is not None and where is not None and np.prod(shape[:2]) >= DIRECT_PIXELS:
        try:
            if cv2.haveImageReader(where):  # else imread would hand back `out` untouched
                out = np.empty(shape, dtype)
                return cv2.imread(where, out, flags)
        except (cv2.error, TypeError):  # a shape we did not foresee, an older OpenCV
            pass
    try:
        return cv2.imdecode(np.frombuffer(file.read_all(), np.uint8), flags)
    except cv2.error:  # its own limits or an allocation it could not make
        return None


def _unchanged_shape(header: Image.Image, depth: int) -> tuple[int, ...] | None:
    """The shape IMREAD_UNCHANGED gives, where it is sure: else None (OpenCV allocates)."""
    width, height = header.size
    if depth not in (8, 16) or "transparency" in header.info:
        return None
    channels = {"RGBA": 4, "RGB": 3, "L": 1, "I;16": 1, "I;16B": 1, "I;16L": 1}.get(header.mode)
    if channels is None:
        return None
    return (height, width) if channels == 1 else (height, width, channels)


def _open_header(path: str | Path, file: RegularFile | MemoryFile) -> Image.Image:
    """Pillow's lazy open: parses the header (size, mode, EXIF), decodes no pixels."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings: ours are one line per file
            Image.MAX_IMAGE_PIXELS = None  # our limit applies, checked by the caller
            header = Image.open(file.handle, formats=PILLOW_PLUGINS)
    except UnidentifiedImageError:
        reason = f"not an image (unknown or damaged format; {SUPPORTED} are read)"
        raise ImageReadError(path, reason) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageReadError(path, f"not a readable image ({_one_line(error)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if header.format not in FORMATS:  # a plugin's subformat we do not list
        raise ImageReadError(path, f"{header.format} images are not read (only {SUPPORTED})")
    return header


def _bit_depth(header: Image.Image, file: RegularFile | MemoryFile) -> int:
    if header.format == "PNG":
        return max(8, file.pread(1, 24)[0])  # IHDR comes first; 1, 2, 4 bits are expanded
    if header.format == "TIFF":
        bits = header.tag_v2.get(258, (8,))
        return max(8, max(bits) if isinstance(bits, tuple) else int(bits))
    return {"I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(header.mode, 8)


def _stored_channels(header: Image.Image) -> int:
    """Channels of the image decoded as stored (IMREAD_UNCHANGED; palettes expanded)."""
    mode = header.mode
    if mode in ("RGBA", "RGBa", "LA", "La", "PA", "CMYK") or "transparency" in header.info:
        return 4
    if mode in ("RGB", "YCbCr", "P", "LAB", "HSV"):
        return 3
    return 1


def _reduction(header: Image.Image, min_side: int | None) -> int:
    """How much smaller libjpeg may decode this image: 1, 2, 4 or 8."""
    if min_side is None or header.format not in ("JPEG", "MPO"):
        return 1
    longest = max(header.size)
    for k in (8, 4, 2):
        if -(-longest // k) >= min_side:
            return k
    return 1


def _orientation(header: Image.Image) -> int:
    """The EXIF orientation (1-8), where the header has it without decoding (PNG: if early)."""
    if header.format == "PNG" and "exif" not in header.info:
        return 1  # Pillow would decode the whole image to look for a late eXIf chunk
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = header.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block is no reason to refuse the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _opencv_can_decode(header: Image.Image, file: RegularFile | MemoryFile) -> bool:
    if FORMATS[header.format] not in OPENCV_FORMATS and header.format != "MPO":
        return False
    if header.format == "PNG" and file.pread(12, file.size - 12) != PNG_TRAILER:
        return False  # truncated PNG: let Pillow say so (libpng would print to stderr first)
    return True


def _decode_with_pillow(path: str | Path, header: Image.Image) -> np.ndarray:
    """Decode with Pillow into the same layouts OpenCV gives: gray, BGR or BGRA (2-D + alpha)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pil_to_array(ImageOps.exif_transpose(header))  # a GIF's first frame; as shot
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        reason = f"truncated or corrupt image data ({_one_line(error)})"
        raise ImageReadError(path, reason) from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
