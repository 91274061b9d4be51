"""Fit the 784-128-10 model on MNIST and write the model, its metrics and figures."""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mnist_edge.trainer.atomic import output_set
from mnist_edge.trainer.data import Mnist, scale_pixels

MODEL_FILENAME = "mnist_dense.keras"
METRICS_FILENAME = "mnist_dense.train.json"
VALIDATION_SIZE = 5000  # held out of the training set for curves and recipe choices


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


def train_and_save(
    data: Mnist,
    out_dir: Path,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    quiet: bool = False,
    limit: int | None = None,
) -> dict:
    """Train on the training set (less a validation split), test once, write the artifacts.

    `limit` trains on the first `limit` training images only (tests use it). Returns the
    metrics that are also written to `mnist_dense.train.json`.
    """
    import tensorflow as tf

    from mnist_edge.trainer.chunked_fit import ChunkedTrainer, index_chunks
    from mnist_edge.trainer.figures import save_sample_grid, save_training_curves
    from mnist_edge.trainer.model import (
        PEAK_LEARNING_RATE,
        STEPS_PER_CALL,
        build_model,
        make_optimizer,
    )

    x_all, y_all = data.x_train[:limit], data.y_train[:limit]
    train_idx, val_idx = split_validation(len(x_all), seed)
    x_train, y_train = x_all[train_idx], y_all[train_idx].astype(np.int32)  # scaled in the step
    x_val, y_val = scale_pixels(x_all[val_idx]), y_all[val_idx].astype(np.int32)

    seed_everything(seed)
    model = build_model()
    steps_per_epoch = -(-len(x_train) // batch_size)
    trainer = ChunkedTrainer(model, x_train, y_train)
    trainer.compile(optimizer=make_optimizer(epochs * steps_per_epoch), jit_compile=True)

    started = time.perf_counter()
    history = trainer.fit(
        index_chunks(len(x_train), batch_size, STEPS_PER_CALL, seed),
        epochs=epochs,
        # A dataset made once: numpy arrays would be wrapped anew at every epoch's validation.
        validation_data=tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(1000).cache(),
        shuffle=False,  # index_chunks already reshuffles every epoch
        verbose=keras_verbosity(quiet),
    )
    train_seconds = time.perf_counter() - started
    optimizer_steps = int(trainer.optimizer.iterations.numpy())
    # The test set is used once, here, after every choice was made on the validation split.
    test_loss, test_accuracy = evaluate(model, scale_pixels(data.x_test), data.y_test)

    per_epoch = [
        {key: float(values[i]) for key, values in history.history.items()}
        for i in range(len(history.history["loss"]))
    ]
    metrics = {
        "model": MODEL_FILENAME,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "train_seconds": round(train_seconds, 3),
        "train_size": len(x_train),
        "validation_size": len(x_val),
        "test_size": len(data.x_test),
        "optimizer": f"Adam, cosine decay {PEAK_LEARNING_RATE:g} -> 0",
        "optimizer_steps": optimizer_steps,
        "optimizer_steps_per_call": STEPS_PER_CALL,
        "jit_compile": True,
        "history": per_epoch,
        "data": {"source": data.source, "md5": data.checksums},
        "versions": tool_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with output_set(out_dir, "train") as stage:  # the four files appear together or not at all
        model.save(stage / MODEL_FILENAME)
        (stage / METRICS_FILENAME).write_text(json.dumps(metrics, indent=2) + "\n")
        save_sample_grid(data.x_train[:limit], data.y_train[:limit], stage / "samples.png")
        save_training_curves(per_epoch, stage / "training_curves.png")
    return metrics
