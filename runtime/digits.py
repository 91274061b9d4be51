"""Every digit in a frame: find the crops, classify them all in one batch, read them in order.

Regions that may be touching digits are also read as 2 or 3 parts, and neighbours that may be
one digit in pieces as one, in the same batch; the reading the classifier is clearly surer of
is kept (runtime/split.py, runtime/join.py).

classifier = DigitClassifier("models/mnist_int8.tflite")
result = recognize(frame, classifier, min_confidence=0.6)
print(result.text, [d.box for d in result.digits])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.join import choose_join
from mnist_edge.runtime.preprocess import find_digit_candidates
from mnist_edge.runtime.split import choose_reading

WEAK_MARK = "?"  # stands for a weak digit in `text` when weak digits are kept


@dataclass
class Digit:
    digit: int
    confidence: float  # the classifier's probability for `digit`
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    weak: bool = False  # confidence below the caller's min_confidence
    # The 28x28 input the classifier saw (float32, white on black): for drawing and saving,
    # not part of the JSON.
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        out = {"digit": self.digit, "confidence": round(self.confidence, 4), "box": list(self.box)}
        if self.weak:
            out["weak"] = True
        return out


@dataclass
class FrameResult:
    digits: list[Digit]  # in reading order: lines top to bottom, each left to right
    text: str  # the digits joined; a weak digit kept in the list shows as WEAK_MARK

    def to_json(self) -> dict:
        return {"text": self.text, "digits": [d.to_json() for d in self.digits]}


def recognize(
    frame: np.ndarray,
    classifier: DigitClassifier,
    min_confidence: float = 0.0,
    drop_weak: bool = False,
) -> FrameResult:
    """Find and classify every digit in a BGR or grey frame.

    A digit whose confidence is below `min_confidence` is weak: it is dropped with
    `drop_weak`, otherwise kept, flagged, and shown as WEAK_MARK in `text`. A blank frame
    gives no digits and an empty text, never a guess.
    """
    candidates = find_digit_candidates(frame)
    if not candidates:
        return FrameResult(digits=[], text="")
    # The whole regions, every part of every split and every joined pair, in one batch.
    crops = [c.crop for c in candidates]
    crops += [crop for c in candidates for cut in c.splits for _, crop in cut]
    joined_at = {}
    for i, c in enumerate(candidates):
        if c.joined is not None:
            joined_at[i] = len(crops)
            crops.append(c.joined[1])
    probabilities = classifier.predict(np.stack(crops))
    best = probabilities.argmax(axis=1)
    sure = probabilities.max(axis=1)
    # Each region's reading: [(box, crop, its row in the batch)], itself or its parts.
    readings = []
    k = len(candidates)
    for i, c in enumerate(candidates):
        parts = []
        for cut in c.splits:
            parts.append([(box, crop, k + j) for j, (box, crop) in enumerate(cut)])
            k += len(cut)
        sureness = [[float(sure[j]) for _, _, j in cut] for cut in parts]
        aspect = c.box[2] / max(1, c.box[3])
        chosen = choose_reading(float(sure[i]), aspect, sureness, c.wide)
        readings.append([(c.box, c.crop, i)] if chosen is None else parts[chosen])
    i, kept = 0, []
    while i < len(candidates):
        j = joined_at.get(i)
        # Two regions read whole (neither split) may be one digit in two pieces.
        if j is not None and len(readings[i]) == len(readings[i + 1]) == 1:
            if choose_join(float(sure[i]), float(sure[i + 1]), float(sure[j])):
                kept.append((*candidates[i].joined, j))
                i += 2
                continue
        kept.extend(readings[i])
        i += 1
    digits = []
    for box, crop, j in kept:
        label = int(best[j])
        confidence = float(probabilities[j][label])
        weak = confidence < min_confidence
        if weak and drop_weak:
            continue
        digits.append(Digit(label, confidence, box, weak, crop))
    text = "".join(WEAK_MARK if d.weak else _label(classifier, d.digit) for d in digits)
    return FrameResult(digits=digits, text=text)


def _label(classifier: DigitClassifier, index: int) -> str:
    """The card's label for a class (the digit itself for MNIST)."""
    labels = getattr(classifier, "labels", None)
    return labels[index] if labels and index < len(labels) else str(index)
