"""Each digit's 28x28 input as a PNG file: the first step of collecting one's own digits.

`mnist-edge predict --save-crops DIR` writes every digit it read to
DIR/<predicted digit>/<image>_<position>.png, white on black in MNIST's layout: the form
`mnist-edge train --extra-data DIR` reads (DIR/<label>/*.png). The folder is the model's guess,
not the truth: look through each folder and move the wrong ones before training on them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnist_edge.runtime.batch import write_png
from mnist_edge.runtime.digits import FrameResult


def crop_name(shown: str, index: int, box: tuple[int, int, int, int]) -> str:
    """<the input's path, '/' as '__'>_<position in reading order>_x<x>_y<y>.png"""
    parts = [p for p in Path(shown).parts if p not in (os.sep, "..", ".") and not p.endswith(":")]
    stem = "__".join([*parts[:-1], Path(parts[-1]).stem]) if parts else "image"
    return f"{stem}_{index:03d}_x{box[0]}_y{box[1]}.png"


def save_crops(folder: Path, shown: str, result: FrameResult) -> list[Path]:
    """Write each digit's 28x28 input under folder/<predicted digit>/, atomically."""
    written = []
    for index, digit in enumerate(result.digits):
        if digit.crop is None:
            continue
        target = folder / str(digit.digit) / crop_name(shown, index, digit.box)
        pixels = np.clip(np.rint(digit.crop * 255.0), 0, 255).astype(np.uint8)
        written.append(write_png(target, pixels))
    return written
