"""Recognition-driven joining: where two regions side by side may be one digit in pieces.

The mirror of splitting (`runtime/split.py`). A digit whose strokes do not meet — a 4 written
in two strokes, a 9 whose stem stops short of its loop, a hair-line pen or a faint pencil
that breaks where it is lightest — is two pieces of ink next to each other, which the
geometric merging (`regions.py`) keeps apart, since it must never glue neighbouring digits
together. Here, two neighbours of a line that (almost) touch and together are no wider than
one digit are also read as one region, in the frame's one batch, and `choose_join` keeps the
pair unless the joined reading is sure and one of the two was not: two digits written close
are each read surely, and a pair of sure digits is never joined.
"""

from __future__ import annotations

from mnist_edge.runtime.pieces import Piece

Box = tuple[int, int, int, int]

JOIN_GAP = 0.1  # two regions at most this far apart (times the pair's height) ...
JOIN_ASPECT = 1.1  # ... and together at most this wide for their height may be one digit
MAX_JOIN_CROPS = 16  # joined crops per frame, the closest pairs first
JOINED_SURE = 0.95  # the joined reading at least this sure ...
PART_UNSURE = 0.9  # ... and one of the two read alone less sure than this


def joined_box(a: Box, b: Box) -> Box:
    x1, y1 = min(a[0], b[0]), min(a[1], b[1])
    x2, y2 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x1, y1, x2 - x1, y2 - y1


def join_options(
    regions: list[tuple[Box, list[Piece]]], heights: list[float]
) -> dict[int, tuple[Box, list[Piece]]]:
    """For each region that may be one digit with the next one in reading order, the two as
    one region: {index of the first: (box, pieces)}, at most MAX_JOIN_CROPS, closest first.

    The next region must be in the same line (their rows overlap by most of the shorter
    one), at most JOIN_GAP of a digit's height to the right (or overlapping), and the two
    together no wider than JOIN_ASPECT times a digit's height. A digit's height is the
    pair's, or less where its line's digits are smaller (`heights`,
    reading_order.line_sizes): a long-tailed 9 makes the pair beside it tall, not narrow.
    """
    found = []
    for i in range(len(regions) - 1):
        (a, pa), (b, pb) = regions[i], regions[i + 1]
        shared_rows = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        if shared_rows < 0.5 * min(a[3], b[3]):
            continue  # the next line, or a piece above or below
        box = joined_box(a, b)
        height = min(box[3], max(heights[i], heights[i + 1]))
        gap = b[0] - (a[0] + a[2])
        if gap <= JOIN_GAP * height and box[2] <= JOIN_ASPECT * height:
            found.append((gap / height, i, (box, pa + pb)))
    return {i: joined for _, i, joined in sorted(found)[:MAX_JOIN_CROPS]}


def choose_join(first: float, second: float, joined: float) -> bool:
    """Whether two neighbours are read as one digit: the classifier's confidence in each alone
    and in the two joined."""
    return joined >= JOINED_SURE and min(first, second) < PART_UNSURE
