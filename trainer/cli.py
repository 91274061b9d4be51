"""`mnist-edge train`: TensorFlow is imported inside the command, never at start-up."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import click

from mnist_edge.trainer.atomic import OutputError, output_lock
from mnist_edge.trainer.data import DataError, check_enough_data, load_mnist
from mnist_edge.trainer.tensorflow_setup import (
    TensorFlowMissing,
    check_training_extra,
    import_tensorflow,
)
from mnist_edge.trainer.train import DEFAULT_EXTRA_HOLDOUT, DEFAULT_EXTRA_WEIGHT


def tensorflow_or_exit(job: str, check_only: bool = False) -> None:
    """The `train` extra for `job`, or a one-line error saying how to install it."""
    try:
        check_training_extra(job) if check_only else import_tensorflow(job)
    except TensorFlowMissing as error:
        raise click.ClickException(str(error)) from None


def writable_folder(path: Path) -> Path:
    """Create `path` if needed and make sure files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.ClickException(
            f"{path}: cannot create output folder ({error.strerror})"
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise click.ClickException(f"{path}: output folder is not writable")
    return path


@contextlib.contextmanager
def locked_output(path: Path, command: str) -> Iterator[Path]:
    """Hold `path`'s lock for the whole command (a second train or export into it stops at
    once, naming this one); create it if needed, and remove it again if the command fails
    before writing anything."""
    try:
        with output_lock(path, command):
            if not os.access(path, os.W_OK | os.X_OK):
                raise OutputError(f"{path}: output folder is not writable")
            yield path
    except OutputError as error:
        raise click.ClickException(str(error)) from None


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the MNIST IDX files or mnist.npz [default: $MNIST_DATA_DIR, then "
    "Keras's cache, then download].",
)
allow_custom_option = click.option(
    "--allow-custom-data",
    is_flag=True,
    help="Accept files whose MD5 differs from canonical MNIST (your own dataset).",
)


def load_data_or_exit(data_dir: Path | None, allow_custom: bool):
    """The dataset, checked to be enough to train and evaluate on, or a one-line error."""
    try:
        data = load_mnist(data_dir, allow_custom=allow_custom)
        for warning in check_enough_data(data):
            click.echo(f"warning: {warning}", err=True)
    except DataError as error:
        raise click.ClickException(str(error)) from None
    return data


@click.command()
@data_dir_option
@allow_custom_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Folder for the model, its metrics and figures.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(min=100),
    default=None,
    help="Train on the first N training images only (quick runs).",
)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Distort every training image afresh each epoch (rotation, slant, size, position, "
    "a slight elastic bend); --no-augment trains on the images as they are.",
)
@click.option(
    "--extra-data",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Your own labelled digits, DIR/0 ... DIR/9 (PNG/JPEG, any size), mixed into training.",
)
@click.option(
    "--extra-weight",
    type=click.IntRange(min=1),
    default=DEFAULT_EXTRA_WEIGHT,
    show_default=True,
    help="Times each --extra-data image is drawn per epoch (MNIST images: once).",
)
@click.option(
    "--extra-holdout",
    type=click.FloatRange(min=0, max=0.9),
    default=DEFAULT_EXTRA_HOLDOUT,
    show_default=True,
    help="Fraction of each digit's --extra-data images held out of training and reported.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def train(
    data_dir: Path | None,
    allow_custom_data: bool,
    out: Path,
    epochs: int,
    batch_size: int,
    seed: int,
    limit: int | None,
    augment: bool,
    extra_data: Path | None,
    extra_weight: int,
    extra_holdout: float,
    quiet: bool,
) -> None:
    """Train the 784-128-10 dense network and write models/mnist_dense.keras."""
    run_train(
        data_dir,
        allow_custom_data,
        out,
        epochs,
        batch_size,
        seed,
        limit,
        quiet,
        augment=augment,
        extra_data=extra_data,
        extra_weight=extra_weight,
        extra_holdout=extra_holdout,
    )


def load_digit_folders_or_exit(folder: Path):
    from mnist_edge.trainer.digit_folders import DigitFolderError, load_digit_folders

    try:
        return load_digit_folders(folder)
    except DigitFolderError as error:
        raise click.ClickException(str(error)) from None


def run_train(
    data_dir: Path | None,
    allow_custom_data: bool,
    out: Path,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    limit: int | None = None,
    quiet: bool = False,
    augment: bool = True,
    extra_data: Path | None = None,
    extra_weight: int = DEFAULT_EXTRA_WEIGHT,
    extra_holdout: float = DEFAULT_EXTRA_HOLDOUT,
) -> dict:
    """The `train` command's body; `mnist-edge all` calls it too."""
    started = time.perf_counter()
    tensorflow_or_exit("training", check_only=True)  # before anything else can fail
    extra = load_digit_folders_or_exit(extra_data) if extra_data is not None else None
    with locked_output(out, "train"):
        data = load_data_or_exit(data_dir, allow_custom_data)
        if not quiet:
            click.echo(f"MNIST: {data.source} ({len(data.x_train)} train, {len(data.x_test)} test)")
            if extra is not None:
                counts = " ".join(str(c) for c in extra.counts)
                click.echo(
                    f"extra data: {extra_data} ({len(extra.labels)} images; digits 0-9: {counts})"
                )
        tensorflow_or_exit("training")

        from mnist_edge.trainer.augment import DEFAULT_DISTORTION
        from mnist_edge.trainer.train import METRICS_FILENAME, MODEL_FILENAME, train_and_save

        metrics = train_and_save(
            data,
            out,
            epochs,
            batch_size,
            seed,
            quiet,
            limit,
            distortion=DEFAULT_DISTORTION if augment else None,
            extra=extra,
            extra_weight=extra_weight,
            extra_holdout=extra_holdout,
        )
    if not quiet:
        click.echo(
            f"test accuracy {metrics['test_accuracy']:.2%}, loss {metrics['test_loss']:.4f}; "
            f"fit {metrics['train_seconds']:.1f} s, whole command "
            f"{time.perf_counter() - started:.1f} s"
        )
        held_out = (metrics["extra_data"] or {}).get("holdout_accuracy")
        if held_out is not None:
            size = sum(metrics["extra_data"]["holdout_counts"])
            click.echo(f"extra data held out ({size} images): accuracy {held_out:.2%}")
        click.echo(
            f"wrote {out / MODEL_FILENAME}, {out / METRICS_FILENAME}, "
            f"{out / 'samples.png'}, {out / 'training_curves.png'}"
        )
    return metrics
