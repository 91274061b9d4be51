"""The Python API for programs that embed the reader (a robot, a web app, a notebook).

    from mnist_edge import DigitReader

    reader = DigitReader()                   # the packaged int8 model, or DigitReader("m.tflite")
    result = reader.read("photo.jpg")        # a path, a numpy image (BGR or grey) or a PIL image
    print(result.text)                       # "4293"
    for d in result.digits:                  # reading order: lines top to bottom, left to right
        print(d.digit, d.confidence, d.box)  # box = (x, y, w, h) in image pixels
    print(result.to_json())                  # the object `mnist-edge predict --json` prints

It is what the `predict` command runs: the same image reading, preprocessing and model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_edge.runtime.batch import ReadOptions, read_digits
from mnist_edge.runtime.classifier import DigitClassifier, default_model
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.images import MAX_PIXELS
from mnist_edge.runtime.pixels import pil_to_array, to_uint8_bgr_or_gray

ImageLike = str | os.PathLike | np.ndarray | Image.Image


class DigitReader:
    """Reads every handwritten digit in an image with one TFLite model.

    `model` is a .tflite path (default: models/mnist_int8.tflite in the current folder, else the
    packaged one); `threads` the interpreter's threads; digits below `min_confidence` are marked
    weak (`drop_weak` leaves them out). A bad model raises `ModelError`, a bad image file
    `ImageReadError`, both with a one-line message naming the file. A model whose card (the
    .json beside it) does not match it is refused unless `ignore_card`.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        threads: int | None = None,
        min_confidence: float = 0.0,
        drop_weak: bool = False,
        max_pixels: int = MAX_PIXELS,
        ignore_card: bool = False,
    ) -> None:
        self.classifier = DigitClassifier(
            Path(model) if model is not None else default_model(), threads, ignore_card
        )
        self.min_confidence = min_confidence
        self.drop_weak = drop_weak
        self.max_pixels = max_pixels

    @property
    def model_path(self) -> Path:
        return self.classifier.path.resolve()

    def read(self, image: ImageLike) -> FrameResult:
        """The digits in one image: a file path, a uint8 numpy array (HxW grey, HxWx3 BGR as
        OpenCV gives, HxWx4 BGRA), or a PIL image."""
        if isinstance(image, (str, os.PathLike)):  # decoded as small as it may be, boxes as is
            options = ReadOptions(self.max_pixels, self.min_confidence, self.drop_weak)
            return read_digits(image, self.classifier, options)[0]
        return recognize(
            self._pixels(image),
            self.classifier,
            min_confidence=self.min_confidence,
            drop_weak=self.drop_weak,
        )

    def _pixels(self, image: ImageLike) -> np.ndarray:
        if isinstance(image, Image.Image):
            return to_uint8_bgr_or_gray(pil_to_array(image))
        if isinstance(image, np.ndarray):
            if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
                raise ValueError(
                    f"image array of shape {image.shape}: expected HxW grey, HxWx3 BGR "
                    "or HxWx4 BGRA"
                )
            if image.dtype == np.bool_ or image.dtype.kind not in "uif":
                raise ValueError(f"image array of dtype {image.dtype}: expected uint8 pixels")
            return to_uint8_bgr_or_gray(image)
        raise TypeError(
            f"cannot read a {type(image).__name__}: give a path, a numpy array or a PIL image"
        )
