"""How int8 accuracy depends on the calibration set: size, stratified or random, seed.

    python -m mnist_edge.export.calibration_study [--model models/mnist_dense.keras]
        [--data-dir DIR] [--sizes 100,500,2000] [--seeds 0,1,2]

Converts the int8 variant once per (size, sampling, seed) and evaluates it on the 10,000 test
images against the float32 file. This is a study, not a selection: `mnist-edge export` keeps
its default (500 stratified images, seed 0), chosen before looking at the test set, whatever
this prints.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import warnings
from pathlib import Path

import click
import numpy as np

from mnist_edge.trainer.cli import data_dir_option, load_data_or_exit
from mnist_edge.trainer.data import scale_pixels


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


@click.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=Path("models/mnist_dense.keras"),
    show_default=True,
)
@data_dir_option
@click.option("--sizes", default="100,200,500,1000,2000,5000", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
def main(model_path: Path, data_dir: Path | None, sizes: str, seeds: str) -> None:
    """Print int8 accuracy, drop and agreement with float32 for each calibration choice."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    from mnist_edge.export.variants import (
        ExportSettings,
        convert_float32,
        convert_int8,
        load_keras_model,
        stratified_calibration_set,
    )
    from mnist_edge.runtime.classifier import DigitClassifier

    data = load_data_or_exit(data_dir, False)
    x_test, y_test = scale_pixels(data.x_test), data.y_test
    model = load_keras_model(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(convert_float32(model, ExportSettings()))
        float_top1 = DigitClassifier(path).predict(x_test).argmax(axis=1)
        float_accuracy = float(np.mean(float_top1 == y_test))
        click.echo(f"float32 accuracy {float_accuracy:.2%}")
        click.echo("size  sampling    seed  int8 accuracy  drop (pp)  agreement with float32")
        drops: dict[str, list[float]] = {"stratified": [], "random": []}
        for n in int_list(sizes):
            for sampling in drops:
                for seed in int_list(seeds):
                    if sampling == "stratified":
                        images = stratified_calibration_set(data.x_train, data.y_train, n, seed)
                    else:
                        chosen = np.random.default_rng(seed).choice(len(data.x_train), n, False)
                        images = scale_pixels(data.x_train[chosen])
                    path.write_bytes(convert_int8(model, ExportSettings(images, "int8", False)))
                    top1 = DigitClassifier(path).predict(x_test).argmax(axis=1)
                    accuracy = float(np.mean(top1 == y_test))
                    drop = (float_accuracy - accuracy) * 100
                    drops[sampling].append(drop)
                    click.echo(
                        f"{n:>5} {sampling:<11} {seed:>4}  {accuracy:>12.2%}  {drop:>+9.2f}  "
                        f"{np.mean(top1 == float_top1):>10.2%}"
                    )
    for sampling, values in drops.items():
        click.echo(
            f"{sampling}: drop mean {statistics.mean(values):+.3f} pp, "
            f"range {min(values):+.2f} to {max(values):+.2f} pp over {len(values)} runs"
        )


if __name__ == "__main__":
    main()
