"""Writing photographed askew (runtime/skew.py: writing_angle, upright): lines of digits at an
angle are read line by line, level writing is left alone, and what the turn brings in from
outside the frame is paper, not ink."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.skew import upright, writing_angle
from tests.synthetic import camera_frame
from tests.test_page_rules import classifier, sure  # noqa: F401  (fixtures)


def _line_boxes(
    angle: float,
    count: int = 6,
    height: int = 40,
    y0: int = 200,
    seed: int = 0,
    pitch: int = 45,
    bob: float = 2.0,
    tails: tuple[int, ...] = (),
):
    """Digit boxes along a line at `angle` degrees (image y down), `bob` pixels up and down;
    the digits numbered in `tails` reach 0.6 of a digit below the line (a 7's, a 9's)."""
    rng = np.random.default_rng(seed)
    slope = np.tan(np.radians(angle))
    boxes = []
    for k in range(count):
        x = 50 + k * pitch
        y = y0 + slope * x + rng.uniform(-bob, bob)
        h = height + int(rng.integers(-2, 3))
        if k in tails:
            h += round(0.6 * height)
        boxes.append((x, round(y), 30, h))
    return boxes


@pytest.mark.parametrize("angle", [-15.0, -6.0, 5.0, 12.0])
def test_writing_angle_is_the_lines_direction(angle):
    boxes = _line_boxes(angle) + _line_boxes(angle, y0=320, seed=1)
    measured = writing_angle(boxes, height=40)
    assert measured is not None and abs(measured - angle) < 2.0, measured


@pytest.mark.parametrize("angle", [-12.0, 8.0])
def test_writing_angle_through_tails_and_uneven_writing(angle):
    """Digits bobbing a tenth of their height, two in each line with a tail below it: the
    steps from digit to digit scatter by many degrees, and the tails end lower than the
    digits sit; the lines' direction is still read."""
    boxes = [
        b
        for y0, seed in ((200, 3), (320, 4), (440, 5))
        for b in _line_boxes(angle, 9, y0=y0, seed=seed, bob=4.0, tails=(2, 6))
    ]
    measured = writing_angle(boxes, height=40)
    assert measured is not None and abs(measured - angle) < 2.0, measured


def test_level_writing_with_tails_is_not_turned():
    """Level lines whose last digits have tails (bottoms falling to the right) stay level."""
    for seed in range(5):
        boxes = _line_boxes(0.0, 8, seed=seed, pitch=36, tails=(5, 6, 7))
        boxes += _line_boxes(0.0, 8, y0=320, seed=seed + 10, pitch=36, tails=(4, 6, 7))
        assert writing_angle(boxes, height=40) is None, seed


def test_no_angle_for_level_lines_short_lines_a_little_off_or_a_scatter():
    level = _line_boxes(0.0) + _line_boxes(0.0, y0=320, seed=1)
    assert writing_angle(level, height=40) is None  # no line rises by a third of a digit
    # Four digits 3 degrees off level rise by a fifth of a digit: read as they are.
    assert writing_angle(_line_boxes(3.0, count=4), height=40) is None
    rng = np.random.default_rng(2)
    scatter = [(int(x), int(y), 30, 40) for x, y in rng.uniform(0, 600, (8, 2))]
    assert writing_angle(scatter, height=40) is None or abs(writing_angle(scatter, 40)) < 45
    assert writing_angle(_line_boxes(10.0, count=3), height=40) is None  # two links: too few


def test_what_the_turn_brings_in_is_paper():
    """A page darker on one side, turned by 20 degrees: the corners brought in match the
    paper beside them, so the new edges are not read as ink."""
    h, w = 480, 640
    page = np.tile(np.linspace(150, 235, w, dtype=np.float32), (h, 1))
    page += np.random.default_rng(3).normal(0, 2, (h, w))
    gray = np.clip(page, 0, 255).astype(np.uint8)
    turned, back = upright(gray, 20.0)
    assert turned.shape[0] > h and turned.shape[1] > w
    # Each row's brightest and darkest pixels: the paper's range, no step to black or white.
    assert int(turned.min()) >= 140 and int(turned.max()) <= 245
    assert back.shape == (2, 3)


def test_tilted_lines_read_line_by_line(mnist, classifier, sure):  # noqa: F811
    """Three lines of six sure digits, the writing turned 10-15 degrees either way: each line
    drifts by more than a digit's height across the frame. (Read without turning the page,
    2 of these 10 pages came out right.)"""
    rng = np.random.default_rng(7)
    frames = right = 0
    for _ in range(10):
        lines = [[int(rng.choice(sure[int(d)])) for d in rng.integers(0, 10, 6)] for _ in range(3)]
        want = "".join(str(mnist.y_test[i]) for line in lines for i in line)
        images = [[mnist.x_test[i] for i in line] for line in lines]
        frame = camera_frame(images, rng, tilt=(10.0, 15.0), jpeg_quality=90)
        frames += 1
        right += recognize(frame, classifier).text == want
    assert right >= 8, f"{right} of {frames} tilted pages read exactly, line by line"
