"""How small may a photo be decoded before the recognizer reads it worse? (runtime/images.py)

    python -m tests.decode_size_study [--photos ../shared/data/real_photos] [--model PATH]

Each real photo is decoded at full size, then shrunk (area average) so that its long side is
at most L pixels, for a range of L, and read by `recognize`; also decoded by libjpeg's own
reduced decoding (1/2, 1/4, 1/8, what `read_image` uses) for comparison. Scored as the photos'
README says: exact text per image, and digits as len(label) - edit_distance(text, label),
summed over the images, per kind. The answer sets `images.MIN_DECODED_SIDE`; re-run it when
the recognizer changes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import MIN_DECODED_SIDE, decode_file
from tests.real_photos_report import edit_distance

REPO_ROOT = Path(__file__).resolve().parent.parent
SIDES = (160, 240, 320, 400, 480, 640, 800, 1000, 1280, 1600, 2000)
KINDS = ("photo_single", "photo_multi", "screen_drawn")
REDUCED = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
           8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # fmt: skip


def shrink_to(gray: np.ndarray, side: int) -> np.ndarray:
    h, w = gray.shape
    scale = side / max(h, w)
    if scale >= 1:
        return gray
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def score(readings: dict[str, str], labels: dict[str, tuple[str, str]]) -> dict[str, tuple]:
    """Per kind and overall: (images exact, images, digits right, digits)."""
    out = {}
    for kind in (*KINDS, "all"):
        names = [n for n, (_, k) in labels.items() if kind in ("all", k)]
        exact = sum(readings[n] == labels[n][0] for n in names)
        right = sum(len(labels[n][0]) - edit_distance(readings[n], labels[n][0]) for n in names)
        out[kind] = (exact, len(names), right, sum(len(labels[n][0]) for n in names))
    return out


@click.command()
@click.option("--photos", default=str(REPO_ROOT.parent / "shared" / "data" / "real_photos"))
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"))
def main(photos: str, model: str) -> None:
    folder = Path(photos)
    with open(folder / "labels.csv", newline="") as handle:
        labels = {row["file"]: (row["text"], row["kind"]) for row in csv.DictReader(handle)}
    classifier = DigitClassifier(model)
    full = {name: cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE) for name in labels}
    rows = []
    for side in SIDES:
        readings = {n: recognize(shrink_to(g, side), classifier).text for n, g in full.items()}
        rows.append((f"long side <= {side}", score(readings, labels)))
    readings = {n: recognize(g, classifier).text for n, g in full.items()}
    rows.append(("full size", score(readings, labels)))
    for k, flag in REDUCED.items():  # what libjpeg's reduced decoding gives (JPEGs only)
        readings = {}
        for name, gray in full.items():
            if name.endswith(".jpg"):
                gray = cv2.imread(str(folder / name), flag)
            readings[name] = recognize(gray, classifier).text
        rows.append((f"JPEGs at libjpeg 1/{k}", score(readings, labels)))
    readings = {
        n: recognize(decode_file(folder / n, grey=True).pixels, classifier).text for n in full
    }
    rows.append(
        (f"as predict decodes (MIN_DECODED_SIDE {MIN_DECODED_SIDE})", score(readings, labels))
    )
    sides = [max(g.shape) for g in full.values()]
    click.echo(f"{len(full)} photos, long side {min(sides)}-{max(sides)} px (median "
               f"{int(np.median(sides))}); model {Path(model).name}\n")  # fmt: skip
    header = "| decoded | " + " | ".join(f"{k}: exact / digits" for k in (*KINDS, "all")) + " |"
    click.echo(header)
    click.echo("| --- |" + " ---: |" * (len(KINDS) + 1))
    for name, scores in rows:
        cells = [f"{e}/{n} / {r}/{d}" for e, n, r, d in scores.values()]
        click.echo(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
