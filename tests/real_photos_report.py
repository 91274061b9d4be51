"""How the runtime reads photos nobody here made, and USPS postal digits, as Markdown tables.

    python -m tests.real_photos_report [--model PATH] [--annotated DIR] [--usps N] [--full-size]

Real photos: ../shared/data/real_photos (labels.csv, scored as its README says: exact text per
image; digits = len(label) - edit_distance(text, label), summed over images), per kind and per
source, each image read from its file exactly as `mnist-edge predict` reads it
(`runtime.batch.read_digits`: a big JPEG decoded at a reduced size); `--full-size` decodes
every photo whole instead.
USPS: ../shared/data/usps/zip.train.gz. Each digit is written as a 16x16 PNG as stored (white on
black, filling the box), and as a 64x64 black-on-white scan with a margin, read back by
`predict`'s reader, and compared with the same model on the same digit in MNIST's layout (fitted
in 20x20, centre of mass at the centre of 28x28) fed directly.
"""

from __future__ import annotations

import csv
import gzip
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.runtime.batch import read_digits
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.drawing import draw_results
from mnist_edge.runtime.images import read_image

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared" / "data"
REAL_PHOTOS = SHARED / "real_photos"
USPS_FILE = SHARED / "usps" / "zip.train.gz"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of one character."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def digits_right(text: str, label: str) -> int:
    """The README's digit score of one image: len(label) - edit_distance(text, label)."""
    return len(label) - edit_distance(text, label)


def read_labels(folder: Path = REAL_PHOTOS) -> list[dict]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_photos(
    classifier: DigitClassifier,
    folder: Path = REAL_PHOTOS,
    annotated: Path | None = None,
    full_size: bool = False,
) -> list[dict]:
    """Every labelled photo read as `mnist-edge predict` reads it (runtime.batch.read_digits:
    a big JPEG decoded at a reduced size, then recognize()); with `full_size`, decoded whole.
    One dict per image with text and timing (decoding included)."""
    rows = []
    for row in read_labels(folder):
        path = folder / row["file"]
        start = time.perf_counter()
        if full_size:
            image = read_image(path)
            result, drawn = recognize(image, classifier), None
            if annotated is not None:
                drawn = draw_results(image, result, insets=True)
        else:
            result, drawn = read_digits(path, classifier, annotate=annotated is not None)
        seconds = time.perf_counter() - start
        if annotated is not None:
            annotated.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(annotated / (Path(row["file"]).stem + ".png")), drawn)
        rows.append({**row, "read": result.text, "ms": seconds * 1e3, "result": result})
    return rows


def score(rows: list[dict]) -> dict:
    images = len(rows)
    exact = sum(r["read"] == r["text"] for r in rows)
    digits = sum(len(r["text"]) for r in rows)
    right = sum(digits_right(r["read"], r["text"]) for r in rows)
    return {"images": images, "exact": exact, "digits": digits, "right": right}


def photo_table(rows: list[dict]) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[f"kind {r['kind']}"].append(r)
    for r in rows:
        groups[f"{r['kind']}: {r['source_repo']}"].append(r)
    lines = [
        "| real photos | images | exactly right | digits | digits right |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in sorted(groups, key=lambda n: (not n.startswith("kind"), n)):
        s = score(groups[name])
        lines.append(
            f"| {name} | {s['images']} | {s['exact']} ({s['exact'] / s['images']:.0%}) | "
            f"{s['digits']} | {s['right']} ({s['right'] / s['digits']:.1%}) |"
        )
    s = score(rows)
    lines.append(
        f"| all | {s['images']} | {s['exact']} ({s['exact'] / s['images']:.0%}) | "
        f"{s['digits']} | {s['right']} ({s['right'] / s['digits']:.1%}) |"
    )
    return "\n".join(lines)


def load_usps(path: Path = USPS_FILE) -> tuple[np.ndarray, np.ndarray]:
    """USPS digits as uint8 16x16 white on black (as stored), and their labels."""
    with gzip.open(path, "rt") as handle:
        values = np.loadtxt(handle, dtype=np.float32)
    labels = values[:, 0].astype(np.int64)
    images = np.rint((values[:, 1:] + 1.0) / 2.0 * 255.0).clip(0, 255).astype(np.uint8)
    return images.reshape(-1, 16, 16), labels


def usps_sample(count: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_usps()
    if count is not None and count < len(images):
        picks = np.random.default_rng(seed).choice(len(images), count, replace=False)
        images, labels = images[picks], labels[picks]
    return images, labels


def mnist_layout(digit: np.ndarray) -> np.ndarray:
    """A white-on-black digit in MNIST's layout, float32 28x28: its ink box fitted in 20x20
    keeping the aspect ratio, the centre of mass at the centre (MNIST's own recipe)."""
    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    scale = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.clip(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), 0, 1)
    out = np.zeros((28, 28), np.float32)
    h, w = small.shape
    m = cv2.moments(small)
    cy, cx = m["m01"] / m["m00"], m["m10"] / m["m00"]
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out[top : top + h, left : left + w] = small
    return out


def as_scan_64(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 16x16 USPS digit as a 64x64 black-on-white scan: enlarged to 40-52 pixels, a margin
    of paper around it, a little paper grain."""
    side = int(rng.integers(40, 53))
    big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC)
    page = np.zeros((64, 64), np.uint8)
    top, left = (int(v) for v in rng.integers(2, 64 - side - 1, size=2))
    page[top : top + side, left : left + side] = big
    scan = 250.0 - page.astype(np.float32) * (220 / 255) + rng.normal(0, 2, page.shape)
    return np.clip(scan, 0, 255).astype(np.uint8)


def read_usps(
    classifier: DigitClassifier, images: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict:
    """Accuracy through PNG files and recognize(), in both forms, and the direct accuracy."""
    direct = classifier.predict(np.stack([mnist_layout(d) for d in images])).argmax(axis=1)
    rng = np.random.default_rng(seed)
    out = {"count": len(images), "direct": float(np.mean(direct == labels))}
    with tempfile.TemporaryDirectory() as tmp:
        for form in ("16x16", "64x64 scan"):
            right = empty = several = 0
            for k, (digit, label) in enumerate(zip(images, labels, strict=True)):
                image = digit if form == "16x16" else as_scan_64(digit, rng)
                path = Path(tmp) / f"{k}.png"
                cv2.imwrite(str(path), image)
                result: FrameResult = recognize(read_image(path), classifier)
                right += result.text == str(label)
                empty += not result.digits
                several += len(result.digits) > 1
            out[form] = {"right": right / len(images), "empty": empty, "several": several}
    return out


def usps_table(usps: dict) -> str:
    lines = [
        f"| USPS ({usps['count']} digits) | read right | no digit | several | direct |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for form in ("16x16", "64x64 scan"):
        f = usps[form]
        lines.append(
            f"| {form} PNG files | {f['right']:.1%} | {f['empty']} | {f['several']} | "
            f"{usps['direct']:.1%} |"
        )
    return "\n".join(lines)


@click.command()
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"), show_default=True)
@click.option("--annotated", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--usps", "usps_count", default=7291, show_default=True, help="USPS digits (0: none)")
@click.option("--failures", is_flag=True, help="List every photo not read exactly right.")
@click.option("--full-size", is_flag=True, help="Decode every photo whole (predict reduces).")
def main(
    model: str, annotated: Path | None, usps_count: int, failures: bool, full_size: bool
) -> None:
    classifier = DigitClassifier(model)
    how = "decoded whole" if full_size else "decoded as `predict` decodes them"
    click.echo(f"Model {Path(model).name}; photos {how}.\n")
    if (REAL_PHOTOS / "labels.csv").is_file():
        rows = read_photos(classifier, annotated=annotated, full_size=full_size)
        click.echo(photo_table(rows))
        slowest = max(rows, key=lambda r: r["ms"])
        click.echo(
            f"\nPer photo: median {np.median([r['ms'] for r in rows]):.1f} ms, slowest "
            f"{slowest['ms']:.0f} ms ({slowest['file']})."
        )
        if failures:
            for r in rows:
                if r["read"] != r["text"]:
                    click.echo(f"{r['file']} {r['kind']:<12} want {r['text']}")
                    click.echo(f"{'':21}read {r['read']}")
    else:
        click.echo(f"{REAL_PHOTOS} missing: no real-photo figures")
    if usps_count and USPS_FILE.is_file():
        images, labels = usps_sample(usps_count)
        click.echo("\n" + usps_table(read_usps(classifier, images, labels)))
    elif usps_count:
        click.echo(f"{USPS_FILE} missing: no USPS figures")


if __name__ == "__main__":
    main()
