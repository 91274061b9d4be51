"""From a camera frame to MNIST-style 28x28 digit crops, with OpenCV and numpy only.

A model trained on MNIST has only seen white, centred, size-normalised digits on pure black.
A photo has dark ink on grey-ish paper under uneven light, at any size and place, with dirt,
ruled lines and the page edge around. The steps, each on the cheapest image that will do:

1. grey; polarity: ink is whatever deviates from the local median - darker on paper by
   default, lighter on a blackboard or a white-on-black image, which is then inverted so the
   rest always sees dark ink on light paper; a small MNIST-like image is passed through;
2. a work copy WORK_SIDE pixels long made of the darkest pixel of each block (a hair line
   keeps its darkness); paper background: a grey closing (max then min filter) wider than
   any pen stroke, at a quarter that size, removes the ink and keeps the light field, shadows
   included; ink = how much darker than the paper a pixel is, relative to the paper;
3. threshold with hysteresis (weak pixels joined to strong ones); remove ruled and squared
   paper's lines but not the strokes they cross; drop specks, dashes and what lies along
   the frame's border (page edge, desk);
4. merge the pieces of one digit (a broken stroke, a 5's bar), never neighbours side by
   side; order by lines, then left to right;
5. each digit: its own ink, graded, from the full-resolution frame, pen width evened out
   towards MNIST's, fitted in 20x20 keeping the aspect ratio, centre of mass at the centre
   of 28x28. A blank frame gives no digits.
"""

from __future__ import annotations

import math
import statistics
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

import cv2
import numpy as np

WORK_SIDE = 320  # longer side of the image digits are found in (a 640x480 frame: halved)
MNIST_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
MNIST_SIDE = 28
STROKE_BOX = 40  # crops are worked on at twice the MNIST size, then shrunk (graded edges)
# MNIST's pen width in that box, measured as twice the mean distance of stroke pixels to the
# paper: median 3.3, 1-99 % 2.2-5.2 on the test set. One 3x3 dilation or erosion moves it by
# about 1. Pens well outside MNIST's range are evened out, never MNIST-like ones.
MNIST_STROKE_40 = 3.3
STROKE_TOO_THIN, STROKE_TOO_THICK = 2.2, 5.2
MIN_INK = 0.12  # a pixel is ink candidate when it is this much darker than the paper (relative)
PAPER_LEVEL = round(MIN_INK / 2 * 255)  # a crop's relative ink up to this (0..255) is paper
STRONG_INK = 0.2  # ... and a region needs some pixels this dark (or Otsu's level) to count
MAX_PIECES = 100  # ink pieces considered per frame, the biggest first
SLABS = 4  # ruled lines are looked for in this many vertical slabs (and horizontal ones)


@lru_cache(maxsize=32)
def _kernel(width: int, height: int) -> np.ndarray:
    """Rectangular structuring elements are made once, not per frame."""
    return cv2.getStructuringElement(cv2.MORPH_RECT, (width, height))


def to_gray(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grey; uint8, 16-bit, or float (0..1 or 0..255) to grey uint8."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype.kind == "f":
        top = 255.0 if frame.size and float(frame.max()) <= 1.0 else 1.0
        frame = np.clip(np.rint(frame * top), 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3:
        return np.ascontiguousarray(frame[:, :, 0])
    return frame


def mnist_like_digit(gray: np.ndarray) -> np.ndarray | None:
    """A small image that is already one MNIST-style digit, as white on black; else None.

    Small (at most 64 pixels a side) with a plain border: black with light ink (an MNIST
    test image), or white with dark ink (the same, inverted, or a small scan). Such an image
    is not a photo to clean up; it is passed through as it is.
    """
    h, w = gray.shape
    if max(h, w) > 64 or min(h, w) < 8:
        return None
    border = np.concatenate(
        [gray[:2].ravel(), gray[-2:].ravel(), gray[:, :2].ravel(), gray[:, -2:].ravel()]
    )
    # By the mean: MNIST's ink does reach into the outer two rows of some digits.
    if border.mean() < 40 and gray.max() > 128:
        return gray
    if border.mean() > 215 and gray.min() < 128:
        return 255 - gray
    return None


def ink_is_light(small: np.ndarray) -> bool:
    """True for light ink on a dark background (a blackboard, an MNIST-like image).

    The local median is the background almost everywhere (ink covers a minority of any window
    the size of a third of the image); ink is the strong one-sided deviation from it. The
    edge of a shadow deviates both ways, and a fine pen leaves little ink to weigh, so on a
    light background (paper, even in shade) light ink must outweigh dark ink by far, and be
    plentiful (a grey level per pixel on average).
    """
    # The background varies slowly: its median is taken on a copy of half the size (a
    # quarter of the cost) and scaled back up; the deviations are still measured at full size.
    h, w = small.shape
    coarse = cv2.resize(small, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(coarse.shape) // 3) | 1)
    coarse = cv2.medianBlur(coarse, min(k, 255))
    background = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    # Deviations beyond 20 grey levels, by saturating uint8 arithmetic (cheaper than int16
    # arrays; an offset past 255 saturates where the deviation is negative anyway).
    lighter = cv2.sumElems(cv2.subtract(small, cv2.add(background, 20)))[0]
    darker = cv2.sumElems(cv2.subtract(background, cv2.add(small, 20)))[0]
    # The median by partition (np.median costs more than the whole test): the mean of the
    # two middle values below 110.
    flat = coarse.ravel()
    n = flat.size
    middle = np.partition(flat, [(n - 1) // 2, n // 2])
    if int(middle[(n - 1) // 2]) + int(middle[n // 2]) < 220:
        return bool(lighter > 1.5 * darker)
    return bool(lighter > 5.0 * darker and lighter > small.size)


def quarter_size(image: np.ndarray) -> np.ndarray:
    """Each side a quarter as long, each pixel the mean of its block: halved twice, since
    OpenCV's area resize has a fast path for halving and is four times slower by 4 at once."""
    h, w = image.shape[:2]
    half = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)


def paper_background(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness without the ink (dark ink on light paper), same size as `gray`.

    Closing with a box a third of the image: strokes narrower than that vanish (even a marker
    on a digit filling the frame), large things (shadows, a gradient) stay. Done at a quarter
    of the size, then scaled back up.
    """
    h, w = gray.shape
    small = quarter_size(gray)
    k = max(3, (max(small.shape) // 3) | 1)
    # Smooth first: the max filter would otherwise pick the noise's peaks and put the paper
    # too bright in dark, noisy places (a shadow), where the paper would then look like ink.
    small = cv2.blur(small, (3, 3))
    # Replicated borders: a shadow along the frame's edge continues outside it, so even a
    # thin sliver of it is kept as background. (Padded by hand: morphologyEx would pad again
    # between its max and min filters and put the paper too bright along a darkening edge.)
    pad = k // 2 + 1
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, _kernel(k, k))[pad:-pad, pad:-pad]
    # The smoothing, and the scaling back up, made sharp steps (the page's edge on a dark
    # desk, a hard shadow) into ramps, bright on the dark side of the step, which would show
    # a line of ink there. A min filter wider than both moves the ramp onto the bright side,
    # where the paper merely looks a little brighter than its estimate (no ink). (Numbers by
    # a page edge read right, tests.vision_report: 88.5 % with 3 pixels here, 90.5 % with 5.)
    closed = cv2.erode(closed, _kernel(5, 5))
    return cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)


def relative_ink(gray: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """How much darker than the paper each pixel is, as a fraction of the paper, in 0..255.

    By OpenCV's saturating uint8 arithmetic (paper lighter than the pixel gives 0): this runs
    on the whole work copy every frame, five times cheaper than the same in float.
    """
    return cv2.divide(cv2.subtract(paper, gray), paper, scale=255)


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
        big = np.clip(big / max(_quantile(core, 0.9), 0.05), 0.0, 1.0)
    big = even_out_stroke(big)

    scale = MNIST_BOX / STROKE_BOX
    size = (max(1, round(big.shape[1] * scale)), max(1, round(big.shape[0] * scale)))
    digit = np.clip(cv2.resize(big, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)

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
        return cv2.dilate(big, _kernel(2 * r + 1, 2 * r + 1))
    if width > STROKE_TOO_THICK:
        # Only one step: a deeper erosion would wipe out the thinner parts of the digit.
        return cv2.erode(big, _kernel(3, 3))
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


def _line_band(widened: np.ndarray, vertical: bool) -> tuple[np.ndarray | None, bool]:
    """Where thin lines run across most of the image: a 0/1 mask of bands around them.

    `widened` is the ink mask widened by a pixel on both sides across the lines (for tilt).
    The image is cut into SLABS slabs across the lines' direction; in each, a row of it
    covered at least 60 % by ink is a line candidate, dashed lines included. A line must
    show in at least 3 slabs within a few rows: the stroke of a digit, even a long one, does
    not run across the image. Tilt up to ~2 degrees.
    Returns the band mask, None when there is no line (the common case, and cheap), and
    whether any slab had a candidate row at all.
    """
    h, w = widened.shape
    # Ink per row (column) and slab, by one cv2.reduce per slab (cheaper than an area resize).
    axis, n = (0, h) if vertical else (1, w)
    edges = [round(i * n / SLABS) for i in range(SLABS + 1)]
    cover = [
        cv2.reduce(
            widened[a:b] if vertical else widened[:, a:b], axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S
        )
        >= 0.6 * (b - a)
        for a, b in pairwise(edges)
    ]
    cover = np.vstack(cover).T if vertical else np.hstack(cover)
    if not cover.any():
        return None, False
    cover = np.ascontiguousarray(cover, dtype=np.uint8)  # one row per image row (column)
    across = cv2.dilate(cover, _kernel(1, 9)).sum(axis=1) >= min(3, SLABS)
    if not across.any():
        return None, True
    rows = cv2.dilate(cover, _kernel(1, 5)) & across[:, None].astype(np.uint8)
    if vertical:
        rows = np.ascontiguousarray(rows.T)
    return cv2.resize(rows, (w, h), interpolation=cv2.INTER_NEAREST), True


def ruled_lines(weak: np.ndarray) -> np.ndarray:
    """Thin straight lines (ruled or squared paper, table edges) in a binary ink mask: a mask.

    Line pixels lie in a band where a line runs across the image (see _line_band), on a
    straight run along it, in ink at most 3 pixels thick (a marker's strokes are thicker).
    Line pixels next to other ink across the line (within 3 pixels) are kept as ink: where a
    line crosses a stroke or runs along one, cutting it out would cut the digit.
    """
    h, w = weak.shape
    run = max(7, w // 32)
    found = {}
    thick_h = None
    maybe_long = False
    # Widened by a pixel on both sides across the lines, for tilt (also the long-run search's).
    widened = {False: cv2.dilate(weak, _kernel(1, 3)), True: cv2.dilate(weak, _kernel(3, 1))}
    for vertical in (False, True):
        band, covered = _line_band(widened[vertical], vertical)
        if not vertical:
            maybe_long = covered
        if band is None:
            continue
        along, thick = (
            ((1, run), (4, max(4, h // 16))) if vertical else ((run, 1), (max(4, w // 16), 4))
        )
        straight = cv2.morphologyEx(weak, cv2.MORPH_OPEN, _kernel(*along))
        thick_ink = cv2.morphologyEx(weak, cv2.MORPH_OPEN, _kernel(*thick))
        thick_h = thick_ink if not vertical else thick_h
        found[vertical] = weak & band & straight & ~thick_ink & 1
    # A line too faint in places to show in the bands is still one long thin run (a third
    # of the width, tilt allowed) where it passes the digits. Such a run covers most of some
    # slab's row, so frames without any candidate row skip this.
    long_run = None
    if maybe_long:
        tilted = widened[False]
        # The opening works row by row, and a row keeps ink only where it has a run at least
        # half the kernel long (at the border) - so only rows with that much ink are opened.
        length = max(16, w // 3)
        ink_rows = np.flatnonzero(
            cv2.reduce(tilted, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S) >= length // 2
        )
        if ink_rows.size:
            long_run = np.zeros_like(weak)
            long_run[ink_rows] = cv2.morphologyEx(
                tilted[ink_rows], cv2.MORPH_OPEN, _kernel(length, 1)
            )
    if long_run is not None and long_run.any():
        if thick_h is None:
            thick_h = cv2.morphologyEx(weak, cv2.MORPH_OPEN, _kernel(max(4, w // 16), 4))
        found[False] = found.get(False, 0) | (weak & long_run & ~thick_h & 1)
    lines = np.zeros_like(weak)
    if not found:
        return lines
    rest = weak.copy()
    for mask in found.values():
        rest &= ~mask
    for vertical, mask in found.items():
        across = _kernel(4, 1) if vertical else _kernel(1, 4)
        before = cv2.dilate(rest, across, anchor=(3, 0) if vertical else (0, 3))
        after = cv2.dilate(rest, across, anchor=(0, 0))
        lines |= mask & ~(before | after) & 1
    return lines


class Piece(NamedTuple):
    """One connected region of ink in the work copy."""

    x: int
    y: int
    w: int
    h: int
    area: int  # its pixels
    mask: np.ndarray  # uint8, 1 on its own pixels, the size of its box
    strong_area: int  # its pixels dark enough to count as strong ink


def _components(strong: np.ndarray, weak: np.ndarray, min_side: float) -> list[Piece]:
    """Connected regions of weak ink that hold some strong ink (hysteresis thresholding).

    One row per region kept: x, y, w, h, area, its own pixels as a mask of its box, strong
    area. Regions smaller than `min_side` both ways are skipped at once (noise). The boxes
    come from the outer contours, and each region is labelled inside its own box only:
    labelling the whole work copy costs more than all the boxes together, and a region's
    pixels, and the paths joining them, all lie inside its box.
    """
    contours, _ = cv2.findContours(weak, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rows = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if max(w, h) < min_side:
            continue
        mine = weak[y : y + h, x : x + w]
        count, labels = cv2.connectedComponents(mine, connectivity=8)
        if count > 2:  # other ink in the box: a neighbour's tip, a speck in a loop
            x0, y0 = contour[0, 0]
            mine = (labels == labels[y0 - y, x0 - x]).view(np.uint8)
        strong_area = cv2.countNonZero(strong[y : y + h, x : x + w] & mine)
        if strong_area:
            rows.append(Piece(x, y, w, h, cv2.countNonZero(mine), mine, strong_area))
    return rows


def _is_junk(piece: Piece, shape: tuple[int, int]) -> bool:
    """A speck, a ruled/grid line, or what hugs the frame's border (page edge, desk)."""
    h, w = shape
    x, y, bw, bh, area, mask, _ = piece
    if area < 6 or max(bw, bh) < max(3, 0.02 * min(h, w)):
        return True
    if (bw > 6 * bh and bw > 0.1 * w) or (bh > 12 * bw and bh > 0.97 * h):
        return True
    # Sparse and across the whole frame: a grid, or lines joined by something, not a digit
    # (a digit written with a fine pen is sparse too, but it leaves room around it).
    if (bw > 0.9 * w or bh > 0.95 * h) and area < 0.08 * bw * bh:
        return True
    # A digit near the edge may touch it; the page edge, the desk or a shadow's corner lie
    # along it: they touch the border over a longer stretch than they reach into the frame.
    # (The box is tight: a region touches the border exactly when its box does.)
    if x > 0 and y > 0 and x + bw < w and y + bh < h:
        return False
    rows = (np.count_nonzero(mask[0]) if y == 0 else 0) + (
        np.count_nonzero(mask[-1]) if y + bh == h else 0
    )
    cols = (np.count_nonzero(mask[:, 0]) if x == 0 else 0) + (
        np.count_nonzero(mask[:, -1]) if x + bw == w else 0
    )
    return min(bw, bh) < 0.02 * min(h, w) or rows > 0.8 * bh or cols > 0.8 * bw


def _digit_height_cap(boxes: list[tuple[int, ...]]) -> float:
    """How tall one digit can be in this frame: 1.3x the median height of digit-sized pieces.

    Only known for a number (digit-sized pieces side by side in at least three columns);
    merging pieces never makes a region taller than that, so digits of two lines are not
    joined through a stray piece between them. One digit alone has no such limit: its
    pieces, stacked, may be all there is.
    """
    tallest = max((b[3] for b in boxes), default=0)
    big = sorted((b for b in boxes if b[3] >= 0.5 * tallest), key=lambda b: b[0])
    columns, end = 0, -math.inf
    for x, _, w, _ in big:
        if x >= end - 0.25 * w:
            columns += 1
        end = max(end, x + w)
    return 1.3 * float(statistics.median(b[3] for b in big)) if columns >= 3 else math.inf


def _merge_pieces(boxes: list[tuple[int, ...]], cap: float) -> list[list[int]]:
    """Group the pieces of one digit: pieces over each other, or corner to corner, and close.

    Side-by-side neighbours share their rows and are never merged; two digits of different
    lines overlap in x but are separated by a gap, so they stay apart too.
    """
    n = len(boxes)
    parent = list(range(n))
    # Every rule of _one_digit needs the boxes less than 5 % of the taller one apart in x:
    # in order of x, a box is compared with the next ones only until they start further
    # right than that.
    tallest = max((b[3] for b in boxes), default=0)
    by_x = sorted(range(n), key=lambda i: boxes[i][0])
    pairs = []
    for k, i in enumerate(by_x):
        right = boxes[i][0] + boxes[i][2] + 0.05 * tallest
        for j in by_x[k + 1 :]:
            if boxes[j][0] >= right:
                break
            if _one_digit(boxes[i], boxes[j]):
                pairs.append((min(i, j), max(i, j)))
    top = [b[1] for b in boxes]
    bottom = [b[1] + b[3] for b in boxes]
    for i, j in sorted(pairs):
        ri, rj = _root(parent, i), _root(parent, j)
        if ri == rj or max(bottom[ri], bottom[rj]) - min(top[ri], top[rj]) > cap:
            continue
        keep, gone = min(ri, rj), max(ri, rj)
        parent[gone] = keep
        top[keep], bottom[keep] = min(top[ri], top[rj]), max(bottom[ri], bottom[rj])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(_root(parent, i), []).append(i)
    return list(groups.values())


def _one_digit(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two pieces (x, y, w, h) look like parts of one digit."""
    overlap_x = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    gap_y = max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3])
    tall, short = max(a[3], b[3]), min(a[3], b[3])
    # Dirt is no piece of a digit: a speck next to a stroke stays apart (and is dropped).
    if min(max(a[2], a[3]), max(b[2], b[3])) < 0.15 * tall:
        return False
    # One over the other and close. A small piece (the bar of a 5) may be further away than
    # a half of a broken digit; lines of digits are further apart than a thin gap.
    if overlap_x > 0.5 * min(a[2], b[2]) and (
        gap_y < 0.2 * tall
        or (gap_y < 0.25 * tall and short < 0.7 * tall)
        or (gap_y < 0.5 * tall and short < 0.5 * tall)
    ):
        return True
    # A slanted stroke broken in two: one piece above the other, shifted sideways, their
    # boxes meeting at a corner.
    if -overlap_x < 0.05 * tall and -0.3 * short < gap_y < 0.2 * tall:
        return True
    # A stroke drawn twice, two thin lines side by side almost touching (some 1s): one
    # digit. Neighbouring digits keep a wider gap.
    return max(a[2], b[2]) < 0.35 * tall and -overlap_x < 0.05 * tall and -gap_y > 0.6 * short


def _attach_small_pieces(
    regions: list[tuple[tuple[int, int, int, int], list[Piece]]], cap: float
) -> list[tuple[tuple[int, int, int, int], list[Piece]]]:
    """Join a small piece to the nearest bigger region it (almost) touches.

    The bar of a 5 drawn apart from its body, or a 4 whose strokes do not meet, sits beside
    its digit rather than over it. Each small piece goes to one region only, so a piece
    between two digits never glues them together.
    """
    regions = sorted(regions, key=lambda r: r[0][3])
    i = 0
    while i < len(regions):
        (x, y, w, h), pieces = regions[i]
        best, best_gap = None, None
        for j in range(i + 1, len(regions)):
            (bx, by, bw, bh), _ = regions[j]
            if max(w, h) >= 0.6 * bh or max(w, h) < 0.15 * bh:  # not a piece: a digit, dirt
                continue
            gap = max(bx - (x + w), x - (bx + bw), by - (y + h), y - (by + bh), 0)
            joined_height = max(y + h, by + bh) - min(y, by)
            if gap <= 0.25 * bh and joined_height <= cap and (best_gap is None or gap < best_gap):
                best, best_gap = j, gap
        if best is None:
            i += 1
            continue
        (bx, by, bw, bh), more = regions.pop(best)
        x1, y1 = min(x, bx), min(y, by)
        x2, y2 = max(x + w, bx + bw), max(y + h, by + bh)
        regions[i] = ((x1, y1, x2 - x1, y2 - y1), pieces + more)
        regions.sort(key=lambda r: r[0][3])
        i = 0
    return regions


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """Indices of boxes (x, y, w, h) in reading order: lines top to bottom, each left to right.

    A box joins a line when its vertical middle falls inside the line's span so far.
    """
    lines: list[list[int]] = []
    spans: list[list[float]] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2):
        x, y, w, h = boxes[i]
        middle = y + h / 2
        for line, span in zip(lines, spans, strict=True):
            if span[0] <= middle <= span[1]:
                line.append(i)
                span[0], span[1] = min(span[0], y), max(span[1], y + h)
                break
        else:
            lines.append([i])
            spans.append([y, y + h])
    order = sorted(range(len(lines)), key=lambda k: spans[k][0])
    return [i for k in order for i in sorted(lines[k], key=lambda i: boxes[i][0])]


def find_digit_crops(
    frame: np.ndarray,
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Every digit in a BGR or grey frame: [(box (x, y, w, h) in frame pixels, 28x28 float32)].

    In reading order (lines top to bottom, each left to right); a blank frame gives [].
    """
    gray = to_gray(frame)
    h, w = gray.shape
    if h == 0 or w == 0:
        return []
    digit = mnist_like_digit(gray)
    if digit is not None:
        if (h, w) == (MNIST_SIDE, MNIST_SIDE):
            # Already an MNIST digit: pass it through untouched, as the test set does.
            return [((0, 0, w, h), digit.astype(np.float32) / 255.0)]
        return [((0, 0, w, h), to_mnist_28x28(digit))]
    page = ink_page(gray)
    regions = digit_regions(page)
    results = []
    for i in reading_order([box for box, _ in regions]):
        box, pieces = regions[i]
        results.append((page.frame_box(box), to_mnist_28x28(page.digit_ink(pieces, box))))
    return results


class InkPage:
    """A frame as dark ink on light paper: grey (full size and the work copy), paper, ink."""

    def __init__(self, gray: np.ndarray, work: np.ndarray, paper: np.ndarray, scale: float):
        self.gray, self.work, self.paper, self.scale = gray, work, paper, scale
        self.ink8 = relative_ink(work, paper)
        self.not_lines: np.ndarray | None = None  # 0 on ruled lines (set by digit_regions)

    def frame_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A work-copy box (x, y, w, h) in frame pixels."""
        x, y, bw, bh = box
        h, w = self.gray.shape
        x0, y0 = int(x / self.scale), int(y / self.scale)
        x1 = min(w, int(np.ceil((x + bw) / self.scale)))
        y1 = min(h, int(np.ceil((y + bh) / self.scale)))
        return x0, y0, x1 - x0, y1 - y0

    def digit_ink(self, pieces: list[Piece], box: tuple[int, int, int, int]) -> np.ndarray:
        """One digit's graded ink, white on black, at up to twice STROKE_BOX pixels.

        From the full-resolution frame when the work copy is too coarse for that. Only pixels
        near the digit's own regions count, so a neighbour reaching into the box or a speck
        does not end up in the crop.
        """
        x, y, bw, bh = box
        m = 2  # pixels of margin (work scale) for the soft edges of the strokes
        wh, ww = self.work.shape
        xa, ya, xb, yb = max(x - m, 0), max(y - m, 0), min(x + bw + m, ww), min(y + bh + m, wh)
        mine = np.zeros((yb - ya, xb - xa), np.uint8)
        for px, py, pw, ph, _, mask, _ in pieces:
            mine[py - ya : py - ya + ph, px - xa : px - xa + pw] |= mask
        mine = cv2.dilate(mine, _kernel(5, 5))
        if self.not_lines is not None:
            mine &= self.not_lines[ya:yb, xa:xb]
        if max(bw, bh) >= STROKE_BOX or self.scale == 1.0:
            return _stretch(cv2.multiply(self.ink8[ya:yb, xa:xb], mine), PAPER_LEVEL)
        # The same region from the full-resolution frame, shrunk to at most 2 * STROKE_BOX.
        s = self.scale
        gray = self.gray
        region = gray[int(ya / s) : int(np.ceil(yb / s)), int(xa / s) : int(np.ceil(xb / s))]
        target = min(1.0, 2 * STROKE_BOX / max(region.shape))
        size = (max(1, round(region.shape[1] * target)), max(1, round(region.shape[0] * target)))
        if target < 1:
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        paper = cv2.resize(self.paper[ya:yb, xa:xb], size, interpolation=cv2.INTER_LINEAR)
        mine = cv2.resize(mine, size, interpolation=cv2.INTER_NEAREST)
        return _stretch(cv2.multiply(relative_ink(region, paper), mine), PAPER_LEVEL)


def ink_page(gray: np.ndarray) -> InkPage:
    """Scale to the work size, settle the polarity, estimate the paper, measure the ink."""
    h, w = gray.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # In steps: OpenCV's area resize is much faster that way than in one (a grey level of
    # rounding apart, nothing to the polarity test's 20-level margins).
    averaged = cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    if ink_is_light(quarter_size(averaged)):
        gray = 255 - gray
    work = gray
    if scale < 1:
        # The darkest pixel of each block, not the average: a hair-line stroke keeps its full
        # darkness in the smaller copy instead of fading into the paper.
        k = int(round(1 / scale))
        darkest = cv2.erode(gray, _kernel(k, k)) if k >= 2 else gray
        work = cv2.resize(darkest, size, interpolation=cv2.INTER_AREA)
    return InkPage(gray, work, paper_background(work), scale)


def digit_regions(page: InkPage) -> list[tuple[tuple[int, int, int, int], list[Piece]]]:
    """Threshold the ink, drop lines and junk, merge pieces: [(box, its pieces)]."""
    ink8 = page.ink8
    # Otsu's level from every fourth row: its histogram is most of its cost, and a quarter of
    # the rows gives the same level, or one grey level apart.
    otsu, _ = cv2.threshold(ink8[::4], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # Otsu's level separates ink from paper when there is ink; on a blank page it splits the
    # noise, hence the floor. The cap keeps faint digits next to bold ones.
    strong_level = min(max(otsu / 255.0, STRONG_INK), 0.5)
    # cv2.threshold on uint8 keeps what is above the level's floor: the same as ink8 > level,
    # in one pass instead of numpy's two.
    weak = cv2.threshold(ink8, MIN_INK * 255, 1, cv2.THRESH_BINARY)[1]
    strong = cv2.threshold(ink8, strong_level * 255, 1, cv2.THRESH_BINARY)[1]
    lines = ruled_lines(weak)
    if lines.any():
        page.not_lines = 1 - lines
        weak &= page.not_lines
        strong &= page.not_lines
    h, w = weak.shape
    comps = _components(strong, weak, max(3, 0.02 * min(h, w)))
    # Plain Python from here: a handful of pieces, where numpy's per-call cost dominates.
    comps = [c for c in comps if not _is_junk(c, (h, w))]
    if not comps:
        return []
    # A page of text or a busy texture has hundreds of pieces: the biggest are enough, and
    # merging stays cheap.
    comps = sorted(comps, key=lambda c: -c.area)[:MAX_PIECES]
    boxes = [c[:4] for c in comps]
    regions = []
    cap = _digit_height_cap(boxes)
    for group in _merge_pieces(boxes, cap):
        part = [comps[i] for i in group]
        x1, y1 = min(c.x for c in part), min(c.y for c in part)
        x2, y2 = max(c.x + c.w for c in part), max(c.y + c.h for c in part)
        regions.append(((x1, y1, x2 - x1, y2 - y1), part))
    regions = _attach_small_pieces(regions, cap)
    # Far less tall than the tallest digit: a dot, a dash, leftover dirt.
    tallest = max(b[3] for b, _ in regions)
    return [(b, pieces) for b, pieces in regions if b[3] >= 0.4 * tallest]
