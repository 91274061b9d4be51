"""Reading order: boxes of digits grouped into lines of writing, top to bottom, each left to
right, and the height a digit has in its line (what "small" is measured against).
"""

from __future__ import annotations


def text_lines(boxes: list[tuple[int, int, int, int]]) -> list[list[int]]:
    """Indices of boxes (x, y, w, h) grouped in lines of writing, top to bottom, each left to
    right.

    Taken top to bottom by their vertical middle, a box joins the line whose band holds its
    middle: the band from the median top to the median bottom of the line's boxes (and 15 %
    of that beyond), so one tall digit (a 7 with a long tail) does not widen a line into the
    next.
    """
    lines: list[list[int]] = []
    tops: list[list[int]] = []
    bottoms: list[list[int]] = []
    bands: list[tuple[float, float]] = []  # each line's median top and bottom, kept up to date
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2):
        x, y, w, h = boxes[i]
        middle = y + h / 2
        best, best_gap = None, None
        for k, (top, bottom) in enumerate(bands):
            slack = 0.15 * (bottom - top)  # a box of the next line is a half digit further
            if top - slack <= middle <= bottom + slack:
                gap = abs(middle - (top + bottom) / 2)
                if best_gap is None or gap < best_gap:
                    best, best_gap = k, gap
        if best is None:
            lines.append([i])
            tops.append([y])
            bottoms.append([y + h])
            bands.append((y, y + h))
        else:
            lines[best].append(i)
            tops[best].append(y)
            bottoms[best].append(y + h)
            bands[best] = (median(tops[best]), median(bottoms[best]))
    order = sorted(range(len(lines)), key=lambda k: bands[k][0])
    return [sorted(lines[k], key=lambda i: boxes[i][0]) for k in order]


def median(values: list) -> float:
    """statistics.median, without its overhead (this runs for every box of every line)."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def line_sizes(boxes: list[tuple[int, int, int, int]]) -> tuple[list[float], list[float]]:
    """For each box (x, y, w, h), the height and the width a digit has in its line of
    writing: the median height and width of the line's boxes, in a line of three or more;
    the box's own otherwise (a digit alone or in a pair has nothing to be compared with)."""
    heights = [float(b[3]) for b in boxes]
    widths = [float(b[2]) for b in boxes]
    for line in text_lines(boxes):
        if len(line) >= 3:
            height = float(median([boxes[i][3] for i in line]))
            width = float(median([boxes[i][2] for i in line]))
            for i in line:
                heights[i], widths[i] = height, width
    return heights, widths


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """Indices of boxes (x, y, w, h) in reading order: lines top to bottom, each left to right."""
    return [i for line in text_lines(boxes) for i in line]
