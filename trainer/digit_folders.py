"""Labelled digits in folders, `DIR/0/ ... DIR/9/`: the user's own data, and other test sets.

`mnist-edge train --extra-data DIR` mixes such a folder into training and `mnist-edge export
--eval-dir DIR` measures every model on one. Each image holds one digit, of any size, as a
PNG, JPEG or any format the runtime reads (`mnist_edge.runtime.images.read_image`):

- 28x28 images are taken as they are (MNIST's layout; `mnist-edge predict --save-crops`
  writes exactly that: white digit on black);
- anything else is put into MNIST's layout the way the runtime does with a camera's crops
  (`mnist_edge.runtime.preprocess.to_mnist_28x28`: fitted in a 20x20 box, pen width evened
  out, centre of mass at the centre).

Either polarity is fine: the background is the median of the image's outermost ring of pixels
(a bold digit may cover half the image, never most of its border: USPS's digits fill their
box, yet their ring's median is at most 90 of 255). A light background is paper under dark
ink and is inverted; a grey one is taken off, so white-on-black ink remains.
A whole photo of a page is not a digit: `mnist-edge predict --save-crops` cuts one into these.

Every problem is an error naming its path: a folder name that is not a digit, a file that is
not a readable image, an empty digit folder. Hidden files (a leading dot) are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnist_edge.runtime.images import IMAGE_SUFFIXES, ImageReadError, read_image
from mnist_edge.runtime.preprocess import to_gray, to_mnist_28x28

DIGITS = [str(d) for d in range(10)]


class DigitFolderError(Exception):
    """A problem with a digit folder; the message is one line naming the path."""


@dataclass
class DigitSet:
    images: np.ndarray  # uint8 [N, 28, 28], white digit on black, MNIST's layout
    labels: np.ndarray  # uint8 [N]
    files: list[str]  # "digit/name" relative to the folder, in the order of the images
    name: str  # the folder's name (reports carry no absolute paths)
    checksum: str  # sha256 of the sorted "digit/name<TAB>sha256 of the file" lines

    @property
    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=10).tolist()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "images": len(self.labels),
            "counts": self.counts,
            "files_sha256": self.checksum,
        }

    def subset(self, which: np.ndarray) -> DigitSet:
        files = [self.files[i] for i in which]
        return DigitSet(self.images[which], self.labels[which], files, self.name, self.checksum)


def to_mnist_layout(image: np.ndarray) -> np.ndarray:
    """One digit image (grey or BGR, any size, either polarity) as uint8 28x28 white on black."""
    gray = to_gray(image)
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    background = int(np.median(ring))
    if background > 127:  # light paper, dark ink
        gray, background = 255 - gray, 255 - background
    if gray.shape == (28, 28):
        return np.ascontiguousarray(gray)
    ink = cv2.subtract(gray, background)  # a grey background to black (saturating)
    return np.rint(to_mnist_28x28(ink) * 255).astype(np.uint8)


def _digit_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DigitFolderError(f"{folder}: no such folder (expected folders 0 ... 9 of images)")
    folders = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir() or entry.name not in DIGITS:
            raise DigitFolderError(
                f"{entry}: not a digit folder (expected only folders named 0 ... 9 in {folder})"
            )
        folders.append(entry)
    if not folders:
        raise DigitFolderError(f"{folder}: no digit folders in it (expected folders 0 ... 9)")
    return folders


def load_digit_folders(folder: str | Path) -> DigitSet:
    """Read every image of `folder/0 ... folder/9`; raise DigitFolderError on any problem."""
    folder = Path(folder)
    images, labels, files, lines = [], [], [], []
    for digit_folder in _digit_folders(folder):
        entries = [p for p in sorted(digit_folder.iterdir()) if not p.name.startswith(".")]
        if not entries:
            raise DigitFolderError(f"{digit_folder}: empty digit folder (no images in it)")
        for path in entries:
            if not path.is_file() or not path.name.lower().endswith(IMAGE_SUFFIXES):
                raise DigitFolderError(
                    f"{path}: not an image file (expected {', '.join(IMAGE_SUFFIXES)})"
                )
            try:
                image = read_image(path)
            except ImageReadError as error:
                raise DigitFolderError(str(error)) from None
            relative = f"{digit_folder.name}/{path.name}"
            images.append(to_mnist_layout(image))
            labels.append(int(digit_folder.name))
            files.append(relative)
            lines.append(f"{relative}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n")
    checksum = hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
    name = folder.resolve().name
    return DigitSet(np.stack(images), np.array(labels, np.uint8), files, name, checksum)


def write_digit_folders(
    images: np.ndarray, labels: np.ndarray, out: str | Path, prefix: str = "digit"
) -> None:
    """Write uint8 grey images as `out/<label>/<prefix>_<index>.png` (the layout read above)."""
    out = Path(out)
    for label in np.unique(labels):
        (out / str(int(label))).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = out / str(int(label)) / f"{prefix}_{i:05d}.png"
        if not cv2.imwrite(str(path), image):
            raise DigitFolderError(f"{path}: cannot write the image")
