"""The real photos under the changes a different camera or hand would make: turned, smaller,
harder JPEG, blur, darker, noisier, in perspective. Digits right per change, as Markdown.

    python -m tests.camera_changes_report [--model PATH] [--change NAME ...]

Each photo of ../shared/data/real_photos (scored as its README says) is decoded, brought to
at most 1,600 pixels a side (as a phone photo reaches `recognize` after `predict`'s reduced
decode, about), changed, and read with `recognize`. A turn is about the centre within the
frame, edges replicated: the corners of a photo turn out of the frame (a digit there is lost
for every reader) and the replicated edges draw streaks, so a turned photo is harder than one
taken askew; read the rows against each other and against "none", not as accuracies of
photos taken that way. Perspective narrows the top by 12 % of the width on each side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import read_image
from tests.real_photos_report import REAL_PHOTOS, REPO_ROOT, digits_right, read_labels

LONGEST = 1600


def turned(degrees: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)

    return change


def smaller(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def change(image: np.ndarray) -> np.ndarray:
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)

    return change


def darker(image: np.ndarray) -> np.ndarray:
    """Under-exposed: gamma 1.5 and 60 % of the light."""
    return np.clip(255 * (image / 255.0) ** 1.5 * 0.6, 0, 255).astype(np.uint8)


def noisier(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


def in_perspective(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    square = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    narrowed = np.float32([[0.12 * w, 0], [0.88 * w, 0], [w, h], [0, h]])
    warp = cv2.getPerspectiveTransform(square, narrowed)
    return cv2.warpPerspective(image, warp, (w, h), borderMode=cv2.BORDER_REPLICATE)


CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda image: image,
    "turned +5°": turned(5),
    "turned -5°": turned(-5),
    "turned +10°": turned(10),
    "turned -10°": turned(-10),
    "turned +15°": turned(15),
    "turned -15°": turned(-15),
    "half size": smaller(0.5),
    "0.3 of the size": smaller(0.3),
    "JPEG quality 25": jpeg(25),
    "blur (sigma 1.5)": lambda image: cv2.GaussianBlur(image, (0, 0), 1.5),
    "darker (gamma 1.5, 60 % light)": darker,
    "noise (sigma 12)": noisier,
    "perspective": in_perspective,
}


@click.command()
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"), show_default=True)
@click.option("--change", "names", multiple=True, type=click.Choice(list(CHANGES)),
              help="only these changes (repeatable; default: all)")  # fmt: skip
def main(model: str, names: tuple[str, ...]) -> None:
    classifier = DigitClassifier(model)
    rows = read_labels()
    photos = []
    for row in rows:
        image = read_image(Path(REAL_PHOTOS) / row["file"])
        scale = LONGEST / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        photos.append(image)
    total = sum(len(row["text"]) for row in rows)
    click.echo(f"Model {Path(model).name}; {len(rows)} real photos, {total} digits.\n")
    click.echo("| change | digits right | photos exactly right |")
    click.echo("| --- | ---: | ---: |")
    for name in names or CHANGES:
        right = exact = 0
        for row, image in zip(rows, photos, strict=True):
            text = recognize(CHANGES[name](image), classifier).text
            right += digits_right(text, row["text"])
            exact += text == row["text"]
        click.echo(f"| {name} | {right} ({right / total:.1%}) | {exact} of {len(rows)} |")


if __name__ == "__main__":
    main()
