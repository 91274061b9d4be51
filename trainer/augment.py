"""Random distortions of 28x28 training digits: slant, rotation, size, position, pen width.

MNIST's writers, pens and scanner are one narrow slice of handwriting; the dense network has no
built-in tolerance for a slant, a thicker pen or an off-centre stroke, so it is shown them.
Each training image is distorted afresh every time it is drawn (per image, per epoch):

- an affine map about MNIST's centre of mass (14, 14): rotation, shear (slant), scale, a
  little aspect change, and a shift of a pixel or two;
- an elastic wobble: a smooth random displacement field (a 4x4 grid of random offsets,
  interpolated over the image);
- pen width (off by default: no gain on the development sets): blended towards a 3x3 grey
  dilation (thicker) or erosion (thinner).

The magnitudes were chosen on MNIST's validation split and USPS (docs/recipe.md).

All of it is NumPy and OpenCV on the uint8 images, done for a whole chunk of batches at once:
the images are tiled into one mosaic and resampled by a single `cv2.remap` (bilinear), so the
cost per image is a fraction of a microsecond instead of the tens a per-image call costs.
`trainer/chunked_fit.py` runs it in tf.data's background thread while the compiled training
call works on the previous chunk: on two cores it costs the training loop almost nothing.

Pixels stay uint8 in 0..255 (bilinear interpolation and the blend are convex combinations),
28x28, white on black: the input contract of `mnist_edge.trainer.data` is unchanged. Labels
are untouched: every distortion is small enough to keep a digit the same digit (a 6 is not
rotated into a 9; a test checks the distorted images are still read correctly).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import pairwise

import cv2
import numpy as np

SIDE = 28
PIVOT = 14.0  # MNIST's mean centre of mass (row and column, pixel centres at integers)
TILES_PER_ROW = 64  # mosaic width in tiles (OpenCV maps must stay under 32,767 pixels a side)
ELASTIC_GRID = 4  # control points per side of the elastic displacement field


@dataclass(frozen=True)
class Distortion:
    """How strong each distortion is; each is drawn uniformly in [-value, value]."""

    rotation_deg: float = 10.0
    shear: float = 0.25  # horizontal slant, pixels per pixel of height (0.25 is 14 degrees)
    scale: float = 0.12  # overall size, log-uniform in [1 / (1 + s), 1 + s]
    aspect: float = 0.08  # width against height, log-uniform likewise
    shift_px: float = 1.5
    pen: float = 0.0  # fraction of a 3x3 dilation (> 0) or erosion (< 0); off: no gain measured
    elastic_px: float = 1.0  # standard deviation of the coarse grid's offsets, pixels

    def describe(self) -> dict:
        return asdict(self)


# `mnist-edge train`'s default, chosen on MNIST's validation split and USPS (docs/recipe.md).
DEFAULT_DISTORTION = Distortion()


def _tile(images: np.ndarray) -> np.ndarray:
    """[n, 28, 28] (n a multiple of TILES_PER_ROW) to one [rows * 28, TILES_PER_ROW * 28] image."""
    rows = len(images) // TILES_PER_ROW
    return np.ascontiguousarray(
        images.reshape(rows, TILES_PER_ROW, SIDE, SIDE)
        .transpose(0, 2, 1, 3)
        .reshape(rows * SIDE, TILES_PER_ROW * SIDE)
    )


def _untile(mosaic: np.ndarray, n: int) -> np.ndarray:
    rows = mosaic.shape[0] // SIDE
    tiles = mosaic.reshape(rows, SIDE, TILES_PER_ROW, SIDE).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(tiles.reshape(-1, SIDE, SIDE)[:n])


def _per_tile(values: np.ndarray) -> np.ndarray:
    """One value per image, shaped to broadcast over the mosaic's [rows, 28, tiles, 28] view."""
    return values.reshape(-1, 1, TILES_PER_ROW, 1).astype(np.float32)


CONTROL = np.linspace(0, SIDE - 1, ELASTIC_GRID)  # control points along a side: 0, 9, 18, 27
# [28, ELASTIC_GRID]: linear interpolation from the control points to the 28 pixels.
ELASTIC_UP = np.maximum(
    0.0,
    1.0 - np.abs(np.linspace(0, ELASTIC_GRID - 1, SIDE)[:, None] - np.arange(ELASTIC_GRID)[None]),
)


def affine_matrices(n: int, rng: np.random.Generator, d: Distortion) -> np.ndarray:
    """[n, 2, 2] random linear maps (rotation, shear, scale, aspect) taking a digit's pixel
    offsets from the pivot to where they land."""
    angle = np.deg2rad(rng.uniform(-d.rotation_deg, d.rotation_deg, n))
    shear = rng.uniform(-d.shear, d.shear, n)
    size = np.exp(rng.uniform(-np.log1p(d.scale), np.log1p(d.scale), n))
    aspect = np.exp(rng.uniform(-np.log1p(d.aspect), np.log1p(d.aspect), n))
    sx, sy = size * np.sqrt(aspect), size / np.sqrt(aspect)
    cos, sin = np.cos(angle), np.sin(angle)
    # rotation @ shear @ scale, in (x, y) = (column, row) coordinates; shear moves the top
    # of a digit right or left as x' = x + shear * (pivot row - row), a slant.
    a = np.empty((n, 2, 2))
    a[:, 0, 0] = cos * sx
    a[:, 0, 1] = -(cos * shear + sin) * sy
    a[:, 1, 0] = sin * sx
    a[:, 1, 1] = (cos - sin * shear) * sy
    return a


@lru_cache(maxsize=4)
def tile_origins(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The mosaic coordinates (x, y) of each pixel's tile corner, [rows * 28, tiles * 28]."""
    x = np.repeat(np.arange(TILES_PER_ROW, dtype=np.float32) * SIDE, SIDE)
    y = np.repeat(np.arange(rows, dtype=np.float32) * SIDE, SIDE)
    shape = (rows * SIDE, TILES_PER_ROW * SIDE)
    return np.broadcast_to(x[None, :], shape).copy(), np.broadcast_to(y[:, None], shape).copy()


def change_pen_width(mosaic: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Blend each tile towards its 3x3 grey dilation (amount > 0) or erosion (amount < 0).

    On the mosaic a tile's outermost pixels see their neighbour's, which matters only where
    both carry ink at the edge (about 1 % of MNIST digits reach it, by a pixel or two).
    """
    kernel = np.ones((3, 3), np.uint8)
    size = (mosaic.shape[1], mosaic.shape[0])
    amount = amount.reshape(-1, TILES_PER_ROW).astype(np.float32)
    target = cv2.erode(mosaic, kernel)
    thicker = cv2.resize((amount > 0).view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    cv2.copyTo(cv2.dilate(mosaic, kernel), thicker, target)
    weight = cv2.resize(np.abs(amount), size, interpolation=cv2.INTER_NEAREST)
    return cv2.blendLinear(mosaic, target, 1 - weight, weight)


def upsample(coarse: np.ndarray) -> np.ndarray:
    """[..., rows, G, tiles, G] values at each tile's control points to [..., rows, 28, tiles,
    28]: bilinear interpolation across each tile, as two small matrix products."""
    up = ELASTIC_UP.astype(np.float32)
    *lead, rows, g, tiles, _ = coarse.shape
    across = coarse.astype(np.float32) @ up.T  # along each row: [..., rows, G, tiles, 28]
    down = up @ across.reshape(*lead, rows, g, tiles * SIDE)  # and down each column
    return down.reshape(*lead, rows, SIDE, tiles, SIDE)


def distort(
    images: np.ndarray, rng: np.random.Generator, d: Distortion, parts: int = 1
) -> np.ndarray:
    """Distort each uint8 [n, 28, 28] image by its own random draw of `d`; uint8 out.

    `parts` > 1 warps that many bands of the mosaic on as many threads (NumPy and OpenCV
    let go of Python's lock): the same pixels, bit for bit, sooner. The random draws are
    made first, for all images in one order, whatever `parts` is.
    """
    if images.dtype != np.uint8 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(
            f"distort takes uint8 [n, 28, 28] images, got {images.dtype} {images.shape}"
        )
    n = len(images)
    padded = -(-n // TILES_PER_ROW) * TILES_PER_ROW
    batch = np.zeros((padded, SIDE, SIDE), np.uint8)
    batch[:n] = images
    mosaic = _tile(batch)
    rows = padded // TILES_PER_ROW

    # Every draw is made, used or not, so one distortion's setting never changes another's.
    pen = rng.uniform(-d.pen, d.pen, padded)
    inverse = np.linalg.inv(affine_matrices(padded, rng, d))
    shift = rng.uniform(-d.shift_px, d.shift_px, (padded, 2))
    offsets = rng.normal(0.0, d.elastic_px, (2, rows, ELASTIC_GRID, TILES_PER_ROW, ELASTIC_GRID))
    if d.pen > 0:
        mosaic = change_pen_width(mosaic, pen)
    centre = PIVOT - np.einsum("nij,nj->ni", inverse, shift)

    warped = np.empty_like(mosaic)
    bands = np.linspace(0, rows, min(parts, rows) + 1).round().astype(int)
    work = [(warped, mosaic, inverse, centre, offsets, a, b) for a, b in pairwise(bands)]
    if len(work) == 1:
        _warp_band(*work[0])
    else:
        list(_band_threads(len(work)).map(lambda job: _warp_band(*job), work))
    return _untile(warped, n)


def _warp_band(warped, mosaic, inverse, centre, offsets, first: int, end: int) -> None:
    """Tile rows first..end of the mosaic into `warped`, sampled from the whole mosaic in its
    own coordinates (coordinates within the band would round differently)."""
    # Output pixel p samples the source at q = A^-1 (p - pivot - shift) + pivot, plus the
    # elastic offset. Both are bilinear over the tile (the affine part is linear), so q is
    # computed at the 4x4 control points and interpolated from there: exact, and far cheaper
    # than per pixel. Clipped to the tile, what falls outside it takes the tile's border pixels
    # (black in MNIST), never a neighbour's; then moved to the tile's place in the mosaic.
    tiles = slice(first * TILES_PER_ROW, end * TILES_PER_ROW)
    pixels = slice(first * SIDE, end * SIDE)
    control = (CONTROL - PIVOT).astype(np.float32)
    coarse = offsets[:, first:end].astype(np.float32)  # [2 (x, y), rows, G, tiles, G]
    for k in (0, 1):
        coarse[k] += _per_tile(inverse[tiles, k, 0]) * control[None, None, None, :]
        coarse[k] += _per_tile(inverse[tiles, k, 1]) * control[None, :, None, None]
        coarse[k] += _per_tile(centre[tiles, k])
    sources = upsample(coarse)
    np.clip(sources, 0, SIDE - 1, out=sources)
    shape = ((end - first) * SIDE, TILES_PER_ROW * SIDE)
    maps = [source.reshape(shape) for source in sources]
    for source, origin in zip(maps, tile_origins(len(mosaic) // SIDE), strict=True):
        cv2.add(source, origin[pixels], dst=source)
    cv2.remap(mosaic, maps[0], maps[1], cv2.INTER_LINEAR, dst=warped[pixels])


@lru_cache(maxsize=1)
def _band_threads(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix="distort")
