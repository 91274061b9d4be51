"""Read image files robustly, and expand the PATH arguments of `mnist-edge predict`.

`read_image` returns what the digit finder takes: a uint8 array, BGR (HxWx3) or gray (HxW).
OpenCV decodes what it reads well (PNG, JPEG, BMP, TIFF, WebP, including 16-bit); Pillow reads
the rest (GIF, EXIF-rotated JPEG, odd modes). Before anything is decoded, Pillow reads only the
header so an image over the pixel limit (a decompression bomb: a few KB that decode to GBs) is
refused without allocating it.

Awkward but valid images are read as a person sees them: 16-bit scaled to 8-bit, transparency
composited onto white paper (transparent paper, opaque ink), palettes expanded, EXIF rotation
applied.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".gif")

# 64 MP: more than a 48 MP phone photo, far less than a bomb. A 64 MP BGR image is ~190 MB.
MAX_PIXELS = 64_000_000

# Formats OpenCV decodes itself; anything else Pillow identifies goes through Pillow.
OPENCV_FORMATS = {"PNG", "JPEG", "BMP", "TIFF", "WEBP"}
EXIF_ORIENTATION = 0x0112
PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class ImageReadError(Exception):
    """A file that cannot be used as an image; `reason` is one line, str() names the file too."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file into a uint8 BGR (HxWx3) or gray (HxW) array, or raise ImageReadError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image file") from None
    except OSError as error:
        raise ImageReadError(path, f"cannot read the file ({error.strerror or error})") from None
    if not data:
        raise ImageReadError(path, "the file is empty")
    return decode_image(data, path, max_pixels)


def decode_image(data: bytes, path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """`read_image` for bytes already in memory (an upload); `path` names them in errors."""
    path = Path(path)
    header = _open_header(path, data)
    width, height = header.size
    if width * height > max_pixels:
        raise ImageReadError(
            path,
            f"{width}x{height} is {width * height:,} pixels, over the pixel limit of "
            f"{max_pixels:,} (raise it with --max-pixels if the image is genuine)",
        )
    if width == 0 or height == 0:
        raise ImageReadError(path, f"the image has no pixels ({width}x{height})")

    image = None
    if _opencv_can_decode(header, data):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:  # Pillow's format, or OpenCV refused it: Pillow decides
        image = _decode_with_pillow(path, header)
    return to_uint8_bgr_or_gray(image)


def _open_header(path: Path, data: bytes) -> Image.Image:
    """Pillow's lazy open: parses the header (size, mode, EXIF), decodes no pixels."""
    try:
        with warnings.catch_warnings():
            # We check the size ourselves, with our own limit and a message naming the file.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageReadError(
            path, "the image is far over the pixel limit (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (unknown or damaged format)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageReadError(path, f"not a readable image ({_one_line(error)})") from None


def _opencv_can_decode(header: Image.Image, data: bytes) -> bool:
    if header.format not in OPENCV_FORMATS:
        return False
    if header.format == "JPEG" and header.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return False  # IMREAD_UNCHANGED ignores EXIF orientation; Pillow applies it
    if header.format == "PNG" and not data.endswith(PNG_TRAILER):
        return False  # truncated PNG: let Pillow say so (libpng would print to stderr first)
    return True


def _decode_with_pillow(path: Path, header: Image.Image) -> np.ndarray:
    """Decode with Pillow into the same layouts OpenCV gives: gray, BGR or BGRA (2-D + alpha)."""
    try:
        return pil_to_array(ImageOps.exif_transpose(header))  # a GIF's first frame; as shot
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        reason = f"truncated or corrupt image data ({_one_line(error)})"
        raise ImageReadError(path, reason) from None


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


def to_uint8_bgr_or_gray(image: np.ndarray) -> np.ndarray:
    """Scale any bit depth to uint8, and composite an alpha channel onto white paper."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 2:  # gray + alpha: as BGRA, composited below
        image = image[:, :, [0, 0, 0, 1]]
    image = _scale_to_unit(image)  # float32 in [0, 1]
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4]
        # Transparent means paper: blend onto white, so opaque ink stays and the rest is blank.
        image = image[:, :, :3] * alpha + (1.0 - alpha)
        if _is_gray(image):
            image = image[:, :, 0]
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _scale_to_unit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.integer):  # Pillow's "I" mode: 16-bit data in int32
        peak = 255.0 if image.max(initial=0) <= 255 else 65535.0
        return np.clip(image.astype(np.float32) / peak, 0.0, 1.0)
    image = image.astype(np.float32)  # float images: [0, 1] if they fit, else 0..255
    peak = 1.0 if np.nanmax(image, initial=0.0) <= 1.0 else 255.0
    return np.clip(np.nan_to_num(image / peak), 0.0, 1.0)


def _is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1])) and bool(
        np.array_equal(image[:, :, 1], image[:, :, 2])
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# -- PATH arguments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """One input of `predict`: `shown` is the path as given (inside a folder: folder/relative)."""

    shown: str
    path: Path | None
    error: str | None = None


def expand_inputs(arguments: list[str] | tuple[str, ...]) -> list[ImageInput]:
    """Files as given, folders searched recursively for images, globs expanded; in order.

    A missing path, a folder without images or a glob matching no image becomes an ImageInput
    with an error, so the caller reports it and goes on with the others.
    """
    inputs: list[ImageInput] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            inputs.extend(_folder_images(argument))
        elif path.exists():
            inputs.append(ImageInput(argument, path))
        elif glob.has_magic(argument):
            inputs.extend(_glob_images(argument))
        else:
            inputs.append(ImageInput(argument, None, "no such file or directory"))
    return inputs


def _folder_images(folder: str) -> list[ImageInput]:
    root = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_image_name(name):
                relative = os.path.relpath(os.path.join(dirpath, name), root)
                found.append(ImageInput(os.path.join(folder, relative), Path(dirpath) / name))
    if not found:
        return [ImageInput(folder, None, f"folder has no images ({', '.join(IMAGE_SUFFIXES)})")]
    return found


def _glob_images(pattern: str) -> list[ImageInput]:
    found = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        if os.path.isdir(match):
            found.extend(_folder_images(match))
        elif _is_image_name(match):
            found.append(ImageInput(match, Path(match)))
    if not found:
        return [ImageInput(pattern, None, "no image file matches this pattern")]
    return found


def _is_image_name(name: str) -> bool:
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
