"""The rules for real pages, each on an image built from real MNIST test digits: touching
digits, wide digits, grids, dense pages, small digits beside tall ones, shadows, tight crops.
Then the accuracy on real photos and USPS digits (../shared/data), skipped when missing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import read_image
from mnist_edge.runtime.preprocess import find_digit_candidates, find_digit_crops
from mnist_edge.runtime.regions import _digit_height_cap
from mnist_edge.runtime.split import choose_reading, two_part_cuts
from tests.real_photos_report import (
    REAL_PHOTOS,
    USPS_FILE,
    digits_right,
    read_photos,
    read_usps,
    score,
    usps_sample,
)
from tests.synthetic import (
    boxes_page,
    camera_frame_with_boxes,
    paper_with,
    scaled_ink,
    sudoku_page,
)


@pytest.fixture(scope="module")
def classifier(int8_model) -> DigitClassifier:
    return DigitClassifier(int8_model)


@pytest.fixture(scope="module")
def sure(mnist, classifier) -> dict[int, list[int]]:
    """Test digits the model reads right and sure when fed directly, by label: the rules are
    tested on the page, not on the model's own errors."""
    probabilities = classifier.predict(mnist.x_test[:3000] / 255.0)
    picks: dict[int, list[int]] = {d: [] for d in range(10)}
    for i, p in enumerate(probabilities):
        if p.argmax() == mnist.y_test[i] and p.max() > 0.99:
            picks[int(mnist.y_test[i])].append(i)
    return picks


def sure_images(mnist, sure) -> dict[int, list[np.ndarray]]:
    return {d: [mnist.x_test[i] for i in picks] for d, picks in sure.items()}


def test_touching_digits_become_two(mnist, classifier, sure):
    rng = np.random.default_rng(0)
    pairs = right = 0
    for _ in range(20):
        a, b = (int(rng.choice(sure[int(d)])) for d in rng.integers(0, 10, 2))
        frame, _ = camera_frame_with_boxes(
            [mnist.x_test[a], mnist.x_test[b]], rng, height_frac=0.3, gap=-0.04, jpeg_quality=90
        )
        pairs += 1
        want = f"{mnist.y_test[a]}{mnist.y_test[b]}"
        right += recognize(frame, classifier).text == want
    assert right >= 0.6 * pairs, f"{right} of {pairs} touching pairs read as their two digits"


class CountingClassifier(DigitClassifier):
    """The int8 classifier, noting the batch size of every predict call in `calls`."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.calls: list[int] = []

    def predict(self, images):
        self.calls.append(len(images))
        return super().predict(images)


@pytest.fixture
def counting(int8_model) -> CountingClassifier:
    return CountingClassifier(int8_model)


def test_split_candidates_share_the_frame_s_one_predict(mnist, counting):
    """The whole region and its cut parts go through one batched call, never a second."""
    rng = np.random.default_rng(1)
    zero, eight = (int(np.flatnonzero(mnist.y_test == d)[0]) for d in (0, 8))
    frame, _ = camera_frame_with_boxes(
        [mnist.x_test[zero], mnist.x_test[eight]], rng, height_frac=0.3, gap=-0.15,
        jpeg_quality=90,
    )  # fmt: skip
    [(box, _)] = find_digit_crops(frame)  # they touch: one region, at least 1.2x as wide
    assert box[2] >= 1.2 * box[3]
    recognize(frame, counting)
    # Read whole and as 2 parts (and 3 when wide enough) in the one call.
    assert len(counting.calls) == 1 and counting.calls[0] >= 3, counting.calls


def test_contour_valley_is_a_candidate_cut():
    """Two strokes that meet low down, the narrow one first: the thinnest column near the
    middle lies inside the wide one; the upper contour's valley is where they meet."""
    mask = np.zeros((30, 40), np.uint8)
    mask[:, 2:7] = 1  # a "1"
    mask[18:23, 7:11] = 1  # where it touches its neighbour
    mask[:, 11:38] = 1  # a wide, solid neighbour
    cuts = two_part_cuts(mask)
    assert any(7 <= c <= 10 for c in cuts), cuts
    assert not any(7 <= c <= 10 for c in cuts[:1])  # the thinnest-column cut is elsewhere


def widened(digit: np.ndarray, factor: float) -> np.ndarray:
    h, w = digit.shape
    wide = cv2.resize(digit, (round(w * factor), h), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((28, max(28, wide.shape[1] + 4)), np.uint8)
    out[:, 2 : 2 + wide.shape[1]] = wide
    return out


def with_long_stroke(digit: np.ndarray, row: str) -> np.ndarray:
    """The digit on a wider canvas, its lowest (or highest) stroke drawn on to twice as long."""
    out = np.zeros((28, 44), np.uint8)
    out[:, 8:36] = digit
    rows = np.flatnonzero(out.max(axis=1) > 128)
    y = rows[-2] if row == "bottom" else rows[1]
    cols = np.flatnonzero(out[y] > 128)
    start, end = (
        (cols[0], min(43, cols[-1] + 10)) if row == "bottom" else (max(0, cols[0] - 10), cols[-1])
    )
    cv2.line(out, (int(start), int(y)), (int(end), int(y)), 255, 2)
    return out


# Single digits wider than a digit usually is: no cut may split them.
WIDE_DIGITS = [
    (0, lambda d: widened(d, 1.5)),
    (2, lambda d: with_long_stroke(d, "bottom")),
    (7, lambda d: with_long_stroke(d, "top")),
]
WIDE_IDS = ["wide-0", "2-long-base", "7-long-bar"]


@pytest.mark.parametrize("label, make", WIDE_DIGITS, ids=WIDE_IDS)
def test_wide_single_digits_stay_one(mnist, classifier, sure, label, make):
    rng = np.random.default_rng(label)
    kept = 0
    picks = sure[label][:15]
    for i in picks:
        frame, _ = camera_frame_with_boxes([make(mnist.x_test[i])], rng, height_frac=0.4)
        kept += len(recognize(frame, classifier).digits) == 1
    assert kept >= 0.9 * len(picks), f"{kept} of {len(picks)} stayed one digit"


@pytest.mark.parametrize("label, make", WIDE_DIGITS, ids=WIDE_IDS)
def test_wide_digit_among_ones_stays_one(mnist, classifier, sure, label, make):
    """Among 1s a wide digit is two or three times its line's typical width, as a touching
    pair is: it is split only when not read CERTAIN and its parts are all sure."""
    rng = np.random.default_rng(20 + label)
    right, picks = 0, sure[label][15:30]
    for i in picks:
        ones = [mnist.x_test[int(rng.choice(sure[1]))] for _ in range(3)]
        frame, _ = camera_frame_with_boxes([ones[0], make(mnist.x_test[i]), *ones[1:]], rng)
        right += recognize(frame, classifier).text == f"1{label}11"
    assert right >= 0.9 * len(picks), f"{right} of {len(picks)}"


def test_pair_much_wider_than_its_line_s_digits_is_split_though_read_sure():
    """A touching pair whose 7 has a long tail is not wide for its own height, and the whole
    may be read sure (0.94): as wide as two of its line's digits, its sure parts win. Read
    CERTAIN, of its line's width, or with a part unsure, it stays whole."""
    assert choose_reading(0.94, 0.7, [[0.988, 0.996]], wide=2.3) == 0
    assert choose_reading(0.94, 0.7, [[0.988, 0.996]], wide=1.2) is None
    assert choose_reading(0.995, 0.7, [[0.988, 0.996]], wide=2.3) is None
    assert choose_reading(0.94, 0.7, [[0.90, 0.996]], wide=2.3) is None
    assert choose_reading(0.5, 0.7, [[0.988, 0.996]]) == 0  # unsure whole: as before


@pytest.mark.parametrize("angle", [0.0, 20.0], ids=["level", "askew-20-degrees"])
def test_drawn_grid_reads_cell_by_cell(mnist, classifier, sure, angle):
    """A 3x3 table drawn with a marker, digits in 6 of its cells: read row by row, also when
    the page was photographed askew."""
    rng = np.random.default_rng(3)
    for trial in range(3):
        cell, left, top, thick = 120, 60, 40, int(rng.integers(3, 9))
        items, want = [], ""
        filled = [(r, c) for r in range(3) for c in range(3) if (r + c + trial) % 3 != 1]
        for r, c in filled:
            d = int(rng.integers(10))
            i = int(rng.choice(sure[d]))
            ink = scaled_ink(mnist.x_test[i], int(rng.integers(50, 70)))
            x = left + c * cell + (cell - ink.shape[1]) // 2 + int(rng.integers(-8, 9))
            y = top + r * cell + (cell - ink.shape[0]) // 2 + int(rng.integers(-8, 9))
            items.append((ink, x, y))
            want += str(d)
        grid = np.zeros((480, 640), np.float32)
        for k in range(4):  # hand-drawn: a little tilted
            a, b = left + k * cell, top + k * cell
            cv2.line(grid, (left, b), (left + 3 * cell, b + int(rng.integers(-4, 5))), 1.0, thick)
            cv2.line(grid, (a, top), (a + int(rng.integers(-4, 5)), top + 3 * cell), 1.0, thick)
        items.append((grid, 0, 0))
        page = paper_with(items, seed=trial)
        if angle:
            turn = cv2.getRotationMatrix2D((320, 240), angle, 0.8)
            page = cv2.warpAffine(page, turn, (640, 480), borderValue=215)
        result = recognize(page, classifier)
        assert digits_right(result.text, want) >= len(want) - 1, (result.text, want)


@pytest.mark.parametrize("angle", [0.0, 25.0], ids=["level", "askew-25-degrees"])
def test_sudoku_reads_cell_by_cell(mnist, classifier, sure, angle):
    """A sudoku filling the photo: its 81 cells are each about 1 % of the grid's box, and
    well under that of the box of the grid photographed askew, yet they are cells."""
    rng = np.random.default_rng(14)
    page, want = sudoku_page(sure_images(mnist, sure), rng, (900, 900), 720, angle)
    result = recognize(page, classifier)
    assert digits_right(result.text, want) >= len(want) - 2, (result.text, want)


@pytest.mark.parametrize("angle", [32.0, 38.0])
def test_sudoku_far_askew_reads_cell_by_cell(mnist, classifier, sure, angle):
    """Turned level from far askew, a grid's thin lines may come apart at the level page's
    first look and the grid not be found again: its lines are taken out all the same."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        page, want = sudoku_page(sure_images(mnist, sure), rng, (900, 900), 560, angle)
        result = recognize(page, classifier)
        assert digits_right(result.text, want) >= len(want) - 2, (seed, result.text, want)


@pytest.mark.parametrize("angle", [0.0, 12.0, 30.0], ids=["level", "askew-12", "askew-30"])
def test_small_sudoku_in_a_big_photo_reads_cell_by_cell(mnist, classifier, sure, angle):
    """A sudoku filling under half of a 1600x1200 photo (taken from further away, or on a
    page of other things): found by its cells, not by running across the page; its digits,
    too small to be found at the first look, are looked for at the cells' scale. Askew, its
    box is nearly twice its own area: its cells are measured against the grid itself."""
    rng = np.random.default_rng(15)
    for trial in range(2):
        page, want = sudoku_page(sure_images(mnist, sure), rng, (1200, 1600), 540, angle)
        result = recognize(page, classifier)
        assert digits_right(result.text, want) >= len(want) - 2, (trial, result.text, want)


@pytest.mark.parametrize("apart", [0, 12], ids=["a-row-of-boxes", "boxes-apart"])
def test_digits_in_boxes_read_box_by_box(mnist, classifier, sure, apart):
    """A digit in each box of a row (a form, a postcode), the boxes side by side or apart:
    once a row's top and bottom lines are out, its boxes' sides stand between the digits
    like 1s; a box apart from the others is a frame around its digit, read as a 0 or an 8."""
    rng = np.random.default_rng(17)
    for trial in range(3):
        cell = int(rng.integers(60, 120))
        page, want = boxes_page(sure_images(mnist, sure), rng, (480, 900), cell, apart, 0.0)
        text = recognize(page, classifier).text
        assert digits_right(text, want) >= len(want) - 1, (trial, text, want)


def test_row_of_boxes_askew_reads_box_by_box(mnist, classifier, sure):
    """A row of boxes photographed at 20 degrees: its box is several times the row's own
    area, so its cells are measured against the row itself, found, and the row turned."""
    rng = np.random.default_rng(18)
    for trial in range(3):
        page, want = boxes_page(sure_images(mnist, sure), rng, (720, 1280), 80, 0, 20.0)
        text = recognize(page, classifier).text
        assert digits_right(text, want) >= len(want) - 1, (trial, text, want)


@pytest.mark.parametrize(
    "seed, size, height",
    [(4, (2000, 1500), 0.04), (16, (2250, 3000), 0.016)],
    ids=["ten-rows", "small-writing-in-a-big-photo"],
)
def test_page_of_ten_rows_of_small_digits_reads_row_by_row(
    mnist, classifier, sure, seed, size, height
):
    """Ten rows of ten digits. At 1.6 % of a 3000x2250 photo's height (a page of small
    handwriting photographed whole) they are 3-4 pixels in the first look, where they were
    taken for specks, and under 2 % of the page's side in the closer one, where they were
    taken for specks again."""
    rng = np.random.default_rng(seed)
    rows, want = [], ""
    for _ in range(10):
        labels = rng.integers(0, 10, 10)
        rows.append([mnist.x_test[int(rng.choice(sure[int(d)]))] for d in labels])
        want += "".join(str(int(d)) for d in labels)
    frame, _ = camera_frame_with_boxes(rows, rng, size=size, height_frac=height, gap=0.5)
    text = recognize(frame, classifier).text
    assert digits_right(text, want) >= 0.95 * len(want), f"read {text}"


def test_digit_height_limit_is_found_on_pages_whose_lines_do_not_line_up():
    """Three lines of four digits, each line starting further right (a page narrowing into
    the distance): all the digits together overlap everywhere in x, but each line has four
    columns, so merging is still held to a digit's height."""
    boxes = [
        (x0 + k * 40, 100 + line * 60, 30, 45)
        for line, x0 in enumerate((0, 20, 37))
        for k in range(4)
    ]
    assert _digit_height_cap(boxes, 45.0) == pytest.approx(1.3 * 45)
    # One number alone of two digits: no columns to go by, no limit.
    assert _digit_height_cap(boxes[:2], 45.0) == float("inf")


def test_column_of_digits_written_downwards_reads_digit_by_digit(mnist, classifier, sure):
    """Digits one under another, close (a list, a sum): a column of three or more rows sets
    how tall one digit can be, as a line of three does, so they are not merged into one."""
    rng = np.random.default_rng(13)
    for trial in range(5):
        labels = [int(d) for d in rng.integers(0, 10, 5)]
        items, y = [], 20
        for d in labels:
            ink = scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 70)
            items.append((ink, 300 + int(rng.integers(-8, 9)), y))
            y += ink.shape[0] + int(rng.integers(10, 14))  # 0.15-0.2 of a digit apart
        text = recognize(paper_with(items, size=(480, 640), seed=trial), classifier).text
        assert text == "".join(map(str, labels)), f"trial {trial}: {text}"


def test_column_of_digits_photographed_askew_reads_digit_by_digit(mnist, classifier, sure):
    """A column at about 15 degrees: each digit a third of its height to the right of the one
    above (digits are narrower than tall, so far less than a width). Still a column: the
    digits are not merged into one tall region."""
    rng = np.random.default_rng(14)
    for trial in range(5):
        labels = [int(d) for d in rng.integers(0, 10, 5)]
        items, x, y = [], 200, 20
        for d in labels:
            ink = scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 70)
            items.append((ink, x, y))
            x += int(rng.integers(20, 25))
            y += ink.shape[0] + int(rng.integers(10, 14))
        text = recognize(paper_with(items, size=(480, 640), seed=trial), classifier).text
        assert text == "".join(map(str, labels)), f"trial {trial}: {text}"


def test_small_zero_beside_tall_sevens_stays(mnist, classifier, sure):
    rng = np.random.default_rng(5)
    for trial in range(5):
        seven = [scaled_ink(mnist.x_test[int(rng.choice(sure[7]))], 150) for _ in range(2)]
        zero = [scaled_ink(mnist.x_test[int(rng.choice(sure[0]))], 65) for _ in range(2)]
        x, items = 60, []
        for tall, small in zip(seven, zero, strict=True):
            items.append((tall, x, 150))
            x += tall.shape[1] + 30
            items.append((small, x, 150 + 150 - 65))  # on the baseline, like the 7's foot
            x += small.shape[1] + 30
        text = recognize(paper_with(items, seed=trial), classifier).text
        assert text == "7070", f"trial {trial}: {text}"


def test_small_zeros_in_a_line_of_writing_on_a_sheet_of_tall_digits_stay(mnist, classifier, sure):
    """Small 0s (0.28 of the sheet's tall 7s) in a line that also holds ordinary digits are
    digits: the small-digit floor is lower in a line of writing (0.3 of the writing's height
    everywhere dropped them)."""
    rng = np.random.default_rng(8)
    for trial in range(3):
        items, x = [], 40
        for _ in range(4):
            seven = scaled_ink(mnist.x_test[int(rng.choice(sure[7]))], 150)
            items.append((seven, x, 40))
            x += seven.shape[1] + 40
        x, want = 40, "7777"
        for d, size in ((5, 80), (1, 100), (0, 42), (0, 42), (0, 42), (6, 110)):
            ink = scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], size)
            items.append((ink, x, 260 + 110 - size))  # on one baseline
            x += ink.shape[1] + 30
            want += str(d)
        text = recognize(paper_with(items, size=(480, 800), seed=trial), classifier).text
        assert text == want, f"trial {trial}: {text}"


def test_long_tailed_sevens_in_a_line_read_seven(mnist, classifier, sure):
    """A 7 whose stroke runs on far below its line (twice as tall as its neighbours) is read
    at its line's height, not as a '1'."""
    rng = np.random.default_rng(9)
    right = trials = 0
    for trial in range(8):
        items, x, want = [], 40, ""
        for d in (int(rng.integers(0, 7)), 7, int(rng.integers(0, 7))):
            ink = scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 90)
            if d == 7:
                ink = cv2.resize(ink, (max(1, ink.shape[1] * 2 // 3), 200))
            items.append((ink, x, 120))
            x += ink.shape[1] + 50
            want += str(d)
        trials += 1
        right += recognize(paper_with(items, seed=trial), classifier).text == want
    assert right >= 0.75 * trials, f"{right} of {trials}"


def test_touching_pair_with_a_long_tail_is_read_as_two_too(mnist, classifier, sure):
    """A digit touching a 7 whose tail runs far below the line: the pair is narrower than it
    is tall, but wide against its line's digits, so its cut parts go into the frame's batch
    too. (Whether they win is the classifier's call: on these MNIST pairs it often reads the
    whole as one 7 surely enough; the sticky-note sheets' '87' is split.)"""
    rng = np.random.default_rng(10)
    offered = 0
    for trial in range(8):
        first, last, other = (int(v) for v in rng.choice([0, 2, 3, 4, 5, 6, 8], 3))
        inks = [scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 90) for d in (first, other)]
        seven = scaled_ink(mnist.x_test[int(rng.choice(sure[7]))], 90)
        seven = cv2.resize(seven, (seven.shape[1], 180))
        tail = scaled_ink(mnist.x_test[int(rng.choice(sure[last]))], 90)
        x, items = 40, []
        items.append((tail, x, 120))
        x += tail.shape[1] + 50
        items.append((inks[0], x, 120))
        x += inks[0].shape[1] - 4  # touching
        items.append((seven, x, 120))
        x += seven.shape[1] + 50
        items.append((inks[1], x, 120))
        candidates = find_digit_candidates(paper_with(items, seed=trial))
        pair = [c for c in candidates if c.box[3] > 150]
        assert len(candidates) == 3 and len(pair) == 1, [c.box for c in candidates]
        assert pair[0].box[2] < pair[0].box[3]  # narrower than tall
        offered += bool(pair[0].splits)
    assert offered >= 7, f"{offered} of 8 pairs offered as two"


def tick(height: int, rng: np.random.Generator) -> np.ndarray:
    """A short pen stroke, nearly upright: a tick, an apostrophe, a stray mark."""
    ink = np.zeros((height + 8, 14), np.float32)
    top, bottom = (int(rng.integers(5, 9)), 4), (int(rng.integers(5, 9)), height + 3)
    cv2.line(ink, top, bottom, 1.0, int(rng.integers(3, 5)), cv2.LINE_AA)
    return cv2.GaussianBlur(ink, (0, 0), 0.8)


def test_tick_beside_a_number_is_not_a_one(mnist, classifier, sure):
    """A short upright mark in a line of digits (under half their height) is not read as a
    1; the number's own 1s, as tall as their neighbours, still are."""
    rng = np.random.default_rng(12)
    for trial in range(6):
        labels = [1] + [int(d) for d in rng.integers(0, 10, 3)]
        rng.shuffle(labels)
        inks = [scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 90) for d in labels]
        mark = tick(int(rng.integers(26, 36)), rng)  # 0.3-0.4 of the digits' height
        at = int(rng.integers(0, len(inks) + 1))  # before, between or after the digits
        inks.insert(at, mark)
        items, x = [], 60
        for ink in inks:
            low = ink is mark  # a tick sits anywhere along the line's height
            items.append((ink, x, 150 + (int(rng.integers(0, 90 - ink.shape[0])) if low else 0)))
            x += ink.shape[1] + 35
        text = recognize(paper_with(items, size=(480, 720), seed=trial), classifier).text
        assert text == "".join(map(str, labels)), f"trial {trial}: {text}"


def test_shadow_edge_is_not_a_digit(mnist, classifier, sure):
    rng = np.random.default_rng(6)
    h, w = 480, 640
    ys, xs = np.mgrid[0:h, 0:w]
    for trial in range(6):
        a = rng.uniform(0, np.pi)
        side = np.cos(a) * (xs - w / 2) + np.sin(a) * (ys - h / 2) - rng.uniform(-100, 100)
        light = np.where(side > 0, rng.uniform(0.45, 0.7), 1.0)
        light = cv2.GaussianBlur(light.astype(np.float32), (0, 0), rng.uniform(0.8, 3))
        page = 220 * light + rng.normal(0, 3, (h, w))
        frame = np.clip(page, 0, 255).astype(np.uint8)
        frame = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], 0)
        assert recognize(frame, classifier).digits == [], f"trial {trial}"


def test_dark_blob_is_not_a_digit_nor_the_writing_s_size(mnist, classifier, sure):
    """A dark, solid patch beside a number (a shadow in a dim photo, a thumb, a smudge) holds
    more ink than all the digits: it must neither be read nor set the scale they are read at."""
    rng = np.random.default_rng(8)
    right = 0
    for trial in range(6):
        labels = [int(d) for d in rng.integers(0, 10, 5)]
        items, x = [], 40
        for d in labels:
            ink = scaled_ink(mnist.x_test[int(rng.choice(sure[d]))], 50)
            items.append((ink, x, 60))
            x += ink.shape[1] + 20
        blob = np.zeros((130, 220), np.float32)
        cv2.ellipse(blob, (110, 65), (105, 60), float(rng.uniform(-20, 20)), 0, 360, 0.8, -1)
        items.append((cv2.GaussianBlur(blob, (0, 0), 4), int(rng.integers(60, 380)), 250))
        result = recognize(paper_with(items, seed=trial), classifier)
        right += result.text == "".join(map(str, labels))
    assert right >= 5, f"{right} of 6 numbers read exactly beside a dark blob"


@pytest.mark.parametrize("side", [16, 28, 64])
@pytest.mark.parametrize("polarity", ["white-on-black", "black-on-white"])
def test_tight_crops_read_as_one_digit(mnist, classifier, sure, side, polarity):
    """A digit filling its image, as people save digits and USPS stores them."""
    right = one = 0
    picks = [sure[d][k] for d in range(10) for k in range(5)]
    for i in picks:
        digit = mnist.x_test[i]
        rows, cols = np.flatnonzero(digit.max(axis=1)), np.flatnonzero(digit.max(axis=0))
        ink = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        tight = cv2.resize(ink, (side, side), interpolation=cv2.INTER_AREA)
        image = tight if polarity == "white-on-black" else 255 - tight
        result = recognize(image, classifier)
        one += len(result.digits) == 1
        right += result.text == str(mnist.y_test[i])
    assert one == len(picks)
    assert right >= 0.9 * len(picks), f"{right} of {len(picks)}"


def test_real_photos(classifier):
    if not (REAL_PHOTOS / "labels.csv").is_file():
        pytest.skip(f"{REAL_PHOTOS} missing: the real-photo figures need ../shared/data")
    rows = read_photos(classifier)
    by_kind = {k: score([r for r in rows if r["kind"] == k]) for k in {r["kind"] for r in rows}}
    every = score(rows)
    sheets = score([r for r in rows if r["source_repo"].startswith("HYPJUDY/")])
    # Bars a little under the measured figures (95.8 % of all digits, 30 of 30 single photos,
    # 95.4 % of the several-digit photos' digits, 96.5 % of the sticky-note sheets'), with room
    # for another model.
    assert every["right"] >= 0.92 * every["digits"], every
    assert by_kind["photo_single"]["right"] >= 0.93 * by_kind["photo_single"]["digits"]
    assert by_kind["photo_multi"]["right"] >= 0.91 * by_kind["photo_multi"]["digits"]
    assert sheets["right"] >= 0.9 * sheets["digits"], sheets


def test_usps_digits_as_files(classifier):
    if not USPS_FILE.is_file():
        pytest.skip(f"{USPS_FILE} missing: the USPS figures need ../shared/data")
    images, labels = usps_sample(400, seed=1)
    usps = read_usps(classifier, images, labels)
    for form in ("16x16", "64x64 scan"):
        # Within 2 points of the model on the same digits in MNIST's layout (measured: 0-0.2).
        assert usps[form]["right"] >= usps["direct"] - 0.02, (form, usps)
        assert usps[form]["empty"] == 0


def test_image_files_of_tight_crops(tmp_path, mnist, classifier, sure):
    """The same through a PNG file, as `predict` reads it."""
    i = sure[3][0]
    path = tmp_path / "three.png"
    cv2.imwrite(str(path), 255 - cv2.resize(mnist.x_test[i][4:24, 4:24], (16, 16)))
    assert recognize(read_image(path), classifier).text == "3"
