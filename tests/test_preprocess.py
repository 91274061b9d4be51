"""Preprocessing on camera-like frames made from real MNIST test digits (tests/synthetic.py)."""

from __future__ import annotations

import cv2
import numpy as np

from mnist_edge.runtime.preprocess import find_digit_crops, reading_order, to_gray, to_mnist_28x28
from tests.synthetic import camera_frame, camera_frame_with_boxes


def blank_paper(rng: np.random.Generator, size=(480, 640)) -> np.ndarray:
    """A frame of paper with uneven light, noise and JPEG, but nothing written on it."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 - 0.25 * (xs / w) - 0.1 * ((ys / h - 0.5) ** 2)
    light[:, : w // 3] *= 0.7  # a hard shadow
    paper = 225 * light[..., None] + rng.normal(0, 4, (h, w, 3))
    frame = np.clip(paper, 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 1)


def centre_inside(outer: tuple, inner: tuple) -> bool:
    x, y, w, h = outer
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return x <= cx <= x + w and y <= cy <= y + h


def test_blank_frames_have_no_digits():
    rng = np.random.default_rng(0)
    assert find_digit_crops(blank_paper(rng)) == []
    for value in (0, 128, 255):
        assert find_digit_crops(np.full((480, 640, 3), value, np.uint8)) == []
    assert find_digit_crops(np.zeros((0, 0), np.uint8)) == []


def test_crops_follow_the_mnist_layout(mnist):
    rng = np.random.default_rng(1)
    frame = camera_frame([mnist.x_test[0]], rng, height_frac=0.5)
    [(box, crop)] = find_digit_crops(frame)
    assert crop.shape == (28, 28) and crop.dtype == np.float32
    # The stroke's core saturates, as MNIST's does: 1, or within one grey level of it after
    # the last area shrink.
    assert crop.min() >= 0.0 and 1.0 - 1 / 255 <= crop.max() <= 1.0
    # Graded, not binary: antialiased stroke edges like MNIST's.
    assert np.count_nonzero((crop > 0.1) & (crop < 0.9)) > 20
    # Fitted in 20x20: nothing in the outer 4-pixel ring (give or take the centring shift).
    ys, xs = np.nonzero(crop > 0.05)
    assert ys.max() - ys.min() <= 20 and xs.max() - xs.min() <= 20
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 18
    # Centre of mass at the centre.
    mass = crop.sum()
    cy = (np.arange(28)[:, None] * crop).sum() / mass
    cx = (np.arange(28)[None, :] * crop).sum() / mass
    assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0
    x, y, w, h = box
    assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480


def test_mnist_test_image_passes_through_unchanged(mnist):
    for image in mnist.x_test[:20]:
        [(box, crop)] = find_digit_crops(image)
        assert box == (0, 0, 28, 28)
        np.testing.assert_array_equal(crop, image.astype(np.float32) / 255.0)
        # The same image read back as a 3-channel frame (cv2.imread's default) as well.
        [(_, crop3)] = find_digit_crops(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        np.testing.assert_array_equal(crop3, crop)
        # Inverted (black on white, like a scan): the same digit.
        [(_, inverted)] = find_digit_crops(255 - image)
        np.testing.assert_array_equal(inverted, crop)


def test_frames_of_any_layout_and_depth_become_the_same_grey(mnist):
    rng = np.random.default_rng(5)
    frame = camera_frame([mnist.x_test[1]], rng)
    grey = to_gray(frame)
    assert grey.dtype == np.uint8 and grey.shape == frame.shape[:2]
    np.testing.assert_array_equal(to_gray(cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)), grey)
    np.testing.assert_array_equal(to_gray(grey.astype(np.uint16) * 257), grey)
    np.testing.assert_array_equal(to_gray(grey.astype(np.float32) / 255.0), grey)
    boxes = [box for box, _ in find_digit_crops(grey.astype(np.uint16) * 257)]
    assert boxes == [box for box, _ in find_digit_crops(frame)]


def test_to_mnist_28x28_keeps_aspect_and_grades():
    ink = np.zeros((200, 60), np.float32)
    ink[20:180, 20:40] = 1.0  # a tall bar, a "1"
    crop = to_mnist_28x28(ink)
    ys, xs = np.nonzero(crop > 0.05)
    assert ys.max() - ys.min() + 1 == 20
    assert xs.max() - xs.min() + 1 < 8
    assert to_mnist_28x28(np.zeros((30, 30), np.uint8)).max() == 0.0


def test_specks_ruled_lines_and_page_edge_are_not_digits(mnist):
    rng = np.random.default_rng(2)
    for k in range(12):
        frame, boxes = camera_frame_with_boxes(
            [mnist.x_test[k]], rng, ruled=True, page_edge=True, specks=25
        )
        found = find_digit_crops(frame)
        assert len(found) == 1, f"frame {k}: {[b for b, _ in found]}"
        assert centre_inside(found[0][0], boxes[0])


def test_broken_stroke_stays_one_digit(mnist):
    """A one-pixel gap cut across MNIST digits (a pen skipping): still one digit each."""
    rng = np.random.default_rng(3)
    broken = whole = 0
    for image in mnist.x_test[:60]:
        rows = np.flatnonzero(image.max(axis=1))
        cut = image.copy()
        cut[(rows[0] + rows[-1]) // 2] = 0
        pieces = cv2.connectedComponents((cut > 0).astype(np.uint8))[0]
        if pieces <= cv2.connectedComponents((image > 0).astype(np.uint8))[0]:
            continue  # the cut did not break this one
        broken += 1
        frame = camera_frame([cut], rng, height_frac=(0.3, 0.6))
        whole += len(find_digit_crops(frame)) == 1
    assert broken >= 30
    # Some MNIST digits fall apart into far-flung pieces when cut; nearly all must hold.
    assert whole >= 0.9 * broken, f"{whole} of {broken} broken digits found as one"


def test_two_lines_are_read_top_line_first(mnist):
    rng = np.random.default_rng(4)
    rows = [list(mnist.x_test[0:3]), list(mnist.x_test[3:7])]
    frame, boxes = camera_frame_with_boxes(rows, rng, height_frac=0.2)
    found = find_digit_crops(frame)
    assert len(found) == 7
    for (box, _), truth in zip(found, boxes, strict=True):
        assert centre_inside(box, truth)


def test_reading_order_groups_lines_despite_baseline_wobble():
    boxes = [(300, 210, 40, 60), (10, 20, 40, 60), (100, 200, 40, 60), (200, 30, 40, 50)]
    assert reading_order(boxes) == [1, 3, 2, 0]
