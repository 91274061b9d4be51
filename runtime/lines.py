"""Lines that are not digits: ruled and squared paper, table edges, found in the ink mask."""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np

from mnist_edge.runtime.page import rect_kernel

SLABS = 4  # ruled lines are looked for in this many vertical slabs (and horizontal ones)


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
    # Ink per row (column) and slab, by one cv2.reduce per slab (cheaper than an area resize);
    # rows of equal slabs side by side are one reduce of the image seen as SLABS times as
    # many rows.
    if not vertical and w % SLABS == 0:
        sums = cv2.reduce(widened.reshape(h * SLABS, w // SLABS), 1, cv2.REDUCE_SUM,
                          dtype=cv2.CV_32S)  # fmt: skip
        cover = sums.reshape(h, SLABS) >= 0.6 * (w // SLABS)
    else:
        axis, n = (0, h) if vertical else (1, w)
        edges = [round(i * n / SLABS) for i in range(SLABS + 1)]
        slab_cover = [
            cv2.reduce(widened[a:b] if vertical else widened[:, a:b], axis, cv2.REDUCE_SUM,
                       dtype=cv2.CV_32S) >= 0.6 * (b - a)
            for a, b in pairwise(edges)
        ]  # fmt: skip
        cover = np.vstack(slab_cover).T if vertical else np.hstack(slab_cover)
    slabs = np.count_nonzero(cover.any(axis=0))
    if not slabs:
        return None, False
    # A line shows in three slabs or more: with candidates in fewer there is none (the
    # common case, a digit's long stroke or bar: cheaper to say so than to look).
    if slabs < min(3, SLABS):
        return None, True
    cover = np.ascontiguousarray(cover, dtype=np.uint8)  # one row per image row (column)
    across = cv2.dilate(cover, rect_kernel(1, 9)).sum(axis=1) >= min(3, SLABS)
    if not across.any():
        return None, True
    rows = cv2.dilate(cover, rect_kernel(1, 5)) & across[:, None].astype(np.uint8)
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
    widened = {
        False: cv2.dilate(weak, rect_kernel(1, 3)),
        True: cv2.dilate(weak, rect_kernel(3, 1)),
    }
    for vertical in (False, True):
        band, covered = _line_band(widened[vertical], vertical)
        if not vertical:
            maybe_long = covered
        if band is None:
            continue
        along, thick = (
            ((1, run), (4, max(4, h // 16))) if vertical else ((run, 1), (max(4, w // 16), 4))
        )
        straight = cv2.morphologyEx(weak, cv2.MORPH_OPEN, rect_kernel(*along))
        thick_ink = cv2.morphologyEx(weak, cv2.MORPH_OPEN, rect_kernel(*thick))
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
        # An opening is an erosion, then a dilation: where the erosion leaves nothing (no
        # run that long: the common case), there is no line, and the rest is skipped.
        eroded = cv2.erode(tilted[ink_rows], rect_kernel(length, 1)) if ink_rows.size else None
        if eroded is not None and eroded.any():
            long_run = np.zeros_like(weak)
            long_run[ink_rows] = cv2.dilate(eroded, rect_kernel(length, 1))
    if long_run is not None and long_run.any():
        if thick_h is None:
            thick_h = cv2.morphologyEx(weak, cv2.MORPH_OPEN, rect_kernel(max(4, w // 16), 4))
        found[False] = found.get(False, 0) | (weak & long_run & ~thick_h & 1)
    lines = np.zeros_like(weak)
    if not found:
        return lines
    rest = weak.copy()
    for mask in found.values():
        rest &= ~mask
    for vertical, mask in found.items():
        across = rect_kernel(4, 1) if vertical else rect_kernel(1, 4)
        before = cv2.dilate(rest, across, anchor=(3, 0) if vertical else (0, 3))
        after = cv2.dilate(rest, across, anchor=(0, 0))
        lines |= mask & ~(before | after) & 1
    return lines


def long_lines(weak: np.ndarray, length: int, known: np.ndarray | None = None) -> np.ndarray:
    """Straight lines at least `length` long, of any thickness: a 0/1 mask of their pixels.

    What runs straight across several digits' heights is a line: a sudoku's or a table's grid
    drawn with a marker, a box around a number, an underline. Found as straight runs a third
    as long (within a 2-pixel wobble either way), chained: a hand-drawn line wanders and
    tilts a little, a run of a third of its length does not; the chain must stay within a
    fifth of its length across (a tilt up to about 10 degrees). Every row of a thick line is a
    run too, so a marker's line goes whole. Line pixels within 3 pixels of other ink are kept:
    where a stroke crosses or touches the line, the stroke stays whole. `known`: lines found
    already (ruled_lines), which are neither such ink nor a gap in a longer line.
    """
    found = np.zeros_like(weak)
    segment = max(9, length // 3)
    for vertical in (False, True):
        across, along = ((5, 1), (1, segment)) if vertical else ((1, 5), (segment, 1))
        run = cv2.morphologyEx(cv2.dilate(weak, rect_kernel(*across)), cv2.MORPH_OPEN,
                               rect_kernel(*along))  # fmt: skip
        count, labels, stats, _ = cv2.connectedComponentsWithStats(run, connectivity=8)
        along_extent = stats[:, cv2.CC_STAT_HEIGHT if vertical else cv2.CC_STAT_WIDTH]
        across_extent = stats[:, cv2.CC_STAT_WIDTH if vertical else cv2.CC_STAT_HEIGHT]
        # Long, and straight: a thick curved stroke (a bold 3's arc) is made of runs too,
        # but they wander across far more than a line's tilt.
        keep = (along_extent >= length) & (across_extent <= 0.2 * along_extent)
        keep[0] = False
        if keep.any():
            found |= weak & keep[labels].view(np.uint8)
    if not found.any():
        return found
    rest = weak & ~found & 1
    if known is not None:
        rest &= ~known
    near = cv2.dilate(rest, rect_kernel(7, 7))
    return found & ~near & 1
