"""What the model saw, shown to the user: the insets of --save-annotated and --save-crops."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from mnist_edge.cli import main
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import Digit, FrameResult, recognize
from mnist_edge.runtime.drawing import MAX_ZOOM, draw_results, place_insets
from tests.synthetic import camera_frame_with_boxes


def number_photo(mnist, path, indices=(0, 1, 2)) -> str:
    rng = np.random.default_rng(8)
    frame, _ = camera_frame_with_boxes([mnist.x_test[i] for i in indices], rng, jpeg_quality=90)
    cv2.imwrite(str(path), frame)
    return "".join(str(mnist.y_test[i]) for i in indices)


def test_insets_show_each_input_beside_its_box(mnist, int8_model):
    rng = np.random.default_rng(9)
    frame, _ = camera_frame_with_boxes([mnist.x_test[3], mnist.x_test[4]], rng, height_frac=0.3)
    result = recognize(frame, DigitClassifier(int8_model))
    plain = draw_results(frame, result)
    shown = draw_results(frame, result, insets=True)
    assert shown.shape == plain.shape
    for digit in result.digits:
        assert digit.crop is not None and digit.crop.shape == (28, 28)
        # The inset is the crop enlarged at least 2x: its bright stroke pixels appear in the
        # annotated image under the box (on grey paper nothing is that white).
        x, y, w, h = digit.box
        below = shown[y + h : y + h + 2 * 28 + 4, max(0, x - 2) : x + 2 * 28 + 4]
        assert (below.min(axis=2) > 240).sum() >= 2 * 2 * (digit.crop > 0.95).sum() * 0.8


def test_labels_and_insets_stay_inside_a_small_image(mnist, int8_model):
    """A digit filling a small photo: the label and the inset are clipped to the image."""
    rng = np.random.default_rng(10)
    frame, _ = camera_frame_with_boxes([mnist.x_test[5]], rng, size=(90, 70), height_frac=0.9)
    result = recognize(frame, DigitClassifier(int8_model))
    assert result.digits
    shown = draw_results(frame, result, insets=True)
    assert shown.shape[:2] == frame.shape[:2]


def test_insets_on_a_dense_page_cover_no_other_digit():
    """A sheet of four lines of ten digits, lines closer than an inset is tall: each inset
    goes where it covers no other digit, its label or another inset, in a copy drawn larger
    when the page has no room for them at its own size."""
    boxes = [(20 + 60 * c, 20 + 50 * r, 28, 40) for r in range(4) for c in range(10)]
    crop = np.zeros((28, 28), np.float32)
    crop[4:24, 12:16] = 1.0  # a "1": white pixels, which the grey page has none of
    result = FrameResult([Digit(1, 0.99, b, crop=crop) for b in boxes], "1" * len(boxes))
    page = np.full((240, 640), 180, np.uint8)
    zoom, places = place_insets(result, page.shape)
    assert 1 < zoom <= MAX_ZOOM and all(p is not None for p in places)
    shown = draw_results(page, result, insets=True)
    assert shown.shape[:2] == (240 * zoom, 640 * zoom)
    scaled = [tuple(v * zoom for v in b) for b in boxes]
    for i, (x, y, side, _) in enumerate(places):
        for j, (bx, by, bw, bh) in enumerate(scaled):
            if j != i:
                assert x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y
        # The crop is there, enlarged: its stroke's white pixels.
        inset = shown[y : y + side, x : x + side]
        assert (inset.min(axis=2) > 240).sum() >= 0.8 * (crop > 0.95).sum() * (side / 28) ** 2
    # A sparse frame is drawn at its own size.
    sparse = FrameResult([Digit(1, 0.99, (100, 60, 28, 40), crop=crop)], "1")
    assert draw_results(page, sparse, insets=True).shape[:2] == page.shape


def test_save_crops_writes_mnist_layout_pngs_by_predicted_digit(mnist, int8_model, tmp_path):
    photo = tmp_path / "scans" / "number.jpg"
    photo.parent.mkdir()
    number_photo(mnist, photo)
    out = tmp_path / "crops"
    result = CliRunner().invoke(
        main, ["predict", str(photo), "--model", str(int8_model), "--save-crops", str(out)]
    )
    assert result.exit_code == 0, result.output
    read = result.output.splitlines()[1].split()[1]
    files = sorted(out.glob("*/*.png"))
    assert len(files) == len(read)
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (28, 28) and image.dtype == np.uint8
        assert image[:2].max() < 40 and image.max() == 255  # white on black, MNIST layout
        assert path.parent.name in "0123456789" and path.name.endswith(".png")
    # Named after the image and the position in reading order; the folder is the reading.
    names = [p for p in files if "number_" in p.name]
    assert len(names) == len(files)
    by_position = sorted(files, key=lambda p: p.name.split("_")[-3])
    assert "".join(p.parent.name for p in by_position) == read
    # The folder is what `train --extra-data` reads: DIR/<label>/*.png
    assert {p.parent.parent for p in files} == {out}
