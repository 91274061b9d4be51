"""A page photographed askew: the angle of its lines, and the frame turned upright.

A grid, a table or squared paper photographed at an angle defeats the search for lines along
the rows and columns, and joins the whole page into one piece. Its long straight lines tell the
angle (Hough segments a third of the page long, their median direction folded into +-45
degrees); the frame is turned by that angle and read again, and boxes are mapped back.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MIN_SKEW = 3.0  # degrees: less is handled by the line search's own tolerance


def line_angle(weak: np.ndarray) -> float | None:
    """The median direction (degrees, in -45..45) of the long straight lines in a 0/1 mask,
    None when there are fewer than four such lines."""
    h, w = weak.shape
    segments = cv2.HoughLinesP(
        weak * 255, 1, np.pi / 180, threshold=40, minLineLength=min(h, w) // 3, maxLineGap=3
    )
    if segments is None or len(segments) < 4:
        return None
    x1, y1, x2, y2 = segments.reshape(-1, 4).T.astype(np.float64)
    angles = (np.degrees(np.arctan2(y2 - y1, x2 - x1)) + 45.0) % 90.0 - 45.0
    return float(np.median(angles))


def upright(
    gray: np.ndarray, angle: float, region: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned by `angle` degrees (lines at that angle become level), the corners
    brought in paper-grey, and the affine map from it back to the frame. With `region` (a box
    of the frame: the grid), only what the turned region covers, and a little around it: the
    rest of the page (a desk, the page's edge) would otherwise set the writing's scale."""
    h, w = gray.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = round(w * c + h * s), round(w * s + h * c)
    turn[0, 2] += nw / 2 - w / 2
    turn[1, 2] += nh / 2 - h / 2
    if region is not None:
        x, y, rw, rh = region
        corners = np.array([[x, y, 1], [x + rw, y, 1], [x, y + rh, 1], [x + rw, y + rh, 1]])
        points = corners @ turn.T
        margin = 0.05 * max(rw, rh)
        x0, y0 = np.maximum(points.min(axis=0) - margin, 0)
        x1, y1 = np.minimum(points.max(axis=0) + margin, (nw, nh))
        turn[0, 2] -= x0
        turn[1, 2] -= y0
        nw, nh = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    # Paper-grey corners: replicated edges would draw streaks of ink.
    paper = int(np.median(gray[::4, ::4]))
    turned = cv2.warpAffine(gray, turn, (nw, nh), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=paper)  # fmt: skip
    return turned, cv2.invertAffineTransform(turn)


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
