"""Camera-like frames made from MNIST test digits, for tests and benchmarks (seeded, no files).

A real photo of a digit on paper differs from MNIST in every way that matters to a classifier:
dark ink on light paper, uneven light and shadows, sensor noise, focus blur, JPEG artefacts,
any size and position, ruled lines and the edge of the page. `camera_frame` puts one or more
MNIST digits (white on black, 28x28 uint8) into such a frame; everything random comes from the
`rng` passed in, so a seed gives the same frames every time.

    rng = np.random.default_rng(0)
    frame = camera_frame([mnist.x_test[0]], rng)               # one digit, BGR uint8 480x640
    frame, boxes = camera_frame_with_boxes(list(mnist.x_test[:4]), rng)   # a 4-digit number
    write_video(tmp_path / "digits.mp4", [frame] * 10)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Paper and ink colours are BGR. Ink: black, blue ballpoint, dark pencil grey.
INK_COLOURS = ((25, 25, 30), (110, 40, 20), (70, 70, 75))
BOARD_COLOURS = ((40, 50, 35), (30, 30, 30), (55, 70, 45))  # blackboard black/green
CHALK_COLOURS = ((235, 235, 235), (210, 230, 240))


def ink_crop(digit: np.ndarray) -> np.ndarray:
    """The MNIST digit cut to the bounding box of its ink (float32 0..1, 1 = full ink)."""
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    if rows.size == 0:
        return np.zeros((1, 1), np.float32)
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return crop.astype(np.float32) / 255.0


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The morphological skeleton of a binary mask (uint8 0/1): the middle line of strokes."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    bones = np.zeros_like(mask)
    while mask.any():
        eroded = cv2.erode(mask, cross)
        bones |= mask & ~cv2.dilate(eroded, cross) & 1
        mask = eroded
    return bones


def scaled_ink(
    digit: np.ndarray, height: int, stroke: float = 0.0, pen: float | None = None
) -> np.ndarray:
    """The digit's ink scaled so that its ink is `height` pixels tall, keeping the aspect ratio.

    `stroke` changes the pen: > 0 thickens the strokes (a marker), < 0 thins them, in units
    of an MNIST pixel (a typical MNIST stroke is ~2-3 pixels wide). `pen` redraws the digit
    with a pen of that many frame pixels whatever its size: its strokes' middle line, widened
    (a ballpoint on a big digit is a hair line, unlike anything in MNIST).
    """
    crop = ink_crop(digit)
    scale = height / crop.shape[0]
    width = max(1, round(crop.shape[1] * scale))
    # Pad before resizing so thickening has room and the interpolation does not clip edges.
    pad = 3
    padded = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    big_h = max(1, round(padded.shape[0] * scale))
    big_w = max(1, round(padded.shape[1] * scale))
    ink = cv2.resize(padded, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    if stroke:
        radius = max(1, round(abs(stroke) * scale / 2))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ink = cv2.dilate(ink, kernel) if stroke > 0 else cv2.erode(ink, kernel)
    if pen is not None:
        bones = skeleton((ink > 0.5).astype(np.uint8))
        radius = max(0.5, pen / 2)
        # Widened by a blurred distance: a round pen with soft (antialiased) edges.
        far = cv2.distanceTransform(1 - bones, cv2.DIST_L2, 3)
        ink = np.clip(radius + 0.5 - far, 0.0, 1.0)
    ink = np.clip(ink, 0.0, 1.0)
    # Trim back to the ink so `height` is the visible height; keep `width` for layout.
    rows = np.flatnonzero(ink.max(axis=1) > 0.05)
    cols = np.flatnonzero(ink.max(axis=0) > 0.05)
    if rows.size == 0:
        return np.zeros((height, width), np.float32)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _layout_row(
    inks: list[np.ndarray], rng: np.random.Generator, gap: float
) -> list[tuple[int, int]]:
    """Offsets (x, y) of each ink patch in a row: side by side, jittered baselines."""
    height = max(ink.shape[0] for ink in inks)
    x, offsets = 0, []
    for ink in inks:
        # Digits sit on a common baseline with a little wobble (handwriting is not typeset).
        y = height - ink.shape[0] + round(rng.uniform(-0.06, 0.06) * height)
        offsets.append((x, y))
        x += ink.shape[1] + round(gap * height * rng.uniform(0.6, 1.4))
    return offsets


def _lighting(rng: np.random.Generator, h: int, w: int, shadow: bool) -> np.ndarray:
    """A multiplicative light field: a linear gradient, vignetting and maybe a soft shadow.

    Computed on a grid 8 times coarser and scaled up: light varies slowly, and it is faster.
    """
    gh, gw = max(2, h // 8), max(2, w // 8)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    xs, ys = xs / gw - 0.5, ys / gh - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.05, 0.3) * (np.cos(angle) * xs + np.sin(angle) * ys)
    light *= 1.0 - rng.uniform(0.0, 0.5) * (xs**2 + ys**2)
    if shadow:
        # A soft-edged half-plane darker by 20-45 %: the shadow of a hand or a phone.
        a = rng.uniform(0, 2 * np.pi)
        side = np.cos(a) * xs + np.sin(a) * ys - rng.uniform(-0.3, 0.3)
        soft = rng.uniform(0.01, 0.08)
        mask = 1.0 / (1.0 + np.exp(-side / soft))
        light *= 1.0 - rng.uniform(0.2, 0.45) * mask
    return cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def camera_frame_with_boxes(
    digits: list[np.ndarray] | list[list[np.ndarray]],
    rng: np.random.Generator,
    size: tuple[int, int] = (480, 640),
    height_frac: float | tuple[float, float] | None = None,
    board: bool = False,
    ruled: bool = False,
    grid: bool = False,
    page_edge: bool = False,
    specks: int = 0,
    stroke: float = 0.0,
    pen: float | None = None,
    gap: float | None = None,
    jpeg_quality: int | None = None,
    tilt: float | tuple[float, float] = 0.0,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A BGR uint8 frame of `size` (h, w) with the digits written in it, and each digit's box.

    `digits`: MNIST images (uint8 28x28, white on black) written side by side as one number,
    or a list of rows (lists of images) written as lines from top to bottom.
    `height_frac`: the digit height as a fraction of the frame height (a number or a range);
    default 15-90 % for one digit, smaller for more digits so that they fit.
    `board`: light chalk digits on a dark board instead of ink on paper.
    `stroke`/`pen`: another pen than MNIST's (see scaled_ink).
    `ruled`/`grid`/`page_edge`/`specks`: distractors - ruled or squared paper, a darker desk
    beyond the edge of the paper, and that many small dots of dirt.
    `tilt`: the writing turned by that many degrees (a range: its size drawn from it, either
    way), as on a page photographed askew.
    Boxes are (x, y, w, h) in frame pixels, in reading order (of the turned digits: the boxes
    around them).
    """
    rows = digits if digits and isinstance(digits[0], list) else [digits]
    h, w = size
    longest = max(len(r) for r in rows)
    gap = rng.uniform(0.15, 0.45) if gap is None else gap
    if height_frac is None:
        if longest == 1 and len(rows) == 1:
            height_frac = (0.15, 0.9)
        else:
            # Fit the longest row in ~90 % of the width (digits are ~0.7 as wide as tall).
            fit = 0.9 * w / (longest * (0.75 + gap * 1.4)) / h
            height_frac = (min(0.15, fit), min(0.9 / len(rows) - 0.05, fit))
    if not isinstance(height_frac, tuple):
        height_frac = (height_frac, height_frac)
    digit_h = max(8, round(rng.uniform(*height_frac) * h))
    if isinstance(tilt, tuple):
        tilt = rng.uniform(*tilt) * rng.choice([-1.0, 1.0])
    turn_c, turn_s = abs(np.cos(np.radians(tilt))), abs(np.sin(np.radians(tilt)))

    # Render each row's ink into patches and lay the rows out in a block; shrink the digits
    # if the block does not fit (wide digits, a thick pen).
    for _ in range(6):
        blocks = []
        for row in rows:
            inks = [
                scaled_ink(d, max(6, round(digit_h * rng.uniform(0.9, 1.1))), stroke, pen)
                for d in row
            ]
            offsets = _layout_row(inks, rng, gap)
            row_w = max(x + ink.shape[1] for (x, _), ink in zip(offsets, inks, strict=True))
            row_h = max(y + ink.shape[0] for (_, y), ink in zip(offsets, inks, strict=True))
            row_top = min(y for _, y in offsets)
            blocks.append((inks, offsets, row_w, row_h - row_top, row_top))
        line_gap = round(digit_h * rng.uniform(0.3, 0.6))
        block_w = max(b[2] for b in blocks)
        block_h = sum(b[3] for b in blocks) + line_gap * (len(blocks) - 1)
        # Turned, the block needs the room of the box around it.
        block_w, block_h = (
            round(block_w * turn_c + block_h * turn_s),
            round(block_w * turn_s + block_h * turn_c),
        )
        room = 0.82 if page_edge else 0.97
        fit = min(room * w / block_w, room * h / block_h)
        if fit >= 1.0:
            break
        digit_h = max(8, int(digit_h * fit))
    # Keep clear of the frame border (and of the desk beyond a page edge, at most 8 %).
    mx = max(4, min(round(0.09 * w), (w - block_w) // 2)) if page_edge else 4
    my = max(4, min(round(0.09 * h), (h - block_h) // 2)) if page_edge else 4
    x0 = round(rng.uniform(mx, max(mx, w - block_w - mx)))
    y0 = round(rng.uniform(my, max(my, h - block_h - my)))

    ink_alpha = np.zeros((h, w), np.float32)
    boxes = []
    # Unturned, the block is laid out from here; turned, about its centre, into the box.
    unturned_w = max(b[2] for b in blocks)
    unturned_h = sum(b[3] for b in blocks) + line_gap * (len(blocks) - 1)
    if tilt:
        x0 += (block_w - unturned_w) // 2
        y0 += (block_h - unturned_h) // 2
    top = y0
    for inks, offsets, _, row_h, row_top in blocks:
        for ink, (dx, dy) in zip(inks, offsets, strict=True):
            x, y = x0 + dx, top + dy - row_top
            ih, iw = ink.shape
            # Clip to the frame (a digit may not fit when the caller asks for big ones).
            ya, yb, xa, xb = max(y, 0), min(y + ih, h), max(x, 0), min(x + iw, w)
            if ya >= yb or xa >= xb:
                continue
            patch = ink[ya - y : yb - y, xa - x : xb - x]
            np.maximum(ink_alpha[ya:yb, xa:xb], patch, out=ink_alpha[ya:yb, xa:xb])
            boxes.append((xa, ya, xb - xa, yb - ya))
        top += row_h + line_gap
    if tilt:
        centre = (x0 + unturned_w / 2, y0 + unturned_h / 2)
        turn = cv2.getRotationMatrix2D(centre, tilt, 1.0)
        ink_alpha = cv2.warpAffine(ink_alpha, turn, (w, h), flags=cv2.INTER_LINEAR)
        turned = []
        for bx, by, bw, bh in boxes:
            corners = np.array(
                [[bx, by, 1], [bx + bw, by, 1], [bx, by + bh, 1], [bx + bw, by + bh, 1]]
            )
            points = corners @ turn.T
            (xa, ya), (xb, yb) = points.min(axis=0), points.max(axis=0)
            xa, ya = max(0, int(xa)), max(0, int(ya))
            turned.append((xa, ya, min(w, int(np.ceil(xb))) - xa, min(h, int(np.ceil(yb))) - ya))
        boxes = turned

    if board:
        paper = np.array(BOARD_COLOURS[rng.integers(len(BOARD_COLOURS))], np.float32)
        ink_colour = np.array(CHALK_COLOURS[rng.integers(len(CHALK_COLOURS))], np.float32)
        strength = rng.uniform(0.7, 0.9)
    else:
        tint = rng.uniform(-12, 12, size=3)
        paper = np.clip(rng.uniform(200, 245) + tint, 0, 255).astype(np.float32)
        ink_colour = np.array(INK_COLOURS[rng.integers(len(INK_COLOURS))], np.float32)
        ink_colour += rng.uniform(-15, 15)
        strength = rng.uniform(0.75, 0.97)
    image = np.empty((h, w, 3), np.float32)
    image[:] = paper

    if (ruled or grid) and not board:
        # Light blue lines (squares for `grid`) about half a digit apart, the page a little
        # tilted in the photo.
        spacing = max(12, round(rng.uniform(0.35, 0.8) * digit_h))
        tilt = np.tan(np.radians(rng.uniform(-1.5, 1.5)))
        lines = np.zeros((h, w), np.uint8)
        thickness = int(rng.integers(1, 3))
        for y in range(round(rng.uniform(0, spacing)) - spacing, h + spacing, spacing):
            cv2.line(lines, (0, y), (w, y + round(tilt * w)), 255, thickness, cv2.LINE_AA)
        if grid:
            for x in range(round(rng.uniform(0, spacing)) - spacing, w + spacing, spacing):
                cv2.line(lines, (x, 0), (x - round(tilt * h), h), 255, thickness, cv2.LINE_AA)
        alpha = (lines.astype(np.float32) * (0.7 / 255))[..., None]
        image += alpha * (np.array((200, 170, 140), np.float32) - image)
    if page_edge:
        # The page ends somewhere near one side; beyond it a darker desk.
        desk = np.array(rng.uniform(40, 110, size=3), np.float32)
        side = int(rng.integers(4))
        cut = round(rng.uniform(0.02, 0.08) * (w if side < 2 else h))
        region = {0: np.s_[:, :cut], 1: np.s_[:, w - cut :], 2: np.s_[:cut], 3: np.s_[h - cut :]}
        image[region[side]] = desk
        ink_alpha[region[side]] = 0.0
    for _ in range(specks):
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        radius = int(rng.integers(1, 3))
        cv2.circle(image, (cx, cy), radius, tuple(float(c) for c in ink_colour), -1)

    # Ink over the paper, only where there is ink (the block of digits).
    rows, cols = np.flatnonzero(ink_alpha.any(axis=1)), np.flatnonzero(ink_alpha.any(axis=0))
    if rows.size:
        block = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        alpha = (ink_alpha[block] * strength)[..., None]
        image[block] += alpha * (ink_colour - image[block])
    image *= _lighting(rng, h, w, shadow=rng.random() < 0.5)[..., None]

    sigma = rng.uniform(0.0, 1.2) * max(1.0, digit_h / 150)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # Sensor noise, mostly in brightness (one noise image for the three channels).
    image += (rng.uniform(1.0, 6.0) * rng.standard_normal((h, w), dtype=np.float32))[..., None]
    frame = np.clip(image, 0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 92)) if jpeg_quality is None else jpeg_quality
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR), boxes


def camera_frame(
    digits: list[np.ndarray] | list[list[np.ndarray]],
    rng: np.random.Generator,
    size: tuple[int, int] = (480, 640),
    **options,
) -> np.ndarray:
    """A BGR uint8 camera-like frame with the digits in it (see camera_frame_with_boxes)."""
    return camera_frame_with_boxes(digits, rng, size, **options)[0]


def sample_numbers(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    rng: np.random.Generator,
    lengths: tuple[int, int] = (3, 5),
) -> list[tuple[list[np.ndarray], str]]:
    """`count` random numbers of `lengths` digits: (list of MNIST images, the expected text)."""
    numbers = []
    for _ in range(count):
        n = int(rng.integers(lengths[0], lengths[1] + 1))
        idx = rng.integers(len(images), size=n)
        numbers.append(([images[i] for i in idx], "".join(str(int(labels[i])) for i in idx)))
    return numbers


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames (all the same size) to an mp4 file with OpenCV's mp4v codec."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open a mp4v video writer")
    try:
        for frame in frames:
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            writer.write(frame)
    finally:
        writer.release()
    return path


def paper_with(items, size=(480, 640), seed=0) -> np.ndarray:
    """A grey camera-like page with dark ink: items are (ink 0..1 float patch, x, y)."""
    rng = np.random.default_rng(seed)
    h, w = size
    alpha = np.zeros((h, w), np.float32)
    for ink, x, y in items:
        ih, iw = ink.shape
        np.maximum(alpha[y : y + ih, x : x + iw], ink, out=alpha[y : y + ih, x : x + iw])
    page = 215 + rng.normal(0, 3, (h, w))
    image = page * (1 - 0.85 * alpha) + 30 * 0.85 * alpha
    return np.clip(image, 0, 255).astype(np.uint8)


def sudoku_page(
    digits: dict[int, list[np.ndarray]],
    rng: np.random.Generator,
    size: tuple[int, int],
    side: int,
    angle: float,
) -> tuple[np.ndarray, str]:
    """A 9x9 sudoku `side` pixels across drawn with a marker (every third line bolder) at a
    random place on a page of `size`, a digit in about a third of its cells, turned by
    `angle` degrees about the page's centre: (frame, the digits row by row). `digits`: MNIST
    images (white on black) by label."""
    h, w = size
    cell = side // 9
    left, top = int(rng.integers(20, w - side - 20)), int(rng.integers(20, h - side - 20))
    items, want = [], ""
    for r in range(9):
        for c in range(9):
            if rng.random() < 0.33:
                d = int(rng.integers(1, 10))
                items.append(_in_cell(digits, d, rng, left + c * cell, top + r * cell, cell,
                                      (0.55, 0.65), jitter=3))  # fmt: skip
                want += str(d)
    grid = np.zeros(size, np.float32)
    thin = max(3, cell // 20)
    for k in range(10):
        a, b, thick = left + k * cell, top + k * cell, 2 * thin if k % 3 == 0 else thin
        cv2.line(grid, (left, b), (left + 9 * cell, b + int(rng.integers(-3, 4))), 1.0, thick)
        cv2.line(grid, (a, top), (a + int(rng.integers(-3, 4)), top + 9 * cell), 1.0, thick)
    return _turned_paper(items + [(grid, 0, 0)], size, rng, angle), want


def boxes_page(
    digits: dict[int, list[np.ndarray]],
    rng: np.random.Generator,
    size: tuple[int, int],
    cell: int,
    apart: int,
    angle: float,
    count: int = 6,
) -> tuple[np.ndarray, str]:
    """A row of `count` square boxes `cell` pixels across (a form, a postcode), side by side
    or `apart` pixels apart, a digit in each, at a random place on a page of `size`, turned
    by `angle` degrees: (frame, the digits left to right). `digits`: MNIST images by label."""
    h, w = size
    span = count * cell + (count - 1) * apart
    left, top = int(rng.integers(20, w - span - 20)), int(rng.integers(20, h - cell - 20))
    frames = np.zeros(size, np.float32)
    thick = int(rng.integers(2, 5))
    items, want, x = [], "", left
    for _ in range(count):
        d = int(rng.integers(10))
        items.append(_in_cell(digits, d, rng, x, top, cell, (0.55, 0.7)))
        want += str(d)
        cv2.rectangle(frames, (x, top), (x + cell, top + cell), 1.0, thick)
        x += cell + apart
    return _turned_paper(items + [(frames, 0, 0)], size, rng, angle), want


def _in_cell(
    digits: dict[int, list[np.ndarray]],
    d: int,
    rng: np.random.Generator,
    x: int,
    y: int,
    cell: int,
    tall: tuple[float, float],
    jitter: int = 0,
) -> tuple[np.ndarray, int, int]:
    """A random MNIST `d`, `tall` (a range) of a cell's side, in the middle of the cell whose
    corner is (x, y), moved by up to `jitter` pixels each way: an item for paper_with."""
    height = int(cell * rng.uniform(*tall))
    ink = scaled_ink(digits[d][int(rng.integers(len(digits[d])))], height)
    x += (cell - ink.shape[1]) // 2 + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
    y += (cell - ink.shape[0]) // 2 + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
    return ink, x, y


def _turned_paper(items, size: tuple[int, int], rng: np.random.Generator, angle: float):
    """paper_with(items), turned by `angle` degrees about its centre (paper brought in)."""
    h, w = size
    page = paper_with(items, size=size, seed=int(rng.integers(100)))
    if angle:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        page = cv2.warpAffine(page, turn, (w, h), borderValue=215)
    return page
