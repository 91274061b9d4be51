"""Fit the 784-128-10 model on MNIST and write the model, its metrics and figures."""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mnist_edge.trainer.atomic import output_set
from mnist_edge.trainer.augment import DEFAULT_DISTORTION, Distortion
from mnist_edge.trainer.data import Mnist, scale_pixels
from mnist_edge.trainer.digit_folders import DigitSet

MODEL_FILENAME = "mnist_dense.keras"
METRICS_FILENAME = "mnist_dense.train.json"
VALIDATION_SIZE = 5000  # held out of the training set for curves and recipe choices
DEFAULT_EXTRA_WEIGHT = 4  # each extra image drawn this many times an epoch (docs/recipe.md)
DEFAULT_EXTRA_HOLDOUT = 0.2  # of each digit's extra images, held out and reported


def split_validation(
    n: int, seed: int, validation_size: int = VALIDATION_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of a seeded random split of the training set."""
    order = np.random.default_rng(seed).permutation(n)
    validation_size = min(validation_size, n // 10)
    return order[validation_size:], order[:validation_size]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow.

    TensorFlow's `enable_op_determinism` is deliberately not called: Keras turns XLA off
    under it, which costs ~1.8x in fit time, and the XLA CPU build of this model is already
    reproducible bit for bit (the determinism test checks the weights of two runs).
    """
    import keras

    keras.utils.set_random_seed(seed)


def keras_verbosity(quiet: bool) -> int:
    """Keras's progress bar on a terminal, one line per epoch in logs and CI."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def tool_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def evaluate(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of the seed's loss and metric, without compiling the saved model."""
    import keras

    probabilities = model.predict(x, batch_size=1024, verbose=0)
    loss = keras.losses.sparse_categorical_crossentropy(y.astype(np.int32), probabilities)
    return float(np.mean(loss)), float(np.mean(probabilities.argmax(axis=1) == y))


def without_absolute_paths(text: str) -> str:
    """`text` with every absolute path, or relative one from ./ or ../, cut to its last part
    ("IDX files in ../shared/data/mnist" -> "IDX files in mnist"): committed reports name no
    folder of the machine that built them."""
    return re.sub(r"(?<![\w.:/])(?:\.{1,2})?/(?:[^\s/]+/)*([^\s/]+)/?", r"\1", text)


@dataclass
class FitResult:
    model: object  # the trained keras.Model
    history: list[dict[str, float]]  # per epoch: loss, accuracy, val_loss, val_accuracy
    seconds: float
    optimizer_steps: int


def fit_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    distortion: Distortion | None = DEFAULT_DISTORTION,
    quiet: bool = False,
    pool: np.ndarray | None = None,
) -> FitResult:
    """Fit a fresh 784-128-10 model on uint8 `x_train`, validating on scaled `x_val` each epoch.

    `distortion` None trains on the images as they are (the plain recipe). `pool` lists the
    image indices of an epoch when some are drawn more than once (extra data).
    """
    import cv2
    import tensorflow as tf

    from mnist_edge.trainer.chunked_fit import (
        ChunkedTrainer,
        OptimizerStepProgbar,
        chunks_per_epoch,
        distorted_chunks,
        index_chunks,
    )
    from mnist_edge.trainer.model import STEPS_PER_CALL, build_model, make_optimizer

    seed_everything(seed)
    model = build_model()
    drawn = len(x_train) if pool is None else len(pool)  # images an epoch
    steps_per_epoch = -(-drawn // batch_size)
    trainer = ChunkedTrainer(model, x_train, y_train, augmented=distortion is not None)
    trainer.compile(optimizer=make_optimizer(epochs * steps_per_epoch), jit_compile=True)
    chunks = index_chunks(len(x_train), batch_size, STEPS_PER_CALL, seed, pool)
    if distortion is not None:
        chunks = distorted_chunks(chunks, x_train, seed, distortion)

    started = time.perf_counter()
    # OpenCV's pool threads spin-wait after each call: beside XLA's threads, that only
    # takes their cores (the distortions use threads of their own, `augment.distort`).
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        history = trainer.fit(
            chunks,
            epochs=epochs,
            steps_per_epoch=chunks_per_epoch(drawn, batch_size, STEPS_PER_CALL),  # one stream
            # A dataset made once: numpy arrays would be wrapped anew at every epoch's validation.
            validation_data=tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(1000).cache(),
            shuffle=False,  # index_chunks already reshuffles every epoch
            verbose=keras_verbosity(quiet),
            callbacks=[OptimizerStepProgbar(steps_per_epoch)],
        )
    finally:
        cv2.setNumThreads(opencv_threads)
    seconds = time.perf_counter() - started
    per_epoch = [
        {key: float(values[i]) for key, values in history.history.items()}
        for i in range(len(history.history["loss"]))
    ]
    return FitResult(model, per_epoch, seconds, int(trainer.optimizer.iterations.numpy()))


def split_extra(extra: DigitSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out) of `extra`: per digit, a seeded `fraction` held out (rounded
    down, so a digit with few images is kept for training whole)."""
    rng = np.random.default_rng(seed % 2**32)
    train, held_out = [], []
    for digit in range(10):
        mine = rng.permutation(np.flatnonzero(extra.labels == digit))
        cut = int(fraction * len(mine))
        held_out.append(mine[:cut])
        train.append(mine[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held_out))


def mix_in(
    x_train: np.ndarray, y_train: np.ndarray, x_extra: np.ndarray, y_extra: np.ndarray, weight: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, pool): the extra images appended; the pool lists every training
    image once and every extra one `weight` times (fit_model draws an epoch from it)."""
    n = len(x_train)
    x = np.concatenate([x_train, x_extra])
    y = np.concatenate([y_train, y_extra.astype(np.int32)])
    pool = np.concatenate([np.arange(n), np.tile(np.arange(n, len(x)), weight)])
    return x, y, pool


def train_and_save(
    data: Mnist,
    out_dir: Path,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    quiet: bool = False,
    limit: int | None = None,
    distortion: Distortion | None = DEFAULT_DISTORTION,
    extra: DigitSet | None = None,
    extra_weight: int = DEFAULT_EXTRA_WEIGHT,
    extra_holdout: float = DEFAULT_EXTRA_HOLDOUT,
) -> dict:
    """Train on the training set (less a validation split), test once, write the artifacts.

    `limit` trains on the first `limit` training images only (tests use it). `extra` digits
    (less a held-out part) join the training set, each drawn `extra_weight` times an epoch.
    Returns the metrics that are also written to `mnist_dense.train.json`.
    """
    from mnist_edge.trainer.figures import save_sample_grid, save_training_curves
    from mnist_edge.trainer.model import PEAK_LEARNING_RATE, STEPS_PER_CALL

    x_all, y_all = data.x_train[:limit], data.y_train[:limit]
    train_idx, val_idx = split_validation(len(x_all), seed)
    x_train, y_train = x_all[train_idx], y_all[train_idx].astype(np.int32)  # scaled in the step
    x_val, y_val = scale_pixels(x_all[val_idx]), y_all[val_idx].astype(np.int32)
    pool, extra_report = None, None
    if extra is not None:
        extra_train, extra_held_out = split_extra(extra, extra_holdout, seed)
        x_train, y_train, pool = mix_in(
            x_train, y_train, extra.images[extra_train], extra.labels[extra_train], extra_weight
        )

    fit = fit_model(
        x_train, y_train, x_val, y_val, epochs, batch_size, seed, distortion, quiet, pool
    )
    model = fit.model
    # The test set is used once, here, after every choice was made on the validation split.
    test_loss, test_accuracy = evaluate(model, scale_pixels(data.x_test), data.y_test)
    if extra is not None:
        held_out = extra.subset(extra_held_out)
        trained = extra.subset(extra_train)
        extra_report = {
            **extra.describe(),
            "weight": extra_weight,
            "holdout_fraction": extra_holdout,
            "train_counts": trained.counts,
            "holdout_counts": held_out.counts,
            "holdout_accuracy": (
                evaluate(model, scale_pixels(held_out.images), held_out.labels)[1]
                if len(held_out.labels)
                else None
            ),
        }

    metrics = {
        "model": MODEL_FILENAME,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "train_seconds": round(fit.seconds, 3),
        "train_size": len(x_train),
        "validation_size": len(x_val),
        "test_size": len(data.x_test),
        "optimizer": f"Adam, cosine decay {PEAK_LEARNING_RATE:g} -> 0",
        "optimizer_steps": fit.optimizer_steps,
        "optimizer_steps_per_call": STEPS_PER_CALL,
        "jit_compile": True,
        "augmentation": None if distortion is None else distortion.describe(),
        "extra_data": extra_report,
        "history": fit.history,
        "data": {"source": without_absolute_paths(data.source), "md5": data.checksums},
        "versions": tool_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with output_set(out_dir, "train") as stage:  # the four files appear together or not at all
        model.save(stage / MODEL_FILENAME)
        (stage / METRICS_FILENAME).write_text(json.dumps(metrics, indent=2) + "\n")
        save_sample_grid(data.x_train[:limit], data.y_train[:limit], stage / "samples.png")
        save_training_curves(fit.history, stage / "training_curves.png")
    return metrics
