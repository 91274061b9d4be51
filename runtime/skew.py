"""A page photographed askew: the angle of its lines or of its writing, and the frame turned
upright.

A grid, a table or squared paper photographed at an angle defeats the search for lines along
the rows and columns, and joins the whole page into one piece. Its long straight lines tell the
angle (Hough segments a third of the page long, their median direction folded into +-45
degrees). Writing photographed at an angle is read in the wrong order (a line of digits
drifts into the next) and its dense lines run into each other; the direction from each digit
to its neighbour on the right tells that angle. The frame is turned by the angle and read
again, and boxes are mapped back.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mnist_edge.runtime.page import rect_kernel
from mnist_edge.runtime.reading_order import median
from mnist_edge.runtime.regions import root_of

MIN_SKEW = 3.0  # degrees: less is handled by the line search's own tolerance
MAX_WRITING_SKEW = 30.0  # degrees: a neighbour further up or down is in another line
NEIGHBOUR_REACH = 3.0  # a digit's neighbour is at most this many digit heights away
DRIFT = 0.35  # a line of writing must rise or fall this many digit heights to be turned
# Degrees, the median step from digit to digit off the common direction: handwriting stays
# within a few (close digits bob up and down), a scatter of digits spreads over +-30.
LINK_SPREAD = 9.0


def line_angle(weak: np.ndarray, min_length: int | None = None) -> float | None:
    """The median direction (degrees, in -45..45) of the straight lines in a 0/1 mask at
    least `min_length` long (default: a third of its shorter side), None when there are
    fewer than four such lines."""
    h, w = weak.shape
    if min_length is None:
        min_length = min(h, w) // 3
    segments = cv2.HoughLinesP(
        weak * 255, 1, np.pi / 180, threshold=40, minLineLength=min_length, maxLineGap=3
    )
    if segments is None or len(segments) < 4:
        return None
    x1, y1, x2, y2 = segments.reshape(-1, 4).T.astype(np.float64)
    angles = (np.degrees(np.arctan2(y2 - y1, x2 - x1)) + 45.0) % 90.0 - 45.0
    return float(np.median(angles))


def writing_angle(boxes: list[tuple[int, int, int, int]], height: float) -> float | None:
    """The direction of the lines of writing (degrees, image y down), from digit-sized boxes
    (x, y, w, h): each is linked to its nearest neighbour on its right (within
    MAX_WRITING_SKEW of level and NEIGHBOUR_REACH heights), the links chained into lines, and
    a straight line fitted through each line's digits; the median direction of the lines of
    three or more. None with fewer than three links, when they disagree (a scatter of digits,
    not lines), or when no line rises or falls by DRIFT of a digit's height along its length:
    a short line a few degrees off level is read right as it is."""
    if height <= 0:
        return None
    centres = sorted(
        (x + w / 2, y + h / 2, h) for x, y, w, h in boxes if 0.5 * height <= h <= 2 * height
    )
    bottoms = [cy + h / 2 for _, cy, h in centres]
    if len(centres) < 4 or max(bottoms) - min(bottoms) < DRIFT * height:
        return None  # one line, level enough (a webcam frame of a number): nothing to turn
    slope = math.tan(math.radians(MAX_WRITING_SKEW))
    links = []  # (i, j, direction in degrees)
    for i, (cx, cy, ch) in enumerate(centres):
        best = None
        for j in range(i + 1, len(centres)):
            nx, ny, nh = centres[j]
            dx, dy = nx - cx, ny - cy
            if dx > NEIGHBOUR_REACH * 2 * height:
                break  # in order of x: every later one is further
            distance = math.hypot(dx, dy)
            if dx <= 0 or abs(dy) > slope * dx or distance > NEIGHBOUR_REACH * max(ch, nh):
                continue
            if best is None or distance < best[0]:
                best = (distance, j, math.degrees(math.atan2(dy, dx)))
        if best is not None:
            links.append((i, best[1], best[2]))
    if len(links) < 3:
        return None
    middle = median([d for _, _, d in links])
    # Most links along one direction: a line's digits sit a little up and down, not at random.
    if median([abs(d - middle) for _, _, d in links]) > LINK_SPREAD:
        return None
    # One neighbour's centre a little up or down turns a link by degrees; a line fitted
    # through a whole line of digits is steadier. Links far off the common direction (to a
    # digit of the next line) do not chain.
    line_of = list(range(len(centres)))
    for i, j, direction in links:
        if abs(direction - middle) <= 10.0:
            line_of[root_of(line_of, j)] = root_of(line_of, i)
    members: dict[int, list[int]] = {}
    for k in range(len(centres)):
        members.setdefault(root_of(line_of, k), []).append(k)
    fitted, drift = [], 0.0
    for line in members.values():
        if len(line) >= 3:
            # Through where the digits sit, by the median of the slopes between pairs: one
            # digit off the line does not tip it. A digit sits on its bottom, whatever its
            # height (a small 0 too), but a tail below the line (a 7's, a 9's) ends lower:
            # a digit taller than its line's typical digit sits at its top plus that height.
            xs = [centres[k][0] for k in line]
            typical = median([centres[k][2] for k in line])
            ys = [min(bottoms[k], centres[k][1] - centres[k][2] / 2 + typical) for k in line]
            rise = median([
                (ys[b] - ys[a]) / (xs[b] - xs[a])
                for a in range(len(line)) for b in range(a + 1, len(line)) if xs[b] > xs[a]
            ])  # fmt: skip
            fitted.append(math.degrees(math.atan(rise)))
            drift = max(drift, abs(rise) * (max(xs) - min(xs)))
    if not fitted or drift < DRIFT * height:
        return None
    return float(median(fitted))


def upright(
    gray: np.ndarray,
    angle: float,
    boxes: list[tuple[int, int, int, int]] | None = None,
    margin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned by `angle` degrees (lines at that angle become level), what the turn
    brings in from outside the frame filled with paper, and the affine map from it back to the
    frame. With `boxes` (of the frame: a grid, or the pieces of tilted writing), only the box
    around them once turned, and a little around it (at least `margin` pixels): the rest of
    the page (a desk, the page's edge) would otherwise set the writing's scale, and the box
    around tilted writing, turned, would also take in the corners beside it, where a desk
    along the frame's border would no longer lie along the border (where it is known not to
    be writing)."""
    h, w = gray.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = round(w * c + h * s), round(w * s + h * c)
    turn[0, 2] += nw / 2 - w / 2
    turn[1, 2] += nh / 2 - h / 2
    if boxes:
        corners = np.array(
            [p for x, y, bw, bh in boxes for p in ((x, y, 1), (x + bw, y, 1), (x, y + bh, 1),
                                                   (x + bw, y + bh, 1))]
        )  # fmt: skip
        points = corners @ turn.T
        low, high = points.min(axis=0), points.max(axis=0)
        margin = max(margin, 0.05 * float(max(high - low)))
        x0, y0 = np.maximum(low - margin, 0)
        x1, y1 = np.minimum(high + margin, (nw, nh))
        turn[0, 2] -= x0
        turn[1, 2] -= y0
        nw, nh = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    turned = cv2.warpAffine(gray, turn, (nw, nh), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    # Interpolated like the frame: a pixel that is partly outside is partly black, and filled.
    inside = cv2.warpAffine(np.full(gray.shape, 255, np.uint8), turn, (nw, nh),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)  # fmt: skip
    _fill_with_paper(turned, inside)
    return turned, cv2.invertAffineTransform(turn)


def _fill_with_paper(turned: np.ndarray, inside: np.ndarray) -> None:
    """What the turn brought in from outside the frame, filled with the brightness of the
    paper along the frame's edge next to it, in place. One grey for all of it is darker than a
    white page or lighter than a shaded one, and an average of the frame nearby is darker than
    its paper (its ink is in it): either is read as ink along the page's new edges.
    Replicated edges would draw streaks of ink. The paper near the edge is the brightest the
    frame is within a few ink strokes (a max filter), carried outwards step by step; all on
    an eighth-size copy, smoothed."""
    outside = inside < 255
    if not outside.any():
        return
    h, w = turned.shape
    size = (max(1, w // 8), max(1, h // 8))
    # An eighth-size pixel counts only when all of it is inside the frame; 0 is "not known"
    # (a black pixel of the frame counts as 1).
    small = np.maximum(cv2.resize(turned, size, interpolation=cv2.INTER_AREA), 1)
    small[cv2.resize(inside, size, interpolation=cv2.INTER_AREA) < 255] = 0
    paper = cv2.dilate(small, rect_kernel(5, 5))
    paper[small == 0] = 0
    for _ in range(max(size)):
        unknown = paper == 0
        if not unknown.any():
            break
        grown = cv2.dilate(paper, rect_kernel(3, 3))
        paper[unknown] = grown[unknown]
    if (paper == 0).any():  # no pixel of the frame at all
        paper[paper == 0] = 255
    paper = cv2.resize(cv2.blur(paper, (5, 5)), (w, h), interpolation=cv2.INTER_LINEAR)
    turned[outside] = paper[outside]


def box_back(box: tuple[int, int, int, int], back: np.ndarray, shape: tuple[int, int]) -> tuple:
    """A box (x, y, w, h) of the turned frame as the box around it in the original frame."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64)
    points = corners @ back.T
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(shape[1], int(x1)), min(shape[0], int(y1))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)
