"""recognize() with the real int8 model on camera-like frames from MNIST test digits.

The accuracy targets of the runtime are asserted here over a seeded sample of frames made by
tests/synthetic.py (dark ink on off-white paper, uneven light, shadows, noise, blur, JPEG,
15-90 % of the frame height, anywhere in the frame).
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import WEAK_MARK, FrameResult, recognize
from tests.synthetic import camera_frame, sample_numbers

SINGLE_FRAMES = 300
NUMBER_FRAMES = 100


@pytest.fixture(scope="module")
def classifier(repo_root) -> DigitClassifier:
    path = repo_root / "models" / "mnist_int8.tflite"
    if not path.is_file():
        pytest.skip(f"{path} missing: run `mnist-edge all` first")
    return DigitClassifier(path)


class CountingClassifier(DigitClassifier):
    """The real classifier, counting its predict calls and images."""

    def __init__(self, path):
        super().__init__(path)
        self.calls: list[int] = []

    def predict(self, images):
        self.calls.append(len(images))
        return super().predict(images)


def test_single_digit_frames_reach_97_percent(mnist, classifier):
    rng = np.random.default_rng(2024)
    picks = rng.choice(len(mnist.x_test), SINGLE_FRAMES, replace=False)
    right = 0
    for i in picks:
        result = recognize(camera_frame([mnist.x_test[i]], rng), classifier)
        right += result.text == str(mnist.y_test[i])
    accuracy = right / SINGLE_FRAMES
    assert accuracy >= 0.97, f"single digits: {accuracy:.3f}"


def test_numbers_of_3_to_5_digits_reach_90_percent(mnist, classifier):
    rng = np.random.default_rng(2025)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, NUMBER_FRAMES, rng, lengths=(3, 5))
    right = sum(recognize(camera_frame(d, rng), classifier).text == t for d, t in numbers)
    accuracy = right / NUMBER_FRAMES
    assert accuracy >= 0.90, f"whole numbers: {accuracy:.3f}"


def test_light_digits_on_a_dark_board(mnist, classifier):
    rng = np.random.default_rng(7)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, 30, rng, lengths=(1, 3))
    right = sum(
        recognize(camera_frame(d, rng, board=True), classifier).text == t for d, t in numbers
    )
    assert right >= 0.85 * len(numbers), f"{right} of {len(numbers)} board frames right"


@pytest.mark.parametrize(
    "options, singles_needed, numbers_needed",
    [
        ({"ruled": True}, 0.93, 0.75),
        ({"page_edge": True, "specks": 20}, 0.93, 0.8),
        ({"stroke": 2.0}, 0.9, 0.7),  # a marker: strokes about twice MNIST's
        ({"pen": 2.0}, 0.8, 0.75),  # a fine pen: a 2-pixel line whatever the digit's size
    ],
    ids=["ruled", "page-edge-specks", "marker", "fine-pen"],
)
def test_other_paper_and_pens(mnist, classifier, options, singles_needed, numbers_needed):
    """Beyond MNIST's own look: lower bars than the targets, to catch regressions."""
    rng = np.random.default_rng(31)
    picks = rng.choice(len(mnist.x_test), 80, replace=False)
    singles = sum(
        recognize(camera_frame([mnist.x_test[i]], rng, **options), classifier).text
        == str(mnist.y_test[i])
        for i in picks
    )
    numbers = sample_numbers(mnist.x_test, mnist.y_test, 30, rng, lengths=(3, 5))
    right = sum(
        recognize(camera_frame(d, rng, **options), classifier).text == t for d, t in numbers
    )
    assert singles >= singles_needed * 80, f"{options}: {singles} of 80 single digits"
    assert right >= numbers_needed * 30, f"{options}: {right} of 30 numbers"


def test_mnist_test_image_gives_the_test_set_answer(mnist, classifier):
    images = mnist.x_test[:200]
    direct = classifier.predict(images.astype(np.float32) / 255.0)
    for image, probabilities in zip(images, direct, strict=True):
        result = recognize(image, classifier)
        assert len(result.digits) == 1
        assert result.digits[0].digit == int(probabilities.argmax())
        assert result.digits[0].confidence == pytest.approx(float(probabilities.max()))


def test_all_crops_of_a_frame_go_in_one_batch(mnist, repo_root):
    counting = CountingClassifier(repo_root / "models" / "mnist_int8.tflite")
    rng = np.random.default_rng(11)
    frame = camera_frame(list(mnist.x_test[:5]), rng)
    result = recognize(frame, counting)
    assert counting.calls == [5]
    assert len(result.digits) == 5
    xs = [d.box[0] for d in result.digits]
    assert xs == sorted(xs)


def test_blank_frame_gives_no_digits_and_no_call(repo_root):
    counting = CountingClassifier(repo_root / "models" / "mnist_int8.tflite")
    result = recognize(np.full((480, 640, 3), 230, np.uint8), counting)
    assert result == FrameResult(digits=[], text="")
    assert result.to_json() == {"text": "", "digits": []}
    assert counting.calls == []


def test_weak_digits_are_marked_or_dropped(mnist, classifier):
    # Three digits the model is sure of and two it hesitates on, so confidences differ.
    confidence = classifier.predict(mnist.x_test[:500] / 255.0).max(axis=1)
    order = np.argsort(confidence)
    unsure = [i for i in order if 0.5 < confidence[i] < 0.8][:2]
    picks = [order[-1], unsure[0], order[-2], unsure[1], order[-3]]
    rng = np.random.default_rng(12)
    frame = camera_frame([mnist.x_test[i] for i in picks], rng)
    everything = recognize(frame, classifier)
    assert len(everything.digits) == 5 and not any(d.weak for d in everything.digits)
    # A threshold between the confidences: those below it are weak.
    levels = sorted({d.confidence for d in everything.digits})
    assert len(levels) >= 2, "need digits of different confidence for this test"
    threshold = (levels[0] + levels[1]) / 2
    weak = [d.confidence < threshold for d in everything.digits]
    marked = recognize(frame, classifier, min_confidence=threshold)
    assert [d.weak for d in marked.digits] == weak
    assert marked.text == "".join(
        WEAK_MARK if w else t for w, t in zip(weak, everything.text, strict=True)
    )
    assert [d.to_json().get("weak", False) for d in marked.digits] == weak
    dropped = recognize(frame, classifier, min_confidence=threshold, drop_weak=True)
    assert dropped.text == "".join(t for w, t in zip(weak, everything.text, strict=True) if not w)
    assert [d.box for d in dropped.digits] == [
        d.box for d, w in zip(everything.digits, weak, strict=True) if not w
    ]


def test_to_json_shape(mnist, classifier):
    rng = np.random.default_rng(13)
    result = recognize(camera_frame(list(mnist.x_test[:3]), rng), classifier)
    data = result.to_json()
    assert data["text"] == result.text and len(data["digits"]) == 3
    for item, digit in zip(data["digits"], result.digits, strict=True):
        assert item["digit"] == digit.digit and 0.0 <= item["confidence"] <= 1.0
        assert item["box"] == list(digit.box) and len(item["box"]) == 4
        assert all(isinstance(v, int) for v in item["box"])
