"""runtime/images.py: awkward images read as a person sees them, bad files refused in one line."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mnist_edge.runtime.images import ImageReadError, read_image
from mnist_edge.runtime.inputs import expand_inputs


def upright_digit(size: int = 64) -> np.ndarray:
    """A dark '7'-like stroke on white paper, asymmetric so a rotation is visible."""
    image = np.full((size, size), 235, np.uint8)
    cv2.line(image, (10, 12), (54, 12), 20, 6)
    cv2.line(image, (54, 12), (26, 56), 20, 6)
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG header claiming width x height 1-bit pixels, followed by a few rows of data."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 4)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )
    return path


def test_gray_with_alpha_is_composited_onto_white(tmp_path):
    ink = np.zeros((40, 40), np.uint8)
    ink[10:30, 18:22] = 255  # opaque stroke, transparent elsewhere
    la = np.stack([np.full_like(ink, 30), ink], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")

    image = read_image(tmp_path / "la.png")
    assert image.dtype == np.uint8 and image.ndim == 2
    assert image[0, 0] == 255  # transparent paper -> white
    assert image[20, 20] == 30  # opaque ink kept


def test_rgba_transparent_paper_opaque_ink(tmp_path):
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)  # RGB: the ink colour everywhere, alpha decides
    rgba[5:25, 14:16, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")

    image = read_image(tmp_path / "rgba.png")
    assert image.shape == (30, 30, 3)
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[10, 15].tolist() == [10, 40, 200]  # BGR


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_not_clipped(tmp_path, suffix):
    gray16 = np.zeros((8, 8), np.uint16)
    gray16[:, 4:] = 65535
    gray16[0, 0] = 32896  # 128 * 257
    path = tmp_path / f"g16{suffix}"
    assert cv2.imwrite(str(path), gray16)

    image = read_image(path)
    assert image.dtype == np.uint8
    assert image[0, 0] == 128 and image[0, 5] == 255 and image[1, 0] == 0


def test_16_bit_colour(tmp_path):
    bgr16 = np.zeros((6, 6, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    assert cv2.imwrite(str(tmp_path / "c16.png"), bgr16)
    assert read_image(tmp_path / "c16.png")[0, 0].tolist() == [0, 0, 255]


def test_palette_gif_with_transparency(tmp_path):
    rgb = np.full((20, 20, 3), 250, np.uint8)
    rgb[5:15, 8:12] = (0, 0, 0)
    image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    paper_index = image.getpixel((0, 0))
    image.save(tmp_path / "p.gif", transparency=paper_index)

    read = read_image(tmp_path / "p.gif")
    assert read[0, 0].max() == 255 and read[10, 10].max() < 30


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    upright = upright_digit()
    # Stored turned a quarter to the left, with EXIF orientation 6 ("rotate 90 CW to view").
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", quality=95, exif=exif)

    read = read_image(tmp_path / "rotated.jpg")
    gray = read if read.ndim == 2 else cv2.cvtColor(read, cv2.COLOR_BGR2GRAY)
    assert gray.shape == upright.shape
    diff_upright = np.abs(gray.astype(int) - upright).mean()
    diff_as_stored = np.abs(gray.astype(int) - np.asarray(stored)).mean()
    assert diff_upright < 5 < diff_as_stored


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is text\n", "not an image"),
        ("truncated_png", "truncated"),
        ("truncated_jpeg", "truncated"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content in ("truncated_png", "truncated_jpeg"):
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        ok, encoded = cv2.imencode(".png" if content == "truncated_png" else ".jpg", noise)
        content = encoded.tobytes()[: len(encoded) // 2]
    path.write_bytes(content)

    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert reason in caught.value.reason
    assert message.startswith(str(path)) and "\n" not in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("side", [9_000, 100_000])  # over our limit; over Pillow's own too
def test_decompression_bomb_refused_before_decoding(tmp_path, side):
    path = bomb_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match="pixel limit"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # decoding even one byte per pixel would be 81 MB or more


def test_pixel_limit_is_adjustable(tmp_path):
    cv2.imwrite(str(tmp_path / "small.png"), upright_digit())
    assert read_image(tmp_path / "small.png", max_pixels=64 * 64).shape == (64, 64)
    with pytest.raises(ImageReadError, match="over the pixel limit"):
        read_image(tmp_path / "small.png", max_pixels=64 * 64 - 1)


def test_expand_inputs_files_folders_globs_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans" / "deeper").mkdir(parents=True)
    (tmp_path / "scans" / ".hidden").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ["scans/b.PNG", "scans/deeper/a.jpg", "scans/notes.txt", "scans/.hidden/x.png",
                 "one.gif", "two.webp"]:  # fmt: skip
        (tmp_path / name).write_bytes(b"x")

    inputs = expand_inputs(["scans", "*.webp", "one.gif", "missing.png", "empty", "*.tiff"])
    shown = [(item.shown, item.error is None) for item in inputs]
    assert shown == [
        ("scans/b.PNG", True),
        ("scans/deeper/a.jpg", True),
        ("two.webp", True),
        ("one.gif", True),
        ("missing.png", False),
        ("empty", False),
        ("*.tiff", False),
    ]
    errors = {item.shown: item.error for item in inputs if item.error}
    assert "no such file" in errors["missing.png"]
    assert "no images" in errors["empty"]
    assert "matches" in errors["*.tiff"]
    assert inputs[1].path == Path("scans/deeper/a.jpg")
