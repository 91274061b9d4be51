"""Accuracy and speed of the runtime's preprocessing on camera-like frames, as a Markdown table.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.vision_report [--model PATH] [--quick]

Frames come from tests/synthetic.py (seeded, MNIST *test* digits); every scenario is compared
with the same model on the same MNIST digits fed directly, so the table shows what the camera
path costs on top of the model's own errors. Timings are medians over frames of this run.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import click
import numpy as np

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.preprocess import find_digit_crops
from tests.synthetic import camera_frame, sample_numbers

REPO_ROOT = Path(__file__).resolve().parent.parent

# name, options for camera_frame
SCENARIOS = [
    ("default: paper, uneven light, shadow, noise, blur, JPEG", {}),
    ("ruled paper (lines tilted up to 1.5 degrees)", {"ruled": True}),
    ("squared paper", {"grid": True}),
    ("page edge and desk + 20 specks of dirt", {"page_edge": True, "specks": 20}),
    ("light chalk on a dark board", {"board": True}),
    ("marker (strokes about twice as thick)", {"stroke": 2.0}),
    ("fine pen (2-pixel hair line at any size)", {"pen": 2.0}),
]


def digits_text(classifier: DigitClassifier, images: list[np.ndarray]) -> str:
    probabilities = classifier.predict(np.stack(images).astype(np.float32) / 255.0)
    return "".join(str(int(i)) for i in probabilities.argmax(axis=1))


def run_scenario(mnist, classifier, options: dict, singles: int, numbers: int, seed: int):
    """(single-digit accuracy, direct accuracy, whole-number accuracy, direct accuracy)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(mnist.x_test), singles, replace=False)
    right = direct = 0
    for i in picks:
        truth = str(mnist.y_test[i])
        right += (
            recognize(camera_frame([mnist.x_test[i]], rng, **options), classifier).text == truth
        )
        direct += digits_text(classifier, [mnist.x_test[i]]) == truth
    right_n = direct_n = 0
    for images, truth in sample_numbers(mnist.x_test, mnist.y_test, numbers, rng, (3, 5)):
        right_n += recognize(camera_frame(images, rng, **options), classifier).text == truth
        direct_n += digits_text(classifier, images) == truth
    return right / singles, direct / singles, right_n / numbers, direct_n / numbers


def median_us(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def timings(mnist, classifier, frames: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    stills = [
        camera_frame(d, rng) for d, _ in sample_numbers(mnist.x_test, mnist.y_test, frames, rng)
    ]
    for frame in stills:  # warm up: interpreters for every batch size, caches
        recognize(frame, classifier)
    repeats = 5
    per_frame = [median_us(lambda f=frame: recognize(f, classifier), repeats) for frame in stills]
    preprocessing = [median_us(lambda f=frame: find_digit_crops(f), repeats) for frame in stills]
    one = mnist.x_test[:1].astype(np.float32) / 255.0
    classifier.predict(one)
    return {
        "frame_ms": float(np.median(per_frame)) / 1e3,
        "preprocess_ms": float(np.median(preprocessing)) / 1e3,
        "batch1_us": median_us(lambda: classifier.predict(one), 2000),
    }


@click.command()
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"), show_default=True)
@click.option("--singles", default=600, show_default=True, help="single-digit frames per scenario")
@click.option("--numbers", default=200, show_default=True, help="3-5 digit frames per scenario")
@click.option("--quick", is_flag=True, help="the default scenario only, fewer frames")
def main(model: str, singles: int, numbers: int, quick: bool) -> None:
    from mnist_edge.trainer.data import (
        load_mnist,  # the report needs MNIST; the runtime itself does not
    )

    mnist = load_mnist(os.environ.get("MNIST_DATA_DIR"))
    classifier = DigitClassifier(model)
    scenarios = SCENARIOS[:1] if quick else SCENARIOS
    if quick:
        singles, numbers = min(singles, 200), min(numbers, 60)
    click.echo(f"Model {Path(model).name}; {singles} single-digit and {numbers} 3-5 digit frames")
    click.echo("per scenario (seeded); 'direct' = the same MNIST digits fed to the model as is.\n")
    click.echo("| frames | single digit | direct | 3-5 digit number exact | direct |")
    click.echo("| --- | ---: | ---: | ---: | ---: |")
    for k, (name, options) in enumerate(scenarios):
        s, sd, n, nd = run_scenario(mnist, classifier, options, singles, numbers, seed=100 + k)
        click.echo(f"| {name} | {s:.1%} | {sd:.1%} | {n:.1%} | {nd:.1%} |")
    t = timings(mnist, classifier, 20 if quick else 40)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    click.echo(
        f"\n640x480 frame with 3-5 digits, preprocessing + one batched inference: "
        f"{t['frame_ms']:.2f} ms median (preprocessing alone {t['preprocess_ms']:.2f} ms); "
        f"one digit at batch 1: {t['batch1_us']:.0f} us median. "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} during the run."
    )


if __name__ == "__main__":
    main()
