"""From a camera frame to MNIST-style 28x28 digit crops, with OpenCV and numpy only.

A model trained on MNIST has only seen white, centred, size-normalised digits on pure black.
A photo has dark ink on grey-ish paper under uneven light, at any size and place, with dirt,
ruled lines and the page edge around. The steps, each on the cheapest image that will do, each
in its own module:

1. the page (`page.py`): grey, polarity, a work copy, the paper, the ink; a small MNIST-like
   image is passed through;
2. lines (`lines.py`): ruled and squared paper's lines, but not the strokes they cross;
3. pieces and regions (`pieces.py`, `regions.py`): ink pieces, junk dropped, the pieces of
   one digit merged, reading order;
4. the MNIST crop (`mnist_crop.py`): each digit's own graded ink in MNIST's 28x28 layout.
A blank frame gives no digits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from mnist_edge.runtime.join import join_options
from mnist_edge.runtime.mnist_crop import at_line_height, digit_ink, to_mnist_28x28
from mnist_edge.runtime.page import (
    MAX_WORK_SIDE,
    InkPage,
    ink_page,
    mnist_like_digit,
    tight_crop_ink,
    to_gray,
)
from mnist_edge.runtime.pieces import Ink, Piece, holes, ink_masks, ink_pieces, writing_height
from mnist_edge.runtime.reading_order import line_sizes, median, reading_order
from mnist_edge.runtime.regions import digit_regions
from mnist_edge.runtime.skew import MIN_SKEW, box_back, line_angle, upright, writing_angle
from mnist_edge.runtime.split import split_options

__all__ = ["find_digit_crops", "reading_order", "to_gray", "to_mnist_28x28"]

# Digits are found where the writing is about this tall (work-copy pixels): large enough that
# the gaps between digits and between lines stay open, small enough to be cheap.
WRITING_HEIGHT = 32
LINE_LENGTH = 3.0  # a straight run this many times the writing's height is a line, not a digit
# Writing less tall than this (frame pixels) is never turned: a pixel of a digit's bottom is
# a tenth of its height, too coarse to tell the direction of its line.
MIN_TURN_HEIGHT = 16
# A hole this share of its piece's box is a cell. A sudoku's 81 cells are each about 1 % of
# the grid's box less its lines, and half that of the box of a grid photographed at 20-45
# degrees; a speck of paper left inside a thick stroke is far smaller.
CELL_SHARE = 0.003
FINE_FIRST_LOOK = 0.25  # a first look smaller than this against the frame sees down to 3 px
TABLE_LEAST = 0.3  # a table is at least this share of the page's shorter side across ...
TABLE_CELLS = 0.3  # ... and its cells cover at least this share of its box
CELL_WRITING = 0.6  # the digits in a table's cells are at most this share of a cell tall
LINE_ASPECT = 8.0  # a piece this many times as long as it is thick is a line's stretch


def page_at_writing_scale(
    gray: np.ndarray, known_grid: float | None = None
) -> tuple[InkPage, list[Piece], float]:
    """The page, its ink pieces and the writing's height, at the scale of the writing, lines
    taken out. `known_grid`: a grid is known to be there (a sudoku turned level): when it is
    not found again, its lines this long (frame pixels) are taken out all the same.

    A first look at the default work copy (WORK_SIDE pixels long) measures the writing's
    height; writing smaller than WRITING_HEIGHT there is looked at again at the scale that
    makes it that tall (at most the frame's own, at most MAX_WORK_SIDE pixels long). A 640x480
    webcam frame of a few digits needs no second look. Straight runs LINE_LENGTH times the
    writing's height are lines, removed (keeping the strokes that cross them).
    """
    page = ink_page(gray)
    if page.scale < FINE_FIRST_LOOK:
        # A big photo: small writing in it (a page of digits under 2 % of its side) is 3-5
        # pixels tall in the first look, under its usual speck size, and would not be seen.
        page.min_side = page.speck = 3.0
    ink, grid_lines, cell = without_grid(page, ink_pieces(page))
    if grid_lines is None and known_grid:
        # Turned level, a grid's thin lines may come apart at this scale and no longer be
        # found as one piece: what joins the digits is taken out all the same.
        grid_lines = known_grid * page.scale
        ink = ink_pieces(page, line_length=grid_lines)
    height = writing_height(ink.pieces)
    if cell and grid_lines is None:
        # A table whose digits are too small here to be found in its cells: they are smaller
        # than the cells, whatever the grid's own lines say of the writing's height.
        height = min(height or math.inf, CELL_WRITING * cell)
    if page.scale < 1 and 0 < height < WRITING_HEIGHT:
        scale = min(1.0, page.scale * WRITING_HEIGHT / height, MAX_WORK_SIDE / max(gray.shape))
        if scale > 1.25 * page.scale:
            ratio = scale / page.scale
            page = ink_page(gray, scale=scale, light=page.light)
            page.min_side = min(page.min_side, 0.25 * WRITING_HEIGHT)
            # Specks are judged against the writing expected here, not the page's side.
            page.speck = min(page.speck, 0.5 * height * ratio)
            if grid_lines:
                # The grid found at the first look, at this scale: measured against the
                # closer look's page it may be a little under half of it, and stay.
                ink = ink_pieces(page, line_length=grid_lines * ratio)
            else:
                ink, _, _ = without_grid(page, ink_pieces(page))
            height = writing_height(ink.pieces)
    # Ink longer than a few digits are tall: lines (a grid, a box, an underline) to take out;
    # known only where there is writing to compare with (three digit-sized pieces or more).
    longest = max((max(c.w, c.h) for c in ink.everything), default=0)
    if height and longest >= LINE_LENGTH * height and _is_writing(ink.pieces, height):
        ink = ink_pieces(page, line_length=LINE_LENGTH * height)
    page.not_lines = ink.not_lines
    return page, ink.pieces, height


def without_grid(page: InkPage, ink: Ink) -> tuple[Ink, float | None, float]:
    """The ink without the long lines of a grid that holds all the writing together; the
    length of the lines taken out (None when none were); the median height of a table's
    cells (0 when there is no table).

    Squared paper or a drawn grid joins the digits and itself into one sparse piece as large
    as the page, so the writing's height cannot be measured. A table or a sudoku may be
    smaller than the page, but has cells. Lines a third of the page's shorter side long (or
    two thirds of the smaller table's side) are taken out on trial, and kept out if what is
    left is writing: at least three pieces of its height, at most a third of the grid's size.
    A big digit's own long strokes (a 4 or a 7 filling the frame) leave a piece or two, or
    nothing; it has two holes at most.
    """
    h, w = page.work.shape
    length = min(h, w) / 3
    grids = [c for c in ink.everything if _is_grid(c, (h, w))]
    tables, cell_heights = [], []  # the tables, and the median height of each one's cells
    for c in ink.everything:
        cells = [] if _is_grid(c, (h, w)) else _table_cells(c, (h, w))
        if cells:
            tables.append(c)
            cell_heights.append(median([cv2.boundingRect(k)[3] for k in cells]))
    ruled = _parallel_lines(ink.everything, (h, w))
    if not grids and not tables and not ruled:
        return ink, None, 0.0
    longest = max([max(c.w, c.h) for c in grids + tables] + [ruled])
    length = min(length, longest / 1.5)
    cell = float(median(cell_heights)) if cell_heights else 0.0
    if grids or tables:
        # A grid photographed askew is turned level whole (find_digit_candidates): taken
        # out here line by line, what the line finder cannot follow would stay behind.
        biggest = max(grids + tables, key=lambda c: c.area)
        angle = line_angle(ink_masks(page)[0], min(biggest.w, biggest.h) // 3)
        if angle is not None and abs(angle) >= MIN_SKEW:
            return ink, None, cell
    trial = ink_pieces(page, line_length=length)
    height = writing_height(trial.pieces)
    if 0 < height <= longest / LINE_LENGTH and _is_writing(trial.pieces, height):
        return trial, length, cell
    return ink, None, cell


def _is_grid(piece: Piece, shape: tuple[int, int]) -> bool:
    """Half the page's shorter side long and sparse: lines joined into a grid or a table."""
    return max(piece.w, piece.h) >= 0.5 * min(shape) and piece.area < 0.35 * piece.w * piece.h


def _table_cells(piece: Piece, shape: tuple[int, int]) -> list[np.ndarray]:
    """The cells of a table, a sudoku, a row of boxes, of any size in the page ([] when the
    piece is none): a few digits across at least, with four cells or more that cover much of
    it. (Small in the first look, its lines and the digits in its cells may cover most of
    its box.)"""
    if max(piece.w, piece.h) < TABLE_LEAST * min(shape) or piece.area >= 0.8 * piece.w * piece.h:
        return []
    cells = holes(piece)
    if len(cells) < 4:
        return []  # a digit has two holes at most: no rectangle to measure
    # Against the table's own rectangle: photographed askew, its box is up to twice as big
    # (a square turned by 25 degrees: 1.8 times), and its cells a smaller share of that.
    _, (rw, rh), _ = cv2.minAreaRect(cv2.findNonZero(piece.mask))
    own = min(rw * rh, piece.w * piece.h)
    # Mostly cells: a few loops of digits run together, or the specks in a dark edge, are
    # holes too, but small against their piece.
    areas = ((c, cv2.contourArea(c)) for c in cells)
    big = [(c, a) for c, a in areas if a >= CELL_SHARE * own]
    enough = len(big) >= 4 and sum(a for _, a in big) >= TABLE_CELLS * own
    return [c for c, _ in big] if enough else []


def _parallel_lines(pieces: list[Piece], shape: tuple[int, int]) -> float:
    """The length of three or more thin straight pieces of about one length, a few digits
    long at least: the lines of a table that the paper's line finder took half of (0 when
    there are none). Three 1s of a number are that too, but taking them out leaves no
    writing, and the trial is not kept."""
    least = TABLE_LEAST * min(shape)
    lengths = [
        max(c.w, c.h) for c in pieces if max(c.w, c.h) >= max(least, LINE_ASPECT * min(c.w, c.h))
    ]
    if len(lengths) < 3:
        return 0.0
    typical = float(median(lengths))
    alike = [n for n in lengths if 0.75 * typical <= n <= 1.25 * typical]
    return typical if len(alike) >= 3 else 0.0


def _is_writing(pieces: list[Piece], height: float) -> bool:
    """Three pieces of the writing's height or more: digits to compare a line with."""
    return sum(0.5 * height <= c.h <= 2 * height for c in pieces) >= 3


class Candidate(NamedTuple):
    """One region of a frame: its box and 28x28 crop, the ways to read it as 2 or 3
    touching digits (each a list of (box, crop) side by side), and, when it may be one digit
    with the next region (a digit in two pieces), the two as one (box, crop)."""

    box: tuple[int, int, int, int]
    crop: np.ndarray
    splits: list[list[tuple[tuple[int, int, int, int], np.ndarray]]]
    joined: tuple[tuple[int, int, int, int], np.ndarray] | None = None
    wide: float = 1.0  # its width over its line's typical width (reading_order.line_sizes)


def find_digit_candidates(frame: np.ndarray) -> list[Candidate]:
    """Every digit-like region of a BGR or grey frame in reading order, with its splits.

    A blank frame gives []. What splitting and joining to keep is the classifier's call
    (`mnist_edge.runtime.digits.recognize`).
    """
    gray = to_gray(frame)
    h, w = gray.shape
    if h == 0 or w == 0:
        return []
    digit = mnist_like_digit(gray)
    if digit is not None:
        # Already an MNIST digit: pass it through untouched, as the test set does.
        return [Candidate((0, 0, w, h), digit.astype(np.float32) / 255.0, [])]
    ink = tight_crop_ink(gray)
    if ink is not None:
        return [Candidate((0, 0, w, h), to_mnist_28x28(ink), [])] if ink.any() else []
    page, pieces, height = page_at_writing_scale(gray)
    back = None
    # A grid still there, whole, with cells (a big digit has a hole or two at most).
    grids = [c for c in pieces if _table_cells(c, page.work.shape)]
    if grids:
        # Perhaps a page photographed askew: the direction of lines as long as a third of the
        # biggest grid's side (a small table's lines are shorter than a third of the page).
        grid = max(grids, key=lambda c: c.area)
        angle = line_angle(ink_masks(page)[0], min(grid.w, grid.h) // 3)
        if angle is not None and abs(angle) >= MIN_SKEW:
            turned, turn_back = upright(gray, angle, [page.frame_box(grid[:4])])
            # Turned level, the grid's side is its box's over cos + sin of the angle; lines
            # a third of that long are the grid's (a row or a column of its cells).
            turn = math.radians(abs(angle))
            side = max(grid.w, grid.h) / page.scale / (math.cos(turn) + math.sin(turn))
            level = page_at_writing_scale(turned, known_grid=side / 3)
            # Kept when the grid came apart into writing: a big digit alone (a 4, a 7) has
            # long straight strokes too, and stays as it was.
            shape = level[0].work.shape
            if not any(_is_grid(c, shape) or _table_cells(c, shape) for c in level[1]) and (
                _is_writing(level[1], level[2])
            ):
                (page, pieces, height), back = level, turn_back
    regions = digit_regions(pieces, height)
    if back is None:
        # Perhaps writing photographed askew: its lines drift into each other.
        angle = None
        if height / page.scale >= MIN_TURN_HEIGHT:
            angle = writing_angle([b for b, _ in regions], height)
        if angle is not None and abs(angle) >= MIN_SKEW:
            # Only the writing's part of the frame, turned (see upright).
            writing = [page.frame_box(c[:4]) for c in pieces if 0.5 * height <= c.h <= 2 * height]
            turned, turn_back = upright(gray, angle, writing, margin=height / page.scale)
            level = page_at_writing_scale(turned)
            if _is_writing(level[1], level[2]):
                (page, pieces, height), back = level, turn_back
                regions = digit_regions(pieces, height)
    heights, widths = line_sizes([b for b, _ in regions])
    options = split_options(regions, heights)
    joins = join_options(regions, heights)

    def read_as(box, parts, line: float, clip_x: bool = False):
        """(the box in the frame's pixels, the 28x28 crop) of a region of the work copy."""
        ink = at_line_height(digit_ink(page, parts, box, clip_x=clip_x), box[3], line)
        frame_box = page.frame_box(box)
        if back is not None:
            frame_box = box_back(frame_box, back, gray.shape)
        return frame_box, to_mnist_28x28(ink)

    out = []
    for i, (box, parts) in enumerate(regions):
        line = heights[i]
        splits = [[read_as(b, p, line, clip_x=True) for b, p in cut] for cut in options.get(i, [])]
        joined = read_as(*joins[i], line) if i in joins else None
        wide = box[2] / max(1.0, widths[i])
        out.append(Candidate(*read_as(box, parts, line), splits, joined, wide))
    return out


def find_digit_crops(
    frame: np.ndarray,
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Every digit in a BGR or grey frame: [(box (x, y, w, h) in frame pixels, 28x28 float32)].

    In reading order (lines top to bottom, each left to right); a blank frame gives []. The
    regions as found, unsplit: splitting touching digits needs the classifier (recognize).
    """
    return [(c.box, c.crop) for c in find_digit_candidates(frame)]
