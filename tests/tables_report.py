"""Sudokus of every size in the photo, and digits in boxes, level and askew, as Markdown tables.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.tables_report [--model PATH] [--seeds 4]

A 9x9 sudoku drawn with a marker (tests/synthetic.py's `sudoku_page`: every third line bolder,
MNIST test digits the model reads right alone in about a third of its cells, 0.55-0.65 of a
cell tall) filling a share of
a 1600x1200 photo's height, at a random place, level or turned. The real photos' sudokus
fill their frames; a sudoku photographed from further away, or on a page of other things,
does not. Then a row of six boxes with a digit in each (a form, a postcode;
`boxes_page`), side by side or 12 px apart, 50-120 px boxes, in a 1280x720 photo (1600x900
for the biggest). Per size and angle: photos read exactly right and digits right (the real
photos' score: a digit less the edit distance, which extra readings make negative).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.trainer.data import load_mnist
from tests.real_photos_report import digits_right
from tests.synthetic import boxes_page, sudoku_page

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARES = (0.45, 0.5, 0.7, 0.9)  # of the photo's height; under ~0.4 its digits are specks
ANGLES = (0.0, 12.0, 30.0)
SIZE = (1200, 1600)


@click.command()
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"), show_default=True)
@click.option("--seeds", default=4, show_default=True, help="sudokus per size and angle")
def main(model: str, seeds: int) -> None:
    mnist = load_mnist(os.environ.get("MNIST_DATA_DIR"))
    classifier = DigitClassifier(model)
    # Test digits the model reads right fed directly: what is left is the cost of finding them.
    x, y = mnist.x_test[:3000], mnist.y_test[:3000]
    right_alone = classifier.predict(x / 255.0).argmax(axis=1) == y
    digits = {d: list(x[(y == d) & right_alone]) for d in range(10)}
    click.echo(f"Model {Path(model).name}; {seeds} sudokus per row, {SIZE[1]}x{SIZE[0]} photos.\n")
    click.echo("| sudoku's side / photo's height | turned | exactly right | digits right |")
    click.echo("| ---: | ---: | ---: | ---: |")
    rows = []
    for share in SHARES:
        for angle in ANGLES:
            pages = (
                sudoku_page(digits, np.random.default_rng(seed), SIZE, int(share * SIZE[0]), angle)
                for seed in range(seeds)
            )
            rows.append(scored(pages, classifier))
            exact, right, total = rows[-1]
            click.echo(f"| {share:.2f} | {angle:.0f}° | {exact} of {seeds} | {right / total:.1%} |")
    exact, right, total = map(sum, zip(*rows, strict=True))
    click.echo(f"| all | | {exact} of {seeds * len(rows)} | {right / total:.1%} ({total}) |")
    click.echo("\n| boxes | box side | turned | exactly right | digits right |")
    click.echo("| --- | ---: | ---: | ---: | ---: |")
    rows, photos = [], seeds + 2
    for apart in (0, 12):
        for cell in (50, 80, 120):
            size = (720, 1280) if cell < 120 else (900, 1600)
            for angle in (0.0, 8.0, 20.0):
                pages = (
                    boxes_page(digits, np.random.default_rng(seed), size, cell, apart, angle)
                    for seed in range(photos)
                )
                rows.append(scored(pages, classifier))
                exact, right, total = rows[-1]
                kind = "side by side" if apart == 0 else f"{apart} px apart"
                click.echo(f"| {kind} | {cell} px | {angle:.0f}° | {exact} of {photos} | "
                           f"{right} of {total} |")  # fmt: skip
    exact, right, total = map(sum, zip(*rows, strict=True))
    click.echo(f"| all | | | {exact} of {photos * len(rows)} | {right} of {total} |")


def scored(pages, classifier: DigitClassifier) -> tuple[int, int, int]:
    """(photos read exactly right, digits right, digits) over (frame, text) pairs."""
    exact = right = total = 0
    for page, want in pages:
        text = recognize(page, classifier).text
        exact += text == want
        right += digits_right(text, want)
        total += len(want)
    return exact, right, total


if __name__ == "__main__":
    main()
