"""From a camera frame to MNIST-style 28x28 digit crops, with OpenCV and numpy only.

A model trained on MNIST has only seen white, centred, size-normalised digits on pure black.
A photo has dark ink on grey-ish paper under uneven light, at any size and place, with dirt,
ruled lines and the page edge around. The steps, each on the cheapest image that will do, each
in its own module:

1. the page (`page.py`): grey, polarity, a work copy, the paper, the ink; a small MNIST-like
   image is passed through;
2. lines (`lines.py`): ruled and squared paper's lines, but not the strokes they cross;
3. regions (`regions.py`): ink pieces, junk dropped, pieces of one digit merged, reading order;
4. the MNIST crop (`mnist_crop.py`): each digit's own graded ink in MNIST's 28x28 layout.
A blank frame gives no digits.
"""

from __future__ import annotations

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
from mnist_edge.runtime.reading_order import line_heights, reading_order
from mnist_edge.runtime.regions import (
    Ink,
    Piece,
    digit_regions,
    ink_masks,
    ink_pieces,
    writing_height,
)
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


def page_at_writing_scale(gray: np.ndarray) -> tuple[InkPage, list[Piece], float]:
    """The page, its ink pieces and the writing's height, at the scale of the writing, lines
    taken out.

    A first look at the default work copy (WORK_SIDE pixels long) measures the writing's
    height; writing smaller than WRITING_HEIGHT there is looked at again at the scale that
    makes it that tall (at most the frame's own, at most MAX_WORK_SIDE pixels long). A 640x480
    webcam frame of a few digits needs no second look. Straight runs LINE_LENGTH times the
    writing's height are lines, removed (keeping the strokes that cross them).
    """
    page = ink_page(gray)
    ink = ink_pieces(page)
    ink = without_grid(page, ink)
    height = writing_height(ink.pieces)
    if page.scale < 1 and 0 < height < WRITING_HEIGHT:
        scale = min(1.0, page.scale * WRITING_HEIGHT / height, MAX_WORK_SIDE / max(gray.shape))
        if scale > 1.25 * page.scale:
            page = ink_page(gray, scale=scale, light=page.light)
            page.min_side = min(page.min_side, 0.25 * WRITING_HEIGHT)
            ink = without_grid(page, ink_pieces(page))
            height = writing_height(ink.pieces)
    # Ink longer than a few digits are tall: lines (a grid, a box, an underline) to take out;
    # known only where there is writing to compare with (three digit-sized pieces or more).
    longest = max((max(c.w, c.h) for c in ink.everything), default=0)
    if height and longest >= LINE_LENGTH * height and _is_writing(ink.pieces, height):
        ink = ink_pieces(page, line_length=LINE_LENGTH * height)
    page.not_lines = ink.not_lines
    return page, ink.pieces, height


def without_grid(page: InkPage, ink: Ink) -> Ink:
    """The ink without the long lines of a grid that holds all the writing together.

    Squared paper or a drawn grid joins the digits and itself into one sparse piece as large
    as the page, so the writing's height cannot be measured. Lines a third of the page's
    shorter side long are taken out on trial, and kept out if what is left is writing: at
    least three pieces of its height, at most a third of the grid's size. A big digit's own
    long strokes (a 4 or a 7 filling the frame) leave a piece or two, or nothing.
    """
    h, w = page.work.shape
    length = min(h, w) / 3
    grids = [
        c for c in ink.everything if max(c.w, c.h) >= 1.5 * length and c.area < 0.35 * c.w * c.h
    ]
    if not grids:
        return ink
    trial = ink_pieces(page, line_length=length)
    height = writing_height(trial.pieces)
    longest = max(max(c.w, c.h) for c in grids)
    if 0 < height <= longest / LINE_LENGTH and _is_writing(trial.pieces, height):
        return trial
    return ink


def _is_grid(piece: Piece, shape: tuple[int, int]) -> bool:
    """Half the page's shorter side long and sparse: lines joined into a grid or a table."""
    return max(piece.w, piece.h) >= 0.5 * min(shape) and piece.area < 0.35 * piece.w * piece.h


def _cells(piece: Piece) -> int:
    """The holes in a piece at least CELL_SHARE of its box: the cells of a grid or a table."""
    contours, hierarchy = cv2.findContours(piece.mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return 0
    least = CELL_SHARE * piece.w * piece.h
    inner = [c for c, h in zip(contours, hierarchy[0], strict=True) if h[3] >= 0]
    return sum(cv2.contourArea(c) >= least for c in inner)


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
    grids = [c for c in pieces if _is_grid(c, page.work.shape) and _cells(c) >= 4]
    if grids:
        # Perhaps a page photographed askew.
        angle = line_angle(ink_masks(page)[0])
        if angle is not None and abs(angle) >= MIN_SKEW:
            grid = max(grids, key=lambda c: c.area)
            turned, turn_back = upright(gray, angle, [page.frame_box(grid[:4])])
            level = page_at_writing_scale(turned)
            # Kept when the grid came apart into writing: a big digit alone (a 4, a 7) has
            # long straight strokes too, and stays as it was.
            if not any(_is_grid(c, level[0].work.shape) for c in level[1]) and _is_writing(
                level[1], level[2]
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
    heights = line_heights([b for b, _ in regions])
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
        out.append(Candidate(*read_as(box, parts, line), splits, joined))
    return out


def find_digit_crops(
    frame: np.ndarray,
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Every digit in a BGR or grey frame: [(box (x, y, w, h) in frame pixels, 28x28 float32)].

    In reading order (lines top to bottom, each left to right); a blank frame gives []. The
    regions as found, unsplit: splitting touching digits needs the classifier (recognize).
    """
    return [(c.box, c.crop) for c in find_digit_candidates(frame)]
