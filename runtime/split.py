"""Recognition-driven splitting: where one region may be two or three touching digits.

A region wider than one digit usually is for its height may be digits that touch (a "00", a
"20" written in one stroke). It is cut at the columns where its ink is thinnest, near where
the digits' boundaries would fall, into 2 or 3 parts; the classifier reads the whole and
every part in the frame's one batch, and `choose_reading` keeps the whole unless the parts
read clearly surer. A confident, not too wide, single digit is never split, so a wide 0, a 2
with a long base or a 7 with a long bar stays one.
"""

from __future__ import annotations

import numpy as np

from mnist_edge.runtime.regions import Piece

Box = tuple[int, int, int, int]

SPLIT_ASPECT = 1.2  # width / height from which a region is also read as 2 parts
SPLIT3_ASPECT = 1.5  # ... and as 3 parts
NEVER_ONE_ASPECT = 1.6  # wider than this, one digit is unlikely: the parts are favoured
MAX_SPLIT_CROPS = 48  # candidate crops per frame, the widest regions first
UNSURE = 0.3  # a whole no wider than NEVER_ONE_ASPECT is split only when read less sure...
PARTS_SURE = 0.97  # ... and every part at least this sure
CERTAIN = 0.99  # a whole read this sure is split only when wider still:
NEVER_ONE_CERTAIN_ASPECT = 2.5  # (a flat 2 with a long base is twice as wide as tall)


def split_parts(box: Box, pieces: list[Piece], parts: int) -> list[tuple[Box, list[Piece]]]:
    """The region cut into `parts` side by side at its thinnest columns, [] when a part would
    hold almost no ink. Each cut is the column of least ink within 15 % of the width of an
    even split (the ink profile smoothed over 3 columns)."""
    x, y, w, h = box
    mask = np.zeros((h, w), np.uint8)
    for c in pieces:
        mask[c.y - y : c.y - y + c.h, c.x - x : c.x - x + c.w] |= c.mask
    profile = np.convolve(mask.sum(axis=0, dtype=np.int32), np.ones(3), mode="same")
    cuts = [0]
    for j in range(1, parts):
        lo = max(cuts[-1] + 2, round((j / parts - 0.15) * w))
        hi = min(w - 2, round((j / parts + 0.15) * w))
        if hi <= lo:
            return []
        cuts.append(lo + int(np.argmin(profile[lo:hi])))
    cuts.append(w)
    total = int(mask.sum())
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        sub = _pieces_in_columns(pieces, x + a, x + b)
        if sum(c.area for c in sub) < 0.08 * total:
            return []
        x1, y1 = min(c.x for c in sub), min(c.y for c in sub)
        x2, y2 = max(c.x + c.w for c in sub), max(c.y + c.h for c in sub)
        if y2 - y1 < 0.5 * h:  # a digit of a number is about as tall as its neighbours
            return []
        out.append(((x1, y1, x2 - x1, y2 - y1), sub))
    return out


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
    regions: list[tuple[Box, list[Piece]]],
) -> dict[int, list[list[tuple[Box, list[Piece]]]]]:
    """For each region wide enough, the ways to cut it (2 parts, and 3 for wider ones):
    {region index: [parts, ...]}, at most MAX_SPLIT_CROPS parts in all, widest first."""
    wide = sorted(
        (i for i, (b, _) in enumerate(regions) if b[2] >= SPLIT_ASPECT * b[3]),
        key=lambda i: -regions[i][0][2] / regions[i][0][3],
    )
    options: dict[int, list] = {}
    budget = MAX_SPLIT_CROPS
    for i in wide:
        box, pieces = regions[i]
        for parts in (2, 3) if box[2] >= SPLIT3_ASPECT * box[3] else (2,):
            if parts > budget:
                break
            cut = split_parts(box, pieces, parts)
            if cut:
                options.setdefault(i, []).append(cut)
                budget -= parts
    return options


def choose_reading(whole: float, aspect: float, options: list[list[float]]) -> int | None:
    """Which reading of a region to keep: None for the whole, else the index of the option.

    `whole`: the classifier's confidence in the whole region; `options`: the confidences of
    each option's parts. An option scores its least sure part. A region no wider than
    NEVER_ONE_ASPECT is split only when the whole is unsure (below UNSURE) and every part
    sure (PARTS_SURE); a wider one when its parts are about as sure as the whole, unless the
    whole is CERTAIN and the region under NEVER_ONE_CERTAIN_ASPECT.
    (MNIST models are confident on almost anything, so the parts must be very sure.)
    """
    if not options:
        return None
    scores = [min(parts) for parts in options]
    best = int(np.argmax(scores))
    if aspect < NEVER_ONE_ASPECT:
        return best if whole < UNSURE and scores[best] >= PARTS_SURE else None
    if whole >= CERTAIN and aspect < NEVER_ONE_CERTAIN_ASPECT:
        return None
    return best if scores[best] >= min(PARTS_SURE, whole) - 0.1 else None
