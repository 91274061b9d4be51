"""runtime/images.py: awkward images read as a person sees them, bad files refused in one line."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from mnist_edge.runtime import images
from mnist_edge.runtime.images import (
    MIN_DECODED_SIDE,
    ImageReadError,
    decode_file,
    decode_image,
    read_image,
    to_uint8_bgr_or_gray,
)


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


# -- integer paths, straight-to-grey and reduced decoding ----------------------------------


def float_formula(image: np.ndarray) -> np.ndarray:
    """How every image was converted before: through float32 in [0, 1] (kept as the reference)."""
    peak = 65535.0 if image.dtype == np.uint16 else 255.0
    unit = image.astype(np.float32) / peak
    if unit.ndim == 3 and unit.shape[2] == 4:
        alpha = unit[:, :, 3:4]
        unit = unit[:, :, :3] * alpha + (1.0 - alpha)
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def test_integer_conversions_equal_the_float_formula_exhaustively():
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    bgra = np.stack([c, 255 - c, c, a], axis=-1).astype(np.uint8)  # every (colour, alpha) pair
    assert np.array_equal(to_uint8_bgr_or_gray(bgra), float_formula(bgra))
    every16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    assert np.array_equal(to_uint8_bgr_or_gray(every16), float_formula(every16))
    rgba16 = np.random.default_rng(0).integers(0, 65536, (300, 70, 4), dtype=np.uint16)
    assert np.array_equal(to_uint8_bgr_or_gray(rgba16), float_formula(rgba16))  # bands too
    plain = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert to_uint8_bgr_or_gray(plain) is plain  # 8-bit without alpha: no copy at all


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_as_pillow_turns_it(tmp_path, orientation):
    rgb = np.zeros((48, 80, 3), np.uint8)
    rgb[:, :, 0] = np.linspace(0, 255, 80, dtype=np.uint8)[None, :]
    rgb[:, :, 1] = np.linspace(0, 255, 48, dtype=np.uint8)[:, None]
    rgb[5:15, 5:30] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(rgb).save(path, quality=98, exif=exif)

    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    colour = decode_file(path, min_side=None)
    assert colour.pixels.shape == expected.shape
    assert colour.size == (expected.shape[1], expected.shape[0])
    assert np.abs(colour.pixels[:, :, ::-1].astype(int) - expected).mean() < 2
    grey = read_image(path, grey=True)
    assert np.abs(grey.astype(int) - cv2.cvtColor(expected, cv2.COLOR_RGB2GRAY)).mean() < 2


def write_awkward(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    paper = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    colour = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    paths = {name: folder / name for name in
             ["la.png", "rgba.png", "g16.png", "c16.tif", "rgba16.png", "p.gif", "p_trns.png",
              "rgb.png", "grey.png", "rgb.bmp", "rgba.webp"]}  # fmt: skip
    Image.fromarray(np.stack([paper, alpha], -1), "LA").save(paths["la.png"])
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(paths["rgba.png"])
    cv2.imwrite(str(paths["g16.png"]), paper.astype(np.uint16) * 257 + 100)
    cv2.imwrite(str(paths["c16.tif"]), colour.astype(np.uint16) * 250)
    cv2.imwrite(str(paths["rgba16.png"]), np.dstack([colour, alpha]).astype(np.uint16) * 257)
    palette = Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.save(paths["p.gif"], transparency=0)
    palette.save(paths["p_trns.png"], transparency=1)
    Image.fromarray(colour).save(paths["rgb.png"])
    Image.fromarray(paper).save(paths["grey.png"])
    Image.fromarray(colour).save(paths["rgb.bmp"])
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(paths["rgba.webp"], lossless=True)
    return paths


def test_grey_decoding_is_the_colour_result_turned_grey(tmp_path):
    """Straight to grey gives what the recognizer would make of the colour result: the same
    for everything converted here, within a grey level where the decoder converts (libpng)."""
    for name, path in write_awkward(tmp_path).items():
        colour = read_image(path)
        as_grey = colour if colour.ndim == 2 else cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        grey = read_image(path, grey=True)
        assert grey.shape == as_grey.shape, name
        difference = np.abs(grey.astype(int) - as_grey)
        assert difference.max() <= (1 if name in ("rgb.png", "rgb.bmp") else 0), name


def test_big_images_decoded_in_place_as_from_bytes(tmp_path, monkeypatch):
    """Big images are decoded straight into our array: the very pixels of the bytes path."""
    paths = write_awkward(tmp_path)
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.random.default_rng(5).integers(
        0, 256, (2000, 1500, 3), dtype=np.uint8))  # fmt: skip
    paths["photo.jpg"] = tmp_path / "photo.jpg"
    for name, path in paths.items():
        for grey in (False, True):
            monkeypatch.setattr(images, "DIRECT_PIXELS", 10**12)
            from_bytes = decode_file(path, grey=grey)
            monkeypatch.setattr(images, "DIRECT_PIXELS", 1)
            direct = decode_file(path, grey=grey)
            assert np.array_equal(direct.pixels, from_bytes.pixels), (name, grey)
            assert direct.size == from_bytes.size


def test_big_jpeg_decoded_reduced_keeping_the_full_size(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (2250, 3000), dtype=np.uint8)
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: 3000 wide as stored, 2250 wide as seen
    Image.fromarray(frame).save(path, quality=90, exif=exif)

    decoded = decode_file(path, grey=True)
    assert decoded.size == (2250, 3000)
    assert decoded.pixels.shape == (750, 563)  # 1/4: the long side 750 >= MIN_DECODED_SIDE
    assert max(decoded.pixels.shape) >= MIN_DECODED_SIDE
    assert decoded.to_full((0, 0, 563, 750)) == (0, 0, 2250, 3000)
    assert decoded.to_full((100, 200, 10, 20)) == (399, 800, 41, 80)
    assert decode_file(path, min_side=None).pixels.shape == (3000, 2250)
    assert decode_file(path, min_side=3000).pixels.shape[:2] == (3000, 2250)
    assert decode_file(path, min_side=1500).pixels.shape[:2] == (1500, 1125)
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), frame[:480, :640])
    assert decode_file(small).pixels.shape[:2] == (480, 640)  # never below the minimum


def test_only_the_listed_formats_are_decoded(tmp_path):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"
    files = {
        "eps.png": eps,
        "ps.jpg": b"%!PS-Adobe-3.0\n%%Pages: 1\nshowpage\n",
        "pdf.png": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n",
        "svg.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    Image.fromarray(upright_digit()).save(tmp_path / "ppm.png", format="PPM")  # OpenCV reads it
    Image.fromarray(upright_digit()).save(tmp_path / "ico.png", format="ICO")
    Image.fromarray(upright_digit()).save(tmp_path / "tga.jpg", format="TGA")
    for name in [*files, "ppm.png", "ico.png", "tga.jpg"]:
        with pytest.raises(ImageReadError, match="not an image") as caught:
            read_image(tmp_path / name)
        assert "PNG, JPEG, BMP, TIFF, WebP and GIF" in caught.value.reason


def test_pillow_pixel_limit_follows_ours(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((300, 300), 200, np.uint8))
    Image.fromarray(np.full((300, 300), 200, np.uint8)).save(tmp_path / "a.gif")  # Pillow's
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse both
    for name in ("a.png", "a.gif"):
        assert read_image(tmp_path / name).shape == (300, 300)
        with pytest.raises(ImageReadError, match="over the pixel limit of 89,999"):
            read_image(tmp_path / name, max_pixels=89_999)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back as it was


def test_16_bit_colour_counts_its_real_size_against_the_budget(tmp_path):
    """A 16-bit RGBA header within the pixel limit whose decode would take 8 bytes a pixel."""
    header = struct.pack(">IIBBBBB", 6000, 6000, 16, 6, 0, 0, 0)  # 16-bit RGBA
    rows = zlib.compress(b"\x00" * (6000 * 8 + 1) * 2)
    path = tmp_path / "rgba16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b""))  # fmt: skip
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match="288,000,000 bytes to decode, over the 256,000"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_bytes_in_memory_read_as_the_file(tmp_path):
    """An upload (`decode_image(data, name)`) goes the same way as a file, checks included."""
    for name, path in write_awkward(tmp_path).items():
        assert np.array_equal(decode_image(path.read_bytes(), name), read_image(path)), name
    with pytest.raises(ImageReadError, match="not an image") as caught:
        decode_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "up.png")
    assert str(caught.value).startswith("up.png: ")
    with pytest.raises(ImageReadError, match="over the pixel limit"):
        decode_image(bomb_png(tmp_path / "bomb.png", 9000, 9000).read_bytes(), "bomb.png")
