"""Benchmark the export stage: batched int8 evaluation vs the tutorial loop, and whole exports.

    python -m mnist_edge.export.benchmark [--model models/mnist_int8.tflite] [--repeats 5]
                               [--export-repeats 3] [--data-dir DIR] [--json FILE]

1. The 10,000 test images through the int8 file, two ways, alternating, `--repeats` rounds:
   - batched: `DigitClassifier.predict`, 1,000 images per call, as `mnist-edge export` does,
     on the uint8 test images as they are stored (the wrapper quantizes them with a table);
   - per image: the loop of TensorFlow's post-training integer quantization tutorial, one
     `set_tensor` / `invoke` / `get_tensor` per image on an interpreter allocated for batch 1,
     on the images already scaled to [0, 1] as in the tutorial (scaling not timed).
   Both must give the same predictions; medians and their ratio are printed.
2. The whole `mnist-edge export` (four variants and the report) as a fresh process,
   `--export-repeats` times, into a temporary folder; median wall time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from mnist_edge.export.evaluate import EVAL_CHUNK
from mnist_edge.trainer.cli import data_dir_option, load_data_or_exit
from mnist_edge.trainer.data import scale_pixels


def tutorial_loop(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Top-1 per image, the way the TF quantization tutorial evaluates a TFLite model."""
    from mnist_edge.runtime.classifier import load_interpreter_class

    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(model_path))
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]
    predictions = np.zeros(len(images), dtype=int)
    for i, image in enumerate(images):
        if input_details["dtype"] != np.float32:  # quantize the float pixels, as the tutorial
            scale, zero_point = input_details["quantization"]
            image = np.rint(image / scale) + zero_point  # rounded: the tutorial truncates
        image = np.expand_dims(image, axis=0).astype(input_details["dtype"])
        interpreter.set_tensor(input_details["index"], image)
        interpreter.invoke()
        predictions[i] = interpreter.get_tensor(output_details["index"])[0].argmax()
    return predictions


def batched(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Top-1 per image the way `mnist-edge export` evaluates: the runtime's wrapper, fed
    EVAL_CHUNK images per call (chunks keep the quantized copies in cache)."""
    from mnist_edge.runtime.classifier import DigitClassifier

    classifier = DigitClassifier(model_path)
    chunks = [
        classifier.predict(images[start : start + EVAL_CHUNK])
        for start in range(0, len(images), EVAL_CHUNK)
    ]
    return np.concatenate(chunks).argmax(axis=1)


def timed(function, *args) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def whole_export(keras_model: Path, data_dir: Path | None) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-m", "mnist_edge", "export", "--model", str(keras_model)]
        args += ["--out", out, "--quiet"] + (["--data-dir", str(data_dir)] if data_dir else [])
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise click.ClickException(f"mnist-edge export failed: {done.stderr.strip()[-500:]}")
    return seconds


@click.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=Path("models/mnist_int8.tflite"),
    show_default=True,
)
@click.option(
    "--keras-model",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=Path("models/mnist_dense.keras"),
    show_default=True,
    help="The model the timed `mnist-edge export` runs convert.",
)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--export-repeats", type=click.IntRange(min=0), default=3, show_default=True)
@data_dir_option
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(
    model_path: Path,
    keras_model: Path,
    repeats: int,
    export_repeats: int,
    data_dir: Path | None,
    json_path: Path | None,
) -> None:
    """Time batched vs per-image evaluation of the int8 file, and the whole export."""
    data = load_data_or_exit(data_dir, False)
    images = scale_pixels(data.x_test)
    batched(model_path, data.x_test[:256])  # warm-up: imports, first allocation
    times = {"batched": [], "per_image_loop": []}
    for _ in range(repeats):
        seconds, fast = timed(batched, model_path, data.x_test)
        times["batched"].append(seconds)
        seconds, slow = timed(tutorial_loop, model_path, images)
        times["per_image_loop"].append(seconds)
        if not np.array_equal(fast, slow):
            raise click.ClickException("batched and per-image predictions differ")
    accuracy = float(np.mean(fast == data.y_test))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["per_image_loop"] / medians["batched"]
    click.echo(f"{model_path}: {len(images):,} test images, accuracy {accuracy:.2%} both ways")
    for name, seconds in medians.items():
        click.echo(
            f"  {name:<15} median {seconds * 1000:8.1f} ms  "
            f"({len(images) / seconds:,.0f} images/s, {repeats} runs)"
        )
    click.echo(f"  batched is {ratio:.1f}x faster than the per-image loop")

    export_times = [whole_export(keras_model, data_dir) for _ in range(export_repeats)]
    if export_times:
        click.echo(
            f"whole `mnist-edge export` (4 variants + report, fresh process): median "
            f"{statistics.median(export_times):.1f} s over {export_repeats} runs"
        )
    if json_path:
        result = {
            "model": str(model_path),
            "images": len(images),
            "accuracy": accuracy,
            "seconds": times,
            "median_seconds": medians,
            "batched_speedup": ratio,
            "export_seconds": export_times,
            "export_median_seconds": statistics.median(export_times) if export_times else None,
        }
        json_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
