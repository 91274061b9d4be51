"""Results drawn on a frame: a box, the digit and its confidence per digit, a banner, and on
request what the model saw (each digit's 28x28 input, enlarged, beside its box).

The live loop and `serve` draw boxes and labels on every frame; `predict --save-annotated`
adds the insets. On a dense page (a sheet of 120 digits) an inset under its box would cover
the next line's digits, so each inset takes the first free place beside its box (under,
over, right, left), and when the page is too dense for that the picture is drawn larger
(up to MAX_ZOOM times) until every inset has a free place.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_edge.runtime.digits import FrameResult

GOOD_COLOUR = (60, 200, 60)  # BGR
WEAK_COLOUR = (0, 160, 255)
TEXT_COLOUR = (255, 255, 255)
MNIST_SIDE = 28
MAX_ZOOM = 3  # a dense page's annotated copy is drawn at most this many times larger
GAP = 2  # pixels between a box and its inset

Rect = tuple[int, int, int, int]  # x, y, w, h


def to_bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame


def draw_results(
    frame: np.ndarray, result: FrameResult, banner: str | None = None, insets: bool = False
) -> np.ndarray:
    """A copy of the frame with a box, the digit and its confidence per digit, and a banner.

    With `insets`, each digit's 28x28 input (what the model saw) is drawn beside its box, at
    least twice enlarged, so a wrong reading shows whether the crop or the model was wrong.
    On a page too dense for the insets to sit beside their boxes without covering other
    digits, the copy is up to MAX_ZOOM times the frame's size. Labels and insets stay inside
    the image, however small it is.
    """
    out = to_bgr(frame)
    zoom, places = place_insets(result, out.shape) if insets else (1, [None] * len(result.digits))
    boxes = [_scaled(d.box, zoom) for d in result.digits]
    if zoom > 1:
        out = cv2.resize(out, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    else:
        out = out.copy()
    scale, thickness = _text_scale(out.shape)
    labels = _labels(result, boxes, out.shape)
    for digit, box, place, label in zip(result.digits, boxes, places, labels, strict=True):
        x, y, w, h = box
        colour = WEAK_COLOUR if digit.weak else GOOD_COLOUR
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        if insets and digit.crop is not None:
            # No free place even at MAX_ZOOM: under the box, as on a sparse page.
            _draw_inset(out, digit.crop, place or _clamped(box, out.shape), colour)
        text, size, weight, baseline, (left, top, lw, lh) = label
        cv2.rectangle(out, (left, top), (left + lw, top + lh), colour, cv2.FILLED)
        cv2.putText(
            out, text, (left + 2, top + lh - baseline - 1), cv2.FONT_HERSHEY_SIMPLEX, size,
            (0, 0, 0), weight, cv2.LINE_AA,
        )  # fmt: skip
    if banner:
        (tw, th), base = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(out, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), cv2.FILLED)
        cv2.putText(
            out, banner, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness,
            cv2.LINE_AA,
        )  # fmt: skip
    return out


def place_insets(result: FrameResult, shape: tuple[int, ...]) -> tuple[int, list[Rect | None]]:
    """How much larger to draw a frame of `shape` for its insets, and where each goes (in the
    larger copy; None: no free place). The smallest zoom that finds every inset a free place;
    short of that, the one that finds the most (none on an image the digit fills: zoom 1)."""
    tries = []
    for zoom in range(1, MAX_ZOOM + 1):
        size = (shape[0] * zoom, shape[1] * zoom)
        boxes = [_scaled(d.box, zoom) for d in result.digits]
        labels = [label[-1] for label in _labels(result, boxes, size)]
        tries.append((zoom, inset_places(boxes, size, labels)))
        if all(p is not None for p in tries[-1][1]):
            break
    return max(tries, key=lambda t: (sum(p is not None for p in t[1]), -t[0]))


def _text_scale(shape: tuple[int, ...]) -> tuple[float, int]:
    """Text size and line thickness: they follow the frame's size."""
    scale = max(0.6, shape[0] / 800)
    return scale, max(1, round(2 * scale))


def _labels(
    result: FrameResult, boxes: list[Rect], shape: tuple[int, ...]
) -> list[tuple[str, float, int, int, Rect]]:
    """Each digit's label ("7 98%"): its text, size, weight and baseline, and its filled
    rectangle, over the box, or under it when there is no room over, inside the image."""
    height, width = shape[:2]
    scale, _ = _text_scale(shape)
    out = []
    for digit, (x, y, _, h) in zip(result.digits, boxes, strict=True):
        # Small digits on a big page get smaller labels, so neighbours' labels do not pile up.
        size = min(scale, max(0.35, h / 90))
        weight = max(1, round(2 * size))
        text = f"{digit.digit} {digit.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, weight)
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y + h  # below if no room above
        top = min(max(top, 0), max(0, height - th - base - 2))
        left = min(max(x, 0), max(0, width - tw - 4))
        out.append((text, size, weight, base, (left, top, tw + 4, th + base + 2)))
    return out


def inset_places(
    boxes: list[Rect], shape: tuple[int, ...], labels: list[Rect] | None = None
) -> list[Rect | None]:
    """Where each box's inset goes: the first of under, over, right of and left of the box
    that stays inside the image and covers no other box, no label and no inset placed before
    it; None when there is none."""
    labels = labels or []
    n, m = len(boxes), len(labels)
    # Every box, label and inset placed so far in one array: a spot is checked against all
    # of them at once (a sheet has a hundred digits).
    rects = np.zeros((2 * n + m, 4), np.int64)
    rects[: n + m] = np.asarray(boxes + labels, np.int64).reshape(-1, 4)
    active = np.zeros(len(rects), bool)
    active[: n + m] = True
    x1, y1 = rects[:, 0], rects[:, 1]
    x2, y2 = x1 + rects[:, 2], y1 + rects[:, 3]
    places: list[Rect | None] = []
    for i, box in enumerate(boxes):
        active[i] = False  # its own box is beside its inset, never under it
        place = None
        for side in ("under", "over", "right", "left"):
            sx, sy, side_px, _ = spot = _inset_at(box, side)
            if not _inside(spot, shape):
                continue
            hits = active & (x1 < sx + side_px) & (sx < x2) & (y1 < sy + side_px) & (sy < y2)
            if not hits.any():
                place = spot
                break
        active[i] = True
        if place is not None:
            k = n + m + i
            rects[k] = place
            x2[k], y2[k] = place[0] + place[2], place[1] + place[3]
            active[k] = True
        places.append(place)
    return places


def _inset_at(box: Rect, side: str) -> Rect:
    """The inset's square on one side of the box: about half the box's height, at least 2x
    MNIST's 28 pixels, aligned with the box's left or top."""
    x, y, w, h = box
    inset = MNIST_SIDE * max(2, h // (2 * MNIST_SIDE))
    return {
        "under": (x, y + h + GAP, inset, inset),
        "over": (x, y - inset - GAP, inset, inset),
        "right": (x + w + GAP, y, inset, inset),
        "left": (x - inset - GAP, y, inset, inset),
    }[side]


def _inside(spot: Rect, shape: tuple[int, ...]) -> bool:
    x, y, w, h = spot
    return x >= 0 and y >= 0 and x + w <= shape[1] and y + h <= shape[0]


def _clamped(box: Rect, shape: tuple[int, ...]) -> Rect:
    """Under the box, or over it when there is no room under, moved and cut to the image:
    where an inset goes when no free place was found (and on an image smaller than it)."""
    x, y, w, h = box
    height, width = shape[:2]
    inset = MNIST_SIDE * max(2, min(h // (2 * MNIST_SIDE), (height - 2) // 28, (width - 2) // 28))
    top = y + h + GAP if y + h + GAP + inset <= height else y - inset - GAP
    top = min(max(top, 0), max(0, height - inset))
    left = min(max(x, 0), max(0, width - inset))
    return (left, top, inset, inset)


def _scaled(box: Rect, zoom: int) -> Rect:
    return tuple(v * zoom for v in box)  # type: ignore[return-value]


def _draw_inset(out: np.ndarray, crop: np.ndarray, place: Rect, colour: tuple) -> None:
    """The 28x28 input, enlarged to its place (cut to the image), framed in the box's
    colour."""
    x, y, side, _ = place
    big = cv2.resize(np.clip(crop * 255.0, 0, 255).astype(np.uint8), (side, side),
                     interpolation=cv2.INTER_NEAREST)  # fmt: skip
    region = out[y : y + side, x : x + side]
    region[:] = big[: region.shape[0], : region.shape[1], None]
    cv2.rectangle(out, (x, y), (x + region.shape[1] - 1, y + region.shape[0] - 1), colour, 1)
