"""Recognition-driven splitting: where one region may be two or three touching digits.

A region wider than one digit usually is for its height may be digits that touch (a "00", a
"20" written in one stroke). Its height is at most a digit's height in its line, so a pair
whose 7 has a long tail is wide too. It is cut into 2 parts at candidate columns (the thinnest
column near the middle, the deepest valleys of its upper and lower contours: where two
outlines meet) and into 3 at the thinnest columns near the thirds; the classifier reads the
whole and every part in the frame's one batch, and `choose_reading` keeps the whole unless
the parts read clearly surer. A confident, not too wide, single digit is never split, and no
cut runs through its loop, so a wide 0, a 2 with a long base or a 7 with a long bar stays one.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_edge.runtime.pieces import Piece

Box = tuple[int, int, int, int]

SPLIT_ASPECT = 1.2  # width / height from which a region is also read as 2 parts
SPLIT3_ASPECT = 1.5  # ... and as 3 parts
NEVER_ONE_ASPECT = 1.6  # wider than this, one digit is unlikely: the parts are favoured
MAX_SPLIT_CROPS = 48  # candidate crops per frame, the widest regions first
UNSURE = 0.8  # a whole no wider than NEVER_ONE_ASPECT is split only when read less sure...
PARTS_SURE = 0.97  # ... and every part at least this sure
TWO_WIDE = 1.7  # ... or this many times its line's typical width and not CERTAIN
CERTAIN = 0.99  # a whole read this sure is split only when wider still:
NEVER_ONE_CERTAIN_ASPECT = 2.5  # (a flat 2 with a long base is twice as wide as tall)
VALLEY = 0.25  # a contour's valley this deep (times the region's height) is a candidate cut
LOOP = 0.3  # a hole this tall (times the region's height) is a loop no cut may break
PART_HEIGHT = 0.4  # a part at least this many times a digit of its line tall (min own height)


def region_mask(box: Box, pieces: list[Piece]) -> np.ndarray:
    """The region's ink as one 0/1 mask of its box."""
    x, y, w, h = box
    mask = np.zeros((h, w), np.uint8)
    for c in pieces:
        mask[c.y - y : c.y - y + c.h, c.x - x : c.x - x + c.w] |= c.mask
    return mask


def two_part_cuts(mask: np.ndarray) -> list[int]:
    """Columns where a region may be two touching digits: the thinnest column near the middle
    (within 15 % of the width, the ink profile smoothed over 3 columns), and the deepest
    valleys of its upper and lower contours between a fifth and four fifths of the width
    (where two digits' outlines meet, wherever the narrower one ends). At most three, none
    within two columns of another."""
    h, w = mask.shape
    profile = np.convolve(mask.sum(axis=0, dtype=np.int32), np.ones(3), mode="same")
    lo, hi = max(2, round(0.35 * w)), min(w - 2, round(0.65 * w))
    cuts = [lo + int(np.argmin(profile[lo:hi]))] if hi > lo else []
    lo, hi = max(2, round(0.2 * w)), min(w - 2, round(0.8 * w))
    if hi > lo:
        inked = mask.any(axis=0)
        top = np.where(inked, mask.argmax(axis=0), h)
        bottom = np.where(inked, h - 1 - mask[::-1].argmax(axis=0), -1)
        # A valley: how far the contour dips below the highest point on either side of it
        # (the lower contour: rises above the lowest).
        up = top - np.maximum(np.minimum.accumulate(top), np.minimum.accumulate(top[::-1])[::-1])
        down = np.minimum(np.maximum.accumulate(bottom), np.maximum.accumulate(bottom[::-1])[::-1])
        down = down - bottom
        for depth in (up, down):
            c = lo + int(np.argmax(depth[lo:hi]))
            if depth[c] >= VALLEY * h and all(abs(c - d) > 2 for d in cuts):
                cuts.append(c)
    return cuts


def split_parts(
    box: Box, pieces: list[Piece], parts: int, digit_height: float, cut: int | None = None
) -> list[tuple[Box, list[Piece]]]:
    """The region cut into `parts` side by side, [] when a part would hold almost no ink, be
    far less tall than a digit of its line (`digit_height`), or the cut would break a loop
    (a 0's or an 8's hole: touching digits meet at a contact, not around a hole).

    Two parts are cut at `cut` (a column of the box); three at the thinnest columns within
    15 % of the width of an even split (the ink profile smoothed over 3 columns)."""
    x, y, w, h = box
    mask = region_mask(box, pieces)
    if parts == 2 and cut is not None:
        cuts = [0, cut]
    else:
        profile = np.convolve(mask.sum(axis=0, dtype=np.int32), np.ones(3), mode="same")
        cuts = [0]
        for j in range(1, parts):
            lo = max(cuts[-1] + 2, round((j / parts - 0.15) * w))
            hi = min(w - 2, round((j / parts + 0.15) * w))
            if hi <= lo:
                return []
            cuts.append(lo + int(np.argmin(profile[lo:hi])))
    cuts.append(w)
    # A region that may be one wide digit (a 0, an 8 lying wide) must not be cut through a
    # loop, but its parts may be as small as a small digit beside a tall one (choose_reading
    # is strict there). A wider region is no one digit (where its digits overlap they close
    # holes), and choose_reading is lenient there: its parts must be half its height.
    wide = w >= NEVER_ONE_ASPECT * h
    if not wide and _breaks_a_loop(mask, cuts[1:-1]):
        return []
    least = 0.5 * h if wide else PART_HEIGHT * min(h, digit_height)
    total = int(mask.sum())
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        sub = _pieces_in_columns(pieces, x + a, x + b)
        if sum(c.area for c in sub) < 0.08 * total:
            return []
        x1, y1 = min(c.x for c in sub), min(c.y for c in sub)
        x2, y2 = max(c.x + c.w for c in sub), max(c.y + c.h for c in sub)
        if y2 - y1 < least:
            return []
        out.append(((x1, y1, x2 - x1, y2 - y1), sub))
    return out


def _breaks_a_loop(mask: np.ndarray, cuts: list[int]) -> bool:
    """Whether a cut column runs through a hole of the ink (a loop's inside)."""
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return False
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
        if parent < 0:
            continue
        hx, _, hw, hh = cv2.boundingRect(contour)
        if hw >= 3 and hh >= LOOP * mask.shape[0] and any(hx < c < hx + hw - 1 for c in cuts):
            return True
    return False


def _pieces_in_columns(pieces: list[Piece], left: int, right: int) -> list[Piece]:
    """The pieces' pixels in columns [left, right), as pieces with tight boxes."""
    out = []
    for c in pieces:
        a, b = max(left, c.x), min(right, c.x + c.w)
        if b <= a:
            continue
        mask = c.mask[:, a - c.x : b - c.x]
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            continue
        mask = np.ascontiguousarray(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        area = int(np.count_nonzero(mask))
        strong = round(c.strong_area * area / max(c.area, 1))
        out.append(Piece(a + int(cols[0]), c.y + int(rows[0]), mask.shape[1], mask.shape[0],
                         area, mask, strong))  # fmt: skip
    return out


def split_options(
    regions: list[tuple[Box, list[Piece]]], heights: list[float]
) -> dict[int, list[list[tuple[Box, list[Piece]]]]]:
    """For each region wide enough against the height of a digit of its line (`heights`,
    reading_order.line_sizes: a 7's tail does not make two touching digits narrow), the ways to
    cut it (2 parts at each candidate column, and 3 for wider ones): {region index: [parts,
    ...]}, at most MAX_SPLIT_CROPS parts in all, widest first."""
    digit_height = [min(b[3], t) for (b, _), t in zip(regions, heights, strict=True)]
    wide = sorted(
        (i for i, (b, _) in enumerate(regions) if b[2] >= SPLIT_ASPECT * digit_height[i]),
        key=lambda i: -regions[i][0][2] / digit_height[i],
    )
    options: dict[int, list] = {}
    budget = MAX_SPLIT_CROPS
    for i in wide:
        box, pieces = regions[i]
        tries = [(2, c) for c in two_part_cuts(region_mask(box, pieces))]
        if box[2] >= SPLIT3_ASPECT * digit_height[i]:
            tries.append((3, None))
        for parts, column in tries:
            if parts > budget:
                break
            cut = split_parts(box, pieces, parts, digit_height[i], column)
            if cut:
                options.setdefault(i, []).append(cut)
                budget -= parts
    return options


def choose_reading(
    whole: float, aspect: float, options: list[list[float]], wide: float = 1.0
) -> int | None:
    """Which reading of a region to keep: None for the whole, else the index of the option.

    `whole`: the classifier's confidence in the whole region; `options`: the confidences of
    each option's parts; `wide`: the region's width over its line's typical width. An option
    scores its least sure part. A region no wider than NEVER_ONE_ASPECT is split only when
    every part is sure (PARTS_SURE) and the whole unsure (below UNSURE), or not CERTAIN and
    TWO_WIDE times as wide as its line's digits (a touching pair whose 7 has a long tail is
    not wide for its height, but is for its neighbours); a wider one when its parts are
    about as sure as the whole, unless the whole is CERTAIN and the region under
    NEVER_ONE_CERTAIN_ASPECT. (MNIST models are confident on almost anything, so the parts
    must be very sure.)
    """
    if not options:
        return None
    scores = [min(parts) for parts in options]
    best = int(np.argmax(scores))
    if aspect < NEVER_ONE_ASPECT:
        if scores[best] < PARTS_SURE:
            return None
        return best if whole < UNSURE or (wide >= TWO_WIDE and whole < CERTAIN) else None
    if whole >= CERTAIN and aspect < NEVER_ONE_CERTAIN_ASPECT:
        return None
    return best if scores[best] >= min(PARTS_SURE, whole) - 0.1 else None
