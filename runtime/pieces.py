"""Ink pieces: the page's ink thresholded with hysteresis (weak pixels joined to strong ones),
the paper's lines taken out but not the strokes they cross, junk dropped (specks, what lies
along the frame's border, a box's sides and the frames drawn around digits), and the
writing's height measured from what is left. Merging pieces into digits: `regions.py`.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from mnist_edge.runtime.lines import long_lines, ruled_lines
from mnist_edge.runtime.page import MIN_INK, InkPage, rect_kernel
from mnist_edge.runtime.reading_order import median

STRONG_INK = 0.2  # ... and a region needs some pixels this dark (or Otsu's level) to count
WEAK_SHARE = 0.5  # a piece with less strong ink than this share of its pixels loses ...
FAINT_FIELD = 7  # ... its faint fields: faint ink this many pixels across every way
PIECES_FOR_TYPICAL = 9  # the writing's typical piece: the median of this many with most ink
INK_OF_FEW_DIGITS = 3.0  # a solid piece with this many typical pieces' ink is a blob ...
BLOB_OF_WRITING = 4.0  # ... unless it is more than this many times as tall (a digit alone)
SOLID = 0.5  # a region whose ink covers this much of its box ...
BRIDGE_WIDTH = 0.3  # a stroke this thin for its length, from one removed line to another ...
BOXED = 0.3  # a piece holding another this tall (against it) in a hole is a box around it
FRAME_BAND = 0.15  # ... as is one with FRAME_INK of its ink within this share of its edges
FRAME_INK = 0.85


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
    digit's size against it (BOXED), inside one of its holes, or with nearly all its ink
    along its box's edges around it, is a box around a number (the loop of a 0 or a 6
    holds nothing that big)."""
    if len(pieces) < 2:
        return pieces
    # held[i][j]: piece j's box lies strictly inside piece i's, and j is a digit against i.
    if len(pieces) <= 16:  # a frame of a few digits: plain Python is cheaper than numpy
        held = np.array([
            [a.x < c.x and a.y < c.y and c.x + c.w < a.x + a.w and c.y + c.h < a.y + a.h
             and c.h >= BOXED * a.h for c in pieces]
            for a in pieces
        ])  # fmt: skip
    else:
        b = np.array([c[:4] for c in pieces])
        x, y, x2, y2, h = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3], b[:, 3]
        held = (
            (x[None, :] > x[:, None]) & (y[None, :] > y[:, None])
            & (x2[None, :] < x2[:, None]) & (y2[None, :] < y2[:, None])
            & (h[None, :] >= BOXED * h[:, None])
        )  # fmt: skip
    boxes = {i for i in np.flatnonzero(held.any(axis=1)) if _holds_in_a_hole(pieces, i, held[i])}
    return [c for i, c in enumerate(pieces) if i not in boxes] if boxes else pieces


def holes(piece: Piece, least: float = 0.0) -> list[np.ndarray]:
    """The contours of the holes in a piece at least `least` of its box's area."""
    contours, hierarchy = cv2.findContours(piece.mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    smallest = least * piece.w * piece.h
    inner = [c for c, k in zip(contours, hierarchy[0], strict=True) if k[3] >= 0]
    return [c for c in inner if cv2.contourArea(c) >= smallest] if smallest else inner


def _hugs_its_box(piece: Piece) -> bool:
    """Nearly all its ink along the edges of its box: a rectangle drawn around something."""
    band = max(2, round(FRAME_BAND * min(piece.w, piece.h)))
    middle = piece.mask[band:-band, band:-band]
    return cv2.countNonZero(middle) <= (1 - FRAME_INK) * piece.area if middle.size else False


def _holds_in_a_hole(pieces: list[Piece], i: int, inside: np.ndarray) -> bool:
    piece = pieces[i]
    if _hugs_its_box(piece):
        return True  # a frame whose outline a pixel's gap left open
    inner = [cv2.boundingRect(c) for c in holes(piece)]
    for j in np.flatnonzero(inside):
        c = pieces[j]
        cx, cy = c.x - piece.x, c.y - piece.y
        for hx, hy, hw, hh in inner:
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
