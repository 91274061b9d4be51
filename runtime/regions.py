"""Regions: ink pieces thresholded from the page, junk dropped, the pieces of one digit merged,
read in order (`reading_order.py`).

Threshold with hysteresis (weak pixels joined to strong ones); remove ruled and squared
paper's lines but not the strokes they cross; drop specks, dashes and what lies along the
frame's border (page edge, desk); merge the pieces of one digit (a broken stroke, a 5's bar),
never neighbours side by side.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from mnist_edge.runtime.lines import long_lines, ruled_lines
from mnist_edge.runtime.page import MIN_INK, InkPage, rect_kernel
from mnist_edge.runtime.reading_order import median, text_lines

STRONG_INK = 0.2  # ... and a region needs some pixels this dark (or Otsu's level) to count
WEAK_SHARE = 0.5  # a piece with less strong ink than this share of its pixels loses ...
FAINT_FIELD = 7  # ... its faint fields: faint ink this many pixels across every way
CAP = 1.3  # a merged region is at most this many times the median digit-sized piece tall
ROW_GAP = 0.1  # digits in a column are at least this share of their height apart
MAX_PIECES = 400  # ink pieces considered per frame, the biggest first
PIECES_FOR_TYPICAL = 9  # the writing's typical piece: the median of this many with most ink
INK_OF_FEW_DIGITS = 3.0  # a solid piece with this many typical pieces' ink is a blob ...
BLOB_OF_WRITING = 4.0  # ... unless it is more than this many times as tall (a digit alone)
SOLID = 0.5  # a region whose ink covers this much of its box ...
BLOB = 1.5  # ... and this many times the writing's height both ways is a shadow, not a digit
BRIDGE_WIDTH = 0.3  # a stroke this thin for its length, from one removed line to another ...
BOXED = 0.3  # a piece holding another this tall (against it) in a hole is a box around it
FRAME_BAND = 0.15  # ... as is one with FRAME_INK of its ink within this share of its edges
FRAME_INK = 0.85
TICK_WIDTH = 0.35  # a region this narrow for its height ...
TICK_HEIGHT = 0.5  # ... and under this share of its line's typical digit is a tick, not a 1


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
    # Every region's outer contour (two levels: outer contours and holes; ink inside a hole
    # is an outer contour again). A box that no other region's box meets holds only its own
    # region's ink, and needs no labelling.
    contours, hierarchy = cv2.findContours(weak, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer = [c for c, h in zip(contours, hierarchy[0], strict=True) if h[3] < 0] if contours else []
    boxes = [cv2.boundingRect(c) for c in outer]
    alone = _alone(boxes)
    rows = []
    for contour, (x, y, w, h), single in zip(outer, boxes, alone, strict=True):
        if max(w, h) < min_side:
            continue
        mine = weak[y : y + h, x : x + w]
        if not single:
            count, labels = cv2.connectedComponents(mine, connectivity=8)
            if count > 2:  # other ink in the box: a neighbour's tip, a speck in a loop
                x0, y0 = contour[0, 0]
                mine = (labels == labels[y0 - y, x0 - x]).view(np.uint8)
        own_strong = strong[y : y + h, x : x + w] & mine
        strong_area = cv2.countNonZero(own_strong)
        if not strong_area:
            continue
        area = cv2.countNonZero(mine)
        if strong_area >= WEAK_SHARE * area:
            rows.append(Piece(x, y, w, h, area, mine, strong_area))
            continue
        # Mostly faint: a shadow's edge or a smudge is a wide faint field around a little
        # strong ink; a faint pen (a hair line, a pencil) is faint too, but thin. The faint
        # fields (what is faint across FAINT_FIELD pixels every way) go; what falls apart
        # is pieces of its own.
        side = FAINT_FIELD
        keep = mine & ~cv2.morphologyEx(mine & ~own_strong, cv2.MORPH_OPEN, rect_kernel(side, side))
        # Faint lines too (squared paper's, a shadow's edge): faint ink away from the strong
        # ink that runs across half the piece or more. A hair-line digit's faint stretches
        # join its darker parts and are shorter.
        far = keep & ~cv2.dilate(own_strong, rect_kernel(side, side))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(far, connectivity=8)
        reach = 0.5 * max(w, h)
        long = np.flatnonzero(np.maximum(stats[1:, 2], stats[1:, 3]) >= reach) + 1
        if long.size:
            keep = keep & ~np.isin(labels, long).view(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(keep, connectivity=8)
        for k in range(1, count):
            bx, by, bw, bh, _ = (int(v) for v in stats[k])
            if max(bw, bh) < min_side:
                continue
            part = np.ascontiguousarray((labels[by : by + bh, bx : bx + bw] == k).view(np.uint8))
            part_strong = cv2.countNonZero(own_strong[by : by + bh, bx : bx + bw] & part)
            if part_strong:
                area = cv2.countNonZero(part)
                rows.append(Piece(x + bx, y + by, bw, bh, area, part, part_strong))
    return rows


def _alone(boxes: list[tuple[int, int, int, int]]) -> list[bool]:
    """For each box (x, y, w, h), whether no other box overlaps it (a sweep in order of x)."""
    alone = [True] * len(boxes)
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    for k, i in enumerate(order):
        x, y, w, h = boxes[i]
        for j in order[k + 1 :]:
            bx, by, bw, bh = boxes[j]
            if bx >= x + w:
                break
            if by < y + h and y < by + bh:
                alone[i] = alone[j] = False
    return alone


def _is_junk(piece: Piece, shape: tuple[int, int], speck: float) -> bool:
    """A speck (under `speck` both ways), a ruled/grid line, or what hugs the frame's border
    (page edge, desk)."""
    h, w = shape
    x, y, bw, bh, area, mask, _ = piece
    if area < 6 or max(bw, bh) < speck:
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
    # A column of digits (a list, a sum written downwards): digit-sized pieces one under
    # another in three rows or more, each a clear gap below the last (the pieces of a digit
    # broken by a fine pen almost touch), are no one digit either. The columns are the lines
    # of the boxes turned on their side.
    across = [(y, x, h, w) for x, y, w, h in big]
    for column in text_lines(across):
        count, end = 0, -math.inf
        for y, _, h, _ in (across[i] for i in column):
            if y >= end + ROW_GAP * h:
                count += 1
            end = max(end, y + h)
        columns = max(columns, count)
    return CAP * float(median([b[3] for b in big])) if columns >= 3 else math.inf


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


class Ink(NamedTuple):
    """The ink of a page cut into pieces."""

    pieces: list[Piece]  # the pieces that may be (parts of) digits
    everything: list[Piece]  # every piece, junk included
    not_lines: np.ndarray | None  # 0 on the lines taken out, None when there were none


def ink_masks(page: InkPage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weak ink, strong ink and ruled lines of the page (0/1 masks), made once per page."""
    if page.masks is None:
        ink8 = page.ink8
        # Otsu's level from every fourth row: its histogram is most of its cost, and a quarter
        # of the rows gives the same level, or one grey level apart.
        otsu, _ = cv2.threshold(ink8[::4], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        # Otsu's level separates ink from paper when there is ink; on a blank page it splits
        # the noise, hence the floor. The cap keeps faint digits next to bold ones.
        strong_level = min(max(otsu / 255.0, STRONG_INK), 0.5)
        # cv2.threshold on uint8 keeps what is above the level's floor: the same as
        # ink8 > level, in one pass instead of numpy's two.
        weak = cv2.threshold(ink8, MIN_INK * 255, 1, cv2.THRESH_BINARY)[1]
        strong = cv2.threshold(ink8, strong_level * 255, 1, cv2.THRESH_BINARY)[1]
        page.masks = weak, strong, ruled_lines(weak)
    return page.masks


def ink_pieces(page: InkPage, line_length: float | None = None) -> Ink:
    """Threshold the ink, drop ruled lines and junk: the pieces of ink that may be digits.

    With `line_length`, straight lines at least that long (any thickness) are removed too.
    """
    weak, strong, lines = ink_masks(page)
    if line_length is not None:
        lines = lines | long_lines(weak, max(9, round(line_length)), known=lines)
    not_lines = None
    if cv2.countNonZero(lines):
        not_lines = 1 - lines
        weak = weak & not_lines
        strong = strong & not_lines
    h, w = weak.shape
    comps = _components(strong, weak, page.min_side)
    if line_length is not None and not_lines is not None:
        # What is left of a line (its ends, the stubs kept where other lines cross it) lies
        # along it; a digit that touches a line has most of its ink away from it.
        near = cv2.dilate(1 - not_lines, rect_kernel(7, 7))
        comps = [
            c
            for c in comps
            if cv2.countNonZero(c.mask & near[c.y : c.y + c.h, c.x : c.x + c.w]) < 0.5 * c.area
        ]
    # Plain Python from here: a handful of pieces, where numpy's per-call cost dominates.
    kept = [c for c in comps if not _is_junk(c, (h, w), page.speck)]
    if not_lines is not None:
        # A box's sides, once its top and bottom are taken out, stand between them like 1s.
        near = cv2.dilate(1 - not_lines, rect_kernel(5, 5))
        kept = [c for c in kept if not _is_bridge(c, near)]
    kept = _without_boxes(kept)
    return Ink(kept, comps, not_lines)


def _is_bridge(piece: Piece, near_lines: np.ndarray) -> bool:
    """A thin straight stroke from one removed line to another (both its ends on them): a
    box's side, a table's rule between two of its lines, not a 1."""
    x, y, w, h = piece[:4]
    if min(w, h) > BRIDGE_WIDTH * max(w, h):
        return False
    near = near_lines[y : y + h, x : x + w]
    if h >= w:  # upright: its top and bottom rows
        ends = (piece.mask[0] & near[0]).any(), (piece.mask[-1] & near[-1]).any()
    else:
        ends = (piece.mask[:, 0] & near[:, 0]).any(), (piece.mask[:, -1] & near[:, -1]).any()
    return all(ends)


def _without_boxes(pieces: list[Piece]) -> list[Piece]:
    """The pieces less the frames drawn around digits: a piece that holds another, of a
    digit's size against it (BOXED), inside one of its holes is a box around a number (the
    loop of a 0 or a 6 holds nothing that big)."""
    if len(pieces) < 2:
        return pieces
    if len(pieces) <= 16:  # a frame of a few digits: plain Python is cheaper than numpy
        held = [
            [a.x < c.x and a.y < c.y and c.x + c.w < a.x + a.w and c.y + c.h < a.y + a.h
             and c.h >= BOXED * a.h for c in pieces]
            for a in pieces
        ]  # fmt: skip
        boxes = {i for i, row in enumerate(held) if any(row)}
        boxes = {i for i in boxes if _holds_in_a_hole(pieces, i, np.array(held[i]))}
        return [c for i, c in enumerate(pieces) if i not in boxes] if boxes else pieces
    b = np.array([c[:4] for c in pieces])
    x, y, x2, y2, h = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3], b[:, 3]
    # holds[i, j]: piece j's box lies strictly inside piece i's, and j is a digit against i.
    holds = (
        (x[None, :] > x[:, None]) & (y[None, :] > y[:, None])
        & (x2[None, :] < x2[:, None]) & (y2[None, :] < y2[:, None])
        & (h[None, :] >= BOXED * h[:, None])
    )  # fmt: skip
    boxes = {i for i in np.flatnonzero(holds.any(axis=1)) if _holds_in_a_hole(pieces, i, holds[i])}
    return [c for i, c in enumerate(pieces) if i not in boxes] if boxes else pieces


def _hugs_its_box(piece: Piece) -> bool:
    """Nearly all its ink along the edges of its box: a rectangle drawn around something."""
    band = max(2, round(FRAME_BAND * min(piece.w, piece.h)))
    middle = piece.mask[band:-band, band:-band]
    return cv2.countNonZero(middle) <= (1 - FRAME_INK) * piece.area if middle.size else False


def _holds_in_a_hole(pieces: list[Piece], i: int, inside: np.ndarray) -> bool:
    piece = pieces[i]
    if _hugs_its_box(piece):
        return True  # a frame whose outline a pixel's gap left open
    contours, hierarchy = cv2.findContours(piece.mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return False
    holes = [cv2.boundingRect(c) for c, k in zip(contours, hierarchy[0], strict=True) if k[3] >= 0]
    for j in np.flatnonzero(inside):
        c = pieces[j]
        cx, cy = c.x - piece.x, c.y - piece.y
        for hx, hy, hw, hh in holes:
            if hx <= cx and hy <= cy and cx + c.w <= hx + hw and cy + c.h <= hy + hh:
                return True
    return False


def writing_height(pieces: list[Piece]) -> float:
    """The height of the writing in the work copy (0 when there is none): the median height
    of the pieces that hold half of the strong ink, the strongest first. Faint or small
    specks (paper grain, cardboard fibres, the show-through of the other side of the page)
    may outnumber the digits' pieces, but hold little of the ink. A blob (a dark shadow, a
    smudge: solid, and holding the ink of several digits) is left out: one such piece may
    hold more strong ink than all the digits together.
    """
    ranked = sorted(pieces, key=lambda c: -c.strong_area)
    top = ranked[:PIECES_FOR_TYPICAL]
    if top:
        ink, tall = median([c.strong_area for c in top]), median([c.h for c in top])
        ranked = [c for c in ranked if not _is_solid_blob(c, ink, tall)] or ranked
    half, total, heights = 0.5 * sum(c.strong_area for c in ranked), 0, []
    for c in ranked:
        heights.append(c.h)
        total += c.strong_area
        if total >= half:
            break
    return float(median(heights)) if heights else 0.0


def _is_solid_blob(piece: Piece, typical_ink: float, typical_height: float) -> bool:
    """Solid, holding the strong ink of several typical pieces, and of their size (at most a
    few times as tall): a shadow, a smudge, a marker's underline among digits. A 1 is solid
    too, but holds less ink than most digits; a big digit alone among specks or the remnants
    of a grid is far taller than they are."""
    return (
        piece.area >= SOLID * piece.w * piece.h
        and piece.strong_area >= INK_OF_FEW_DIGITS * typical_ink
        and piece.h <= BLOB_OF_WRITING * typical_height
    )


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
