"""The MNIST crop: one digit's ink, cut from the page, in MNIST's layout.

Each digit: its own ink, graded, from the full-resolution frame (or the work copy for big
digits), pen width evened out towards MNIST's, fitted in 20x20 keeping the aspect ratio,
centre of mass at the centre of 28x28.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_edge.runtime.page import MIN_INK, InkPage, rect_kernel, relative_ink
from mnist_edge.runtime.pieces import Piece

MNIST_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
MNIST_SIDE = 28
STROKE_BOX = 40  # crops are worked on at twice the MNIST size, then shrunk (graded edges)
# MNIST's pen width in that box, measured as twice the mean distance of stroke pixels to the
# paper: median 3.3, 1-99 % 2.2-5.2 on the test set. One 3x3 dilation or erosion moves it by
# about 1. Pens well outside MNIST's range are evened out, never MNIST-like ones.
MNIST_STROKE_40 = 3.3
STROKE_TOO_THIN, STROKE_TOO_THICK = 2.2, 5.2
DESCENDER = 1.4  # a digit this many times its line's height is squeezed upright ...
SQUEEZED = 1.2  # ... to this many times the line's height
PAPER_LEVEL = round(MIN_INK / 2 * 255)  # a crop's relative ink up to this (0..255) is paper


def to_mnist_28x28(ink: np.ndarray) -> np.ndarray:
    """One digit's ink (any size, white on black, uint8 or float in [0, 1]) to MNIST's layout.

    Fitted into a 20x20 box keeping the aspect ratio, the pen width evened out towards MNIST's,
    padded to 28x28 with the centre of mass at the centre. float32 in [0, 1].
    """
    ink = ink.astype(np.float32) / 255.0 if ink.dtype == np.uint8 else np.asarray(ink, np.float32)
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32)
    # The box of the visible ink (boundingRect of a mask: cheaper than numpy on small arrays).
    x, y, w, h = cv2.boundingRect((ink > 0.05).view(np.uint8))
    if w == 0:
        return out
    ink = ink[y : y + h, x : x + w]

    # Work at twice MNIST's size: the pen width can be measured and adjusted there.
    scale = STROKE_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    shrink = scale < 1
    big = cv2.resize(ink, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    # Shrinking fades thin strokes; MNIST's strokes are saturated, so bring their cores to 1.
    core = big[big > 0.05]
    if core.size:
        # (The ink is never negative, and neither is what resizing it gives: a minimum is
        # the clip to [0, 1], for less.)
        big = np.minimum(big / max(_quantile(core, 0.9), 0.05), 1.0)
    big = even_out_stroke(big)

    scale = MNIST_BOX / STROKE_BOX
    size = (max(1, round(big.shape[1] * scale)), max(1, round(big.shape[0] * scale)))
    digit = np.minimum(cv2.resize(big, size, interpolation=cv2.INTER_AREA), 1.0)

    # Centre of mass to the centre of the 28x28 image (MNIST's own rule). Measured with the
    # digit in a corner of the output: cv2.moments would take an N x 2 digit for a point list.
    out[: digit.shape[0], : digit.shape[1]] = digit
    moments = cv2.moments(out)
    out[: digit.shape[0], : digit.shape[1]] = 0
    if moments["m00"] <= 0:
        return out
    cy, cx = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    top = min(max(round(MNIST_SIDE / 2 - cy), 0), MNIST_SIDE - digit.shape[0])
    left = min(max(round(MNIST_SIDE / 2 - cx), 0), MNIST_SIDE - digit.shape[1])
    out[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return out


def at_line_height(ink: np.ndarray, height: float, line_height: float) -> np.ndarray:
    """A digit's ink squeezed upright to about its line's height when it is far taller (a 7
    or a 9 with a long tail below the line): fitted whole into MNIST's box, such a digit
    keeps only a sliver of its bar or loop and reads "1". `height` is the digit's own box
    height, `line_height` a digit's height in its line (reading_order.line_sizes)."""
    if height < DESCENDER * line_height:
        return ink
    rows = max(1, round(ink.shape[0] * SQUEEZED * line_height / height))
    return cv2.resize(ink, (ink.shape[1], rows), interpolation=cv2.INTER_AREA)


def even_out_stroke(big: np.ndarray) -> np.ndarray:
    """Thicken a hair-line pen or thin a marker towards MNIST's pen width (40-pixel box)."""
    mask = (big > 0.5).view(np.uint8)
    count = cv2.countNonZero(mask)
    if count < 4:
        return big
    # Padded: the tight crop's own edges are not paper to the distance transform.
    mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    # Mean distance to the stroke's edge, doubled: the typical pen width in pixels. (Paper
    # pixels are at distance 0, so the sum over the image is the sum over the stroke.)
    width = 2.0 * cv2.sumElems(cv2.distanceTransform(mask, cv2.DIST_L2, 3))[0] / count
    if width < STROKE_TOO_THIN:
        r = int(np.clip(round(MNIST_STROKE_40 - width), 1, 2))
        return cv2.dilate(big, rect_kernel(2 * r + 1, 2 * r + 1))
    if width > STROKE_TOO_THICK:
        # Only one step: a deeper erosion would wipe out the thinner parts of the digit.
        return cv2.erode(big, rect_kernel(3, 3))
    return big


def _quantile(values: np.ndarray, q: float) -> float:
    """np.percentile without its overhead (it costs more than the rest of a crop)."""
    k = int(q * (values.size - 1))
    return float(np.partition(values, k)[k])


def _stretch(ink: np.ndarray, low: int) -> np.ndarray:
    """Graded ink (0..255) to MNIST's range, float32: paper (`low` and below) 0, the stroke's
    core 1 (MNIST strokes saturate)."""
    # The stroke's level (70 % of its pixels are fainter) from the histogram of the levels
    # above the paper: cheaper than sorting the pixels.
    above = np.cumsum(cv2.calcHist([ink], [0], None, [256], [0, 256]).ravel()[low + 1 :])
    if above[-1] == 0:
        return np.zeros(ink.shape, np.float32)
    high = low + 1 + int(np.searchsorted(above, int(0.7 * (above[-1] - 1)) + 1))
    high = max(high, low + 13)
    out = ink.astype(np.float32)
    out -= low
    out *= 1.0 / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)


def digit_ink(
    page: InkPage, pieces: list[Piece], box: tuple[int, int, int, int], clip_x: bool = False
) -> np.ndarray:
    """One digit's graded ink, white on black, at up to twice STROKE_BOX pixels.

    From the full-resolution frame when the work copy is too coarse for that. Only pixels
    near the digit's own regions count, so a neighbour reaching into the box or a speck
    does not end up in the crop. `clip_x`: nothing left or right of the box (a part of a
    split region, whose neighbour's ink touches it).
    """
    x, y, bw, bh = box
    m = 2  # pixels of margin (work scale) for the soft edges of the strokes
    wh, ww = page.work.shape
    xa, ya, xb, yb = max(x - m, 0), max(y - m, 0), min(x + bw + m, ww), min(y + bh + m, wh)
    mine = np.zeros((yb - ya, xb - xa), np.uint8)
    for px, py, pw, ph, _, mask, _ in pieces:
        mine[py - ya : py - ya + ph, px - xa : px - xa + pw] |= mask
    mine = cv2.dilate(mine, rect_kernel(5, 5))
    if clip_x:
        mine[:, : x - xa] = 0
        mine[:, x + bw - xa :] = 0
    if page.not_lines is not None:
        mine &= page.not_lines[ya:yb, xa:xb]
    if max(bw, bh) >= STROKE_BOX or page.scale == 1.0:
        return _stretch(cv2.multiply(page.ink8[ya:yb, xa:xb], mine), PAPER_LEVEL)
    # The same region from the full-resolution frame, shrunk to at most 2 * STROKE_BOX.
    s = page.scale
    gray = page.gray
    region = gray[int(ya / s) : int(np.ceil(yb / s)), int(xa / s) : int(np.ceil(xb / s))]
    target = min(1.0, 2 * STROKE_BOX / max(region.shape))
    size = (max(1, round(region.shape[1] * target)), max(1, round(region.shape[0] * target)))
    if target < 1:
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    paper = cv2.resize(page.paper[ya:yb, xa:xb], size, interpolation=cv2.INTER_LINEAR)
    mine = cv2.resize(mine, size, interpolation=cv2.INTER_NEAREST)
    return _stretch(cv2.multiply(relative_ink(region, paper), mine), PAPER_LEVEL)
