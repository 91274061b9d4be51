"""Evaluate the Keras model and each TFLite file on the whole test set, the same way.

TFLite files run through the runtime's own wrapper
(`mnist_edge.runtime.classifier.DigitClassifier`), batched, so the report measures exactly what
a device runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import numpy as np

from mnist_edge.export.variants import NUM_CLASSES

EVAL_CHUNK = 1000  # images per predict call: one progress step, and a batched evaluation
LATENCY_RUNS = 200  # batch-1 calls timed for the median latency
LATENCY_WARMUP = 20
THROUGHPUT_PASSES = 5  # timed passes over the test set; a 10 ms pass alone is too noisy


@dataclass
class Evaluation:
    name: str
    probabilities: np.ndarray  # float32 [N, 10]
    seconds: float  # median of THROUGHPUT_PASSES batched passes over the whole test set
    latency_us: float  # median of LATENCY_RUNS batch-1 calls

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def keras_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    """Keras's own batched call, without the `predict` loop's per-call overhead; images are
    reshaped to the model's input ([N, 28, 28] or [N, 784])."""
    shape = tuple(model.inputs[0].shape[1:])
    return lambda x: np.asarray(model.predict_on_batch(x.reshape(len(x), *shape)), dtype=np.float32)


def evaluate(
    name: str, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, show_progress: bool
) -> Evaluation:
    """Run `predict` over `x` in chunks (with a progress bar), then time whole passes and
    batch-1 calls."""
    predict(x[:EVAL_CHUNK])  # warm-up: first calls allocate interpreters / trace functions
    starts = range(0, len(x), EVAL_CHUNK)
    with click.progressbar(
        starts, label=f"evaluating {name:<8}", file=None if show_progress else _null()
    ) as bar:
        probabilities = np.concatenate([predict(x[start : start + EVAL_CHUNK]) for start in bar])
    passes = []
    for _ in range(THROUGHPUT_PASSES):
        started = time.perf_counter()
        for start in starts:
            predict(x[start : start + EVAL_CHUNK])
        passes.append(time.perf_counter() - started)
    seconds = statistics.median(passes)
    return Evaluation(name, probabilities, seconds, batch1_latency_us(predict, x))


def batch1_latency_us(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> float:
    """Median wall time of one single-image call, in microseconds, over different images."""
    for i in range(LATENCY_WARMUP):
        predict(x[i : i + 1])
    times = []
    for i in range(LATENCY_RUNS):
        image = x[i : i + 1]
        started = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def _null():
    import io

    return io.StringIO()  # click.progressbar needs a file; this one is thrown away


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Rows: true digit, columns: predicted digit."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return matrix


def metrics(result: Evaluation, labels: np.ndarray, reference: Evaluation) -> dict:
    """The report's numbers for one model, compared with `reference` (the Keras model)."""
    matrix = confusion_matrix(labels, result.predictions)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    difference = np.abs(result.probabilities - reference.probabilities)
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "per_class_accuracy": [round(float(a), 6) for a in per_class],
        "confusion_matrix": matrix.tolist(),
        "agreement_with_keras": float(np.mean(result.predictions == reference.predictions)),
        "mean_abs_probability_difference": float(difference.mean()),
        "max_abs_probability_difference": float(difference.max()),
        "latency_us": round(result.latency_us, 2),
        "throughput_images_per_s": round(len(labels) / result.seconds, 1),
        "eval_seconds": round(result.seconds, 4),
    }
