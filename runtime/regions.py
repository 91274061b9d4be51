"""Regions: the pieces of one digit merged (a broken stroke, a 5's bar), never neighbours side
by side nor digits of two lines; what is too small, flat, narrow or solid to be a digit
judged in its line of writing. The pieces themselves: `pieces.py`; reading order:
`reading_order.py`.
"""

from __future__ import annotations

import math

from mnist_edge.runtime.pieces import SOLID, Piece
from mnist_edge.runtime.reading_order import median, text_lines

CAP = 1.3  # a merged region is at most this many times the median digit-sized piece tall
ROW_GAP = 0.1  # digits in a column are at least this share of their height apart ...
COLUMN_OVERLAP = 0.25  # ... and share this much of the narrower one's width (a column askew)
MAX_PIECES = 400  # ink pieces considered per frame, the biggest first
BLOB = 1.5  # solid (pieces.SOLID) and this many times the writing's height both ways: a shadow
TICK_WIDTH = 0.35  # a region this narrow for its height ...
TICK_HEIGHT = 0.5  # ... and under this share of its line's typical digit is a tick, not a 1


def _digit_height_cap(boxes: list[tuple[int, ...]], height: float) -> float:
    """How tall one digit can be in this frame: 1.3x the median height of digit-sized pieces.

    Digit-sized: at least 0.7 times the writing's `height` (or half the tallest piece when
    that is not known): the parts of a digit cut by a ruled line are not digit-sized. Only
    known for a number (digit-sized pieces side by side in at least three columns, in one
    line of writing, or one under another in three rows, in one column); merging pieces
    never makes a region taller than that, so digits of two lines are not joined through a
    stray piece between them. One digit alone has no such limit: its pieces, stacked, may be
    all there is.
    """
    least = 0.7 * height if height else 0.5 * max((b[3] for b in boxes), default=0)
    big = [b for b in boxes if b[3] >= least]
    # Counted in each line of writing: on a page whose lines do not line up in columns
    # (shifted, or narrowing into the distance), the pieces of all lines together overlap
    # everywhere in x.
    columns = 0
    for line in text_lines(big):
        count, end = 0, -math.inf
        for x, _, w, _ in (big[i] for i in line):
            if x >= end - 0.25 * w:
                count += 1
            end = max(end, x + w)
        columns = max(columns, count)
    if columns >= 3 or _is_column(big):
        return CAP * float(median([b[3] for b in big]))
    return math.inf


def _is_column(boxes: list[tuple[int, ...]]) -> bool:
    """Three digit-sized boxes or more one under another: a column of digits (a list, a sum
    written downwards). Each is a clear gap (ROW_GAP of its height) below the one above it,
    so the pieces of one digit broken by a fine pen (they almost touch) are no column, and
    shares a quarter of the narrower one's width with it (COLUMN_OVERLAP), so a column
    photographed askew, drifting sideways from digit to digit, is still one."""
    order = sorted(boxes, key=lambda b: b[1])
    chain = [1] * len(order)
    for i, (x, y, w, h) in enumerate(order):
        for j in range(i):
            px, py, pw, ph = order[j]
            overlap = min(x + w, px + pw) - max(x, px)
            if y >= py + ph + ROW_GAP * h and overlap > COLUMN_OVERLAP * min(w, pw):
                chain[i] = max(chain[i], chain[j] + 1)
        if chain[i] >= 3:
            return True
    return False


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
        ri, rj = root_of(parent, i), root_of(parent, j)
        if ri == rj or max(bottom[ri], bottom[rj]) - min(top[ri], top[rj]) > cap:
            continue
        keep, gone = min(ri, rj), max(ri, rj)
        parent[gone] = keep
        top[keep], bottom[keep] = min(top[ri], top[rj]), max(bottom[ri], bottom[rj])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root_of(parent, i), []).append(i)
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
            gap_x = max(bx - (x + w), x - (bx + bw), 0)
            gap = max(gap_x, by - (y + h), y - (by + bh), 0)
            joined_height = max(y + h, by + bh) - min(y, by)
            # Beside the region, clear of it, a small piece is a small digit (a 0 by a 7).
            if gap_x > 0.08 * bh:
                continue
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


def root_of(parent: list[int], i: int) -> int:
    """The root of `i` in a union-find forest (`parent[k]` is k's parent), paths halved."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def digit_regions(
    pieces: list[Piece], height: float = 0.0
) -> list[tuple[tuple[int, int, int, int], list[Piece]]]:
    """Merge the pieces of each digit: [(box, its pieces)] in reading order.

    `height` is the writing's height (writing_height), 0 when unknown.
    """
    if not pieces:
        return []
    # A page of text or a busy texture has hundreds of pieces: the biggest are enough, and
    # merging stays cheap.
    comps = sorted(pieces, key=lambda c: -c.area)[:MAX_PIECES]
    boxes = [c[:4] for c in comps]
    regions = []
    cap = _digit_height_cap(boxes, height)
    for group in _merge_pieces(boxes, cap):
        part = [comps[i] for i in group]
        x1, y1 = min(c.x for c in part), min(c.y for c in part)
        x2, y2 = max(c.x + c.w for c in part), max(c.y + c.h for c in part)
        regions.append(((x1, y1, x2 - x1, y2 - y1), part))
    regions = _attach_small_pieces(regions, cap)
    # What is too small to be a digit is judged in its line of writing: far less tall than
    # the line's typical digit (a dot, a dash, leftover dirt), but a small 0 beside long-tailed
    # 7s and 9s is a digit. The typical digit is the median of the line's regions that are
    # not specks against the whole writing (specks would pull it down). Nothing under 0.3 x
    # the writing's height is a digit, or 0.2 x in a line that holds a digit-sized region
    # (0.7 x): there small digits are writing, elsewhere (a line of nothing but small things:
    # grid remnants, dirt) they are not. (0.3 in every line dropped the small 0s of a sheet
    # of long-tailed 7s.)
    boxes = [b for b, _ in regions]
    tallest = max(b[3] for b in boxes)
    writing = height or tallest
    kept = []
    for line in text_lines(boxes):
        heights = [boxes[i][3] for i in line]
        typical = median([h for h in heights if h >= 0.3 * writing] or heights)
        least = (0.2 if max(heights) >= 0.7 * writing else 0.3) * writing
        # A mark alone in its line (above or below the others' band) has no neighbours to be
        # small against: it is judged against the writing.
        reference = typical if len(line) > 1 else writing
        kept += [
            regions[i]
            for i in line
            if boxes[i][3] >= max(0.4 * typical, least)
            and not _is_dash(boxes[i], height)
            and not _is_tick(boxes[i], reference)
            and not _is_blob(regions[i], height)
        ]
    return kept


def _is_blob(region: tuple[tuple[int, int, int, int], list[Piece]], height: float) -> bool:
    """Solid and bigger than a digit both ways: a dark shadow, a smudge, a thumb, not writing
    (even a marker's digit leaves half its box paper, or is narrow, like a 1)."""
    (_, _, w, h), pieces = region
    return (
        bool(height) and min(w, h) >= BLOB * height and sum(c.area for c in pieces) >= SOLID * w * h
    )


def _is_tick(box: tuple[int, int, int, int], typical: float) -> bool:
    """Narrow and under half as tall as its line's digits: a tick, a comma, an apostrophe,
    the stub of a line by the page's edge. A 1 is written as tall as its neighbours; a small
    digit that is a digit (a small 0) is not this narrow."""
    return box[2] <= TICK_WIDTH * box[3] and box[3] < TICK_HEIGHT * typical


def _is_dash(box: tuple[int, int, int, int], height: float) -> bool:
    """Flat and low against the writing: a dash, a minus, the end of a line, not a digit."""
    return bool(height) and box[3] < 0.5 * height and box[2] > 1.5 * box[3]
