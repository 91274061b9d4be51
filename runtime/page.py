"""The page: a frame as dark ink on light paper, at the scale digits are found at.

Grey; polarity (ink is whatever deviates from the local median: darker on paper by default,
lighter on a blackboard or a white-on-black image, which is then inverted so the rest always
sees dark ink on light paper); a work copy WORK_SIDE pixels long made of the darkest pixel of
each block (a hair line keeps its darkness); the paper's brightness without the ink (a grey
closing wider than any pen stroke, at a quarter of that size: the light field, shadows
included); ink = how much darker than the paper a pixel is, relative to the paper.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

WORK_SIDE = 320  # longer side of the first look at a frame (a 640x480 frame: halved)
MAX_WORK_SIDE = 1600  # ... and of the closer look at small writing
TIGHT_SIDE = 64  # an image at most this many pixels a side is one cut-out digit
MIN_CONTRAST = 40  # grey levels between ink and paper that a cut-out digit needs
MIN_INK = 0.12  # a pixel is ink candidate when it is this much darker than the paper (relative)


@lru_cache(maxsize=32)
def rect_kernel(width: int, height: int) -> np.ndarray:
    """Rectangular structuring elements are made once, not per frame."""
    return cv2.getStructuringElement(cv2.MORPH_RECT, (width, height))


def to_gray(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grey; uint8, 16-bit, or float (0..1 or 0..255) to grey uint8."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype.kind == "f":
        top = 255.0 if frame.size and float(frame.max()) <= 1.0 else 1.0
        frame = np.clip(np.rint(frame * top), 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3:
        return np.ascontiguousarray(frame[:, :, 0])
    return frame


def mnist_like_digit(gray: np.ndarray) -> np.ndarray | None:
    """A 28x28 image that is already an MNIST digit, as white on black; else None.

    A black border with light ink within 24x24 (an MNIST test image), or a white one with
    dark ink (the same, inverted): passed through untouched, as the test set feeds it.
    """
    if gray.shape != (28, 28):
        return None
    # MNIST's digits fit a 20x20 box: a digit filling its 28x28 image is a tight crop instead.
    ink = (gray > 128) if gray.mean() < 128 else (gray < 128)
    _, _, w, h = cv2.boundingRect(ink.view(np.uint8))
    if max(w, h) > 24:
        return None
    border = np.concatenate(
        [gray[:2].ravel(), gray[-2:].ravel(), gray[:, :2].ravel(), gray[:, -2:].ravel()]
    )
    # By the mean: MNIST's ink does reach into the outer two rows of some digits.
    if border.mean() < 40 and gray.max() > 128:
        return gray
    if border.mean() > 215 and gray.min() < 128:
        return 255 - gray
    return None


def tight_crop_ink(gray: np.ndarray) -> np.ndarray | None:
    """A small image (at most TIGHT_SIDE pixels a side) is one digit: its ink, white on black
    (float32, 0 = paper, 1 = full ink; all 0 when there is no ink). None for larger images.

    Such an image is a digit someone cut out (a scan, a postal digit, a saved crop), often
    touching the borders or filling the frame, in either polarity: not a photo to search.
    The background is the median of the outer ring (mostly paper even when strokes touch the
    border; the whole image's median is not, in a bold digit that fills its box), and ink is
    whichever side of it the image's mean lies on.
    """
    h, w = gray.shape
    if max(h, w) > TIGHT_SIDE or min(h, w) < 8:
        return None
    g = gray.astype(np.float32)
    ring = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    background = float(np.median(ring))
    light = float(g.mean()) > background
    ink, full = (g - background, 255.0 - background) if light else (background - g, background)
    if full < MIN_CONTRAST or float(ink.max()) < MIN_CONTRAST:
        return np.zeros((h, w), np.float32)
    # The faintest tenth of the range is paper grain or scanner noise.
    return np.clip((ink - 0.1 * full) / (0.9 * full), 0.0, 1.0)


def ink_is_light(small: np.ndarray) -> bool:
    """True for light ink on a dark background (a blackboard, an MNIST-like image).

    The local median is the background almost everywhere (ink covers a minority of any window
    the size of a third of the image); ink is the strong one-sided deviation from it. The
    edge of a shadow deviates both ways, and a fine pen leaves little ink to weigh, so on a
    light background (paper, even in shade) light ink must outweigh dark ink by far, and be
    plentiful (a grey level per pixel on average).
    """
    # The background varies slowly: its median is taken on a copy of half the size (a
    # quarter of the cost) and scaled back up; the deviations are still measured at full size.
    h, w = small.shape
    coarse = cv2.resize(small, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(coarse.shape) // 3) | 1)
    coarse = cv2.medianBlur(coarse, min(k, 255))
    background = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    # Deviations beyond 20 grey levels, by saturating uint8 arithmetic (cheaper than int16
    # arrays; an offset past 255 saturates where the deviation is negative anyway).
    lighter = cv2.sumElems(cv2.subtract(small, cv2.add(background, 20)))[0]
    darker = cv2.sumElems(cv2.subtract(background, cv2.add(small, 20)))[0]
    # The median by partition (np.median costs more than the whole test): the mean of the
    # two middle values below 110.
    flat = coarse.ravel()
    n = flat.size
    middle = np.partition(flat, [(n - 1) // 2, n // 2])
    if int(middle[(n - 1) // 2]) + int(middle[n // 2]) < 220:
        return bool(lighter > 1.5 * darker)
    return bool(lighter > 5.0 * darker and lighter > small.size)


def quarter_size(image: np.ndarray) -> np.ndarray:
    """Each side a quarter as long, each pixel the mean of its block: halved twice, since
    OpenCV's area resize has a fast path for halving and is four times slower by 4 at once."""
    h, w = image.shape[:2]
    half = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(half, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)


def paper_background(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness without the ink (dark ink on light paper), same size as `gray`.

    Closing with a box a third of the image: strokes narrower than that vanish (even a marker
    on a digit filling the frame), large things (shadows, a gradient) stay. Done at a quarter
    of the size, then scaled back up.
    """
    h, w = gray.shape
    small = quarter_size(gray)
    k = max(3, (max(small.shape) // 3) | 1)
    # Smooth first: the max filter would otherwise pick the noise's peaks and put the paper
    # too bright in dark, noisy places (a shadow), where the paper would then look like ink.
    small = cv2.blur(small, (3, 3))
    # Replicated borders: a shadow along the frame's edge continues outside it, so even a
    # thin sliver of it is kept as background. (Padded by hand: morphologyEx would pad again
    # between its max and min filters and put the paper too bright along a darkening edge.)
    pad = k // 2 + 1
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, rect_kernel(k, k))[pad:-pad, pad:-pad]
    # The smoothing, and the scaling back up, made sharp steps (the page's edge on a dark
    # desk, a hard shadow) into ramps, bright on the dark side of the step, which would show
    # a line of ink there. A min filter wider than both moves the ramp onto the bright side,
    # where the paper merely looks a little brighter than its estimate (no ink). (Numbers by
    # a page edge read right, tests.vision_report: 88.5 % with 3 pixels here, 90.5 % with 5.)
    closed = cv2.erode(closed, rect_kernel(5, 5))
    return cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)


def relative_ink(gray: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """How much darker than the paper each pixel is, as a fraction of the paper, in 0..255.

    By OpenCV's saturating uint8 arithmetic (paper lighter than the pixel gives 0): this runs
    on the whole work copy every frame, five times cheaper than the same in float.
    """
    return cv2.divide(cv2.subtract(paper, gray), paper, scale=255)


class InkPage:
    """A frame as dark ink on light paper: grey (full size and the work copy), paper, ink."""

    def __init__(self, gray: np.ndarray, work: np.ndarray, paper: np.ndarray, scale: float):
        self.gray, self.work, self.paper, self.scale = gray, work, paper, scale
        self.ink8 = relative_ink(work, paper)
        self.not_lines: np.ndarray | None = None  # 0 on ruled lines (set by digit_regions)
        self.light = False  # the frame was light ink on dark, inverted into `gray`
        self.masks: tuple | None = None  # weak ink, strong ink, ruled lines (pieces.ink_masks)
        # Smaller ink than this (work pixels, both ways) is a speck.
        self.min_side = max(3.0, 0.02 * min(work.shape))
        self.speck = self.min_side  # ... and what is smaller than this both ways is junk

    def frame_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A work-copy box (x, y, w, h) in frame pixels."""
        x, y, bw, bh = box
        h, w = self.gray.shape
        x0, y0 = int(x / self.scale), int(y / self.scale)
        x1 = min(w, int(np.ceil((x + bw) / self.scale)))
        y1 = min(h, int(np.ceil((y + bh) / self.scale)))
        return x0, y0, x1 - x0, y1 - y0


def ink_page(gray: np.ndarray, scale: float | None = None, light: bool | None = None) -> InkPage:
    """Scale to the work size, settle the polarity, estimate the paper, measure the ink.

    `scale`: the work copy's size against the frame (default: WORK_SIDE pixels long, or the
    frame if smaller); `light`: the polarity when already known (a second look at another
    scale), else it is measured.
    """
    h, w = gray.shape
    if scale is None:
        scale = min(1.0, WORK_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if light is None:
        # In steps: OpenCV's area resize is much faster that way than in one (a grey level of
        # rounding apart, nothing to the polarity test's 20-level margins).
        small = min(1.0, WORK_SIDE / max(h, w))
        averaged = (
            cv2.resize(gray, (max(1, round(w * small)), max(1, round(h * small))),
                       interpolation=cv2.INTER_AREA)
            if small < 1 else gray
        )  # fmt: skip
        light = ink_is_light(quarter_size(averaged))
    if light:
        gray = 255 - gray
    work = gray
    if scale < 1:
        # The darkest pixel of each block, not the average: a hair-line stroke keeps its full
        # darkness in the smaller copy instead of fading into the paper.
        k = int(round(1 / scale))
        darkest = cv2.erode(gray, rect_kernel(k, k)) if k >= 2 else gray
        work = cv2.resize(darkest, size, interpolation=cv2.INTER_AREA)
    page = InkPage(gray, work, paper_background(work), scale)
    page.light = light
    return page
