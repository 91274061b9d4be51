"""Many batch-32 optimizer steps per compiled call, so `fit` is not bound by per-step overhead.

A 784-128-10 step at batch 32 is ~90 µs of arithmetic on this CPU, but Keras's own loop
spends ~250 µs more per step fetching the batch from tf.data, wrapping it in an Optional and
launching the compiled step; `steps_per_execution` does not remove that, as each step still
goes through the iterator. Here `fit` is fed only shuffled *indices*, `chunk` batches at a
time; one XLA call then runs those optimizer steps one after another, each on its own 32
images gathered inside the call. The maths is the plain recipe's: the same batch size, the
same number of Adam updates, every training image once per epoch in a fresh order.

With augmentation on, each index chunk also carries its images, distorted afresh
(`trainer/augment.py`) on all cores just before the compiled call that trains on them; the
training step then reads them from the chunk instead of gathering them. Without it, the
graph is exactly the plain one.

The standard Keras "custom train_step" pattern: progress bar, callbacks and validation work
as usual. Only the wrapped model (`.model`) is saved.
"""

from __future__ import annotations

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

from mnist_edge.trainer.augment import Distortion, distort
from mnist_edge.trainer.data import scale_pixels


def chunks_per_epoch(n: int, batch_size: int, chunk: int) -> int:
    """Compiled calls per epoch: ceil(n / batch_size) batches, `chunk` per call."""
    return -(-n // (batch_size * chunk))


def index_chunks(
    n: int, batch_size: int, chunk: int, seed: int, pool: np.ndarray | None = None
) -> tf.data.Dataset:
    """Epoch after epoch, without end: a fresh permutation of range(n) as [chunk, batch_size]
    index chunks, `chunks_per_epoch` of them per epoch (`fit` is told that number).

    With `pool` (an int array of image indices, some repeated), a fresh permutation of
    `pool` instead: how extra data drawn several times an epoch is mixed in.

    Every chunk has the same shape, padded with -1 (a last batch of 24 images becomes 24
    indices and 8 x -1; a last chunk of 18 batches gets 82 rows of -1), because XLA compiles
    one program per input shape: odd-shaped tail chunks cost a recompilation every epoch.

    One stream for the whole run, so that `fit` keeps one iterator: the next epoch's first
    chunks (and their distortions) are made while this epoch ends and is validated, instead
    of `fit` waiting for a new pipeline at every epoch start. Each permutation is made whole
    by tf.data's shuffle, then cut into chunks by one reshape (not batched element by
    element: 110 -> 50 ms of CPU an epoch). The orders are the ones a dataset of one epoch
    gave, bit for bit: every iteration of a reshuffling dataset draws the next order from
    its seed, and Keras (3.x, TensorFlow backend) made two iterators of such a dataset per
    epoch, using the first (the second, made as an epoch ends, was dropped unused). So
    epoch e took the (2e)-th order, and here every other one is kept.
    """
    if pool is not None:
        n = len(pool)
    n_chunks = chunks_per_epoch(n, batch_size, chunk)
    if pool is None:
        dataset = tf.data.Dataset.range(n)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(pool.astype(np.int64))
    orders = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(n)
    orders = orders.repeat().shard(2, 0)

    def to_chunks(order):
        padding = n_chunks * chunk * batch_size - n
        padded = tf.pad(tf.cast(order, tf.int32), [[0, padding]], constant_values=-1)
        return tf.reshape(padded, [n_chunks, chunk, batch_size])

    return orders.map(to_chunks).unbatch().prefetch(2)


def chunk_seed(seed: int, indices: np.ndarray) -> list[int]:
    """The distortions' seed for one chunk: the run's seed and a digest of the chunk's indices.

    A chunk's indices differ from every other chunk's, in every epoch (a fresh permutation
    each time), so each image gets a new draw every epoch; and the draw depends on nothing
    but the seed and the data, never on timing or threads.
    """
    digest = hashlib.blake2b(np.ascontiguousarray(indices).tobytes(), digest_size=16).digest()
    return [seed % 2**32, *np.frombuffer(digest, np.uint32).tolist()]


def distorted_chunks(
    chunks: tf.data.Dataset, images: np.ndarray, seed: int, distortion: Distortion
) -> tf.data.Dataset:
    """(indices, their images distorted) for every index chunk; padding rows get black images.

    The distortion runs in NumPy/OpenCV when the training call asks for its chunk, on every
    core (`distort`'s bands), and not beside the call before: XLA's step keeps both cores
    busy, its threads waiting for each other at every operation, so a distortion running
    beside it (prefetched) stole its time several times over (100-step calls of ~10 ms took
    20-30 ms); between the calls, on both cores, a 3,200-image chunk takes ~5 ms.
    """
    parts = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def draw(indices: np.ndarray) -> np.ndarray:
        picked = images[np.maximum(indices, 0).ravel()]
        picked[indices.ravel() < 0] = 0
        rng = np.random.default_rng(chunk_seed(seed, indices))
        distorted = distort(picked, rng, distortion, parts=parts or 1)
        return distorted.reshape(*indices.shape, *images.shape[1:])

    def with_images(indices):
        pixels = tf.numpy_function(draw, [indices], tf.uint8, stateful=False)
        return indices, tf.ensure_shape(pixels, [*indices.shape, *images.shape[1:]])

    return chunks.map(with_images)  # no prefetch: see above


class OptimizerStepProgbar(keras.callbacks.ProgbarLogger):
    """Keras's own progress bar, counting optimizer steps (1,719 an epoch at batch 32)
    rather than the compiled calls that run them (18)."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.first_step = 0

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.target = self.steps_per_epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.first_step = int(self.model.optimizer.iterations.numpy())
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        steps_done = int(self.model.optimizer.iterations.numpy()) - self.first_step
        super().on_train_batch_end(steps_done - 1, logs)  # the bar counts batch + 1


def count_hits(probabilities, labels):
    """1.0 where the top-1 class is the label, else 0.0."""
    predicted = keras.ops.cast(keras.ops.argmax(probabilities, axis=-1), labels.dtype)
    return keras.ops.cast(predicted == labels, "float32")


class ChunkedTrainer(keras.Model):
    """Trains `model` on (x, y) held in memory; `fit` takes `index_chunks(...)` as input,
    or with `augmented`, `distorted_chunks(...)` (the chunks carry their images).

    `x` are the raw uint8 images: each gathered batch is scaled to [0, 1] inside the call
    by looking its grey levels up in `scale_pixels(0..255)`, so the values are the data
    pipeline's bit for bit (a division inside XLA may be rewritten as a multiplication, which
    differs in the last bit), while the 55,000 images stay 43 MB instead of 172 MB.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray, augmented: bool = False):
        super().__init__()
        if x.dtype != np.uint8:
            raise TypeError(f"ChunkedTrainer takes uint8 images, got {x.dtype}")
        self.model = model
        self.augmented = augmented
        # Non-trainable tf.Variables: read inside the XLA call without being copied into the
        # graph as constants.
        if not augmented:
            self.images = tf.Variable(x, trainable=False, name="train_images")
        self.labels = tf.Variable(y.astype(np.int32), trainable=False, name="train_labels")
        self.grey_levels = tf.constant(scale_pixels(np.arange(256, dtype=np.uint8)))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    @property
    def metrics(self) -> list:
        return [self.loss_tracker, self.accuracy_tracker]  # reset by fit at each epoch

    def call(self, x, training=False):
        return self.model(x, training=training)

    def _record(self, loss_sum, correct, count) -> dict:
        count = tf.cast(count, tf.float32)
        self.loss_tracker.update_state(loss_sum / count, sample_weight=count)
        self.accuracy_tracker.update_state(correct / count, sample_weight=count)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        chunk_indices, chunk_images = data if self.augmented else (data, None)
        # Rows that hold at least one real index are real batches; -1 marks padding.
        steps = keras.ops.sum(keras.ops.cast(chunk_indices[:, 0] >= 0, "int32"))

        def one_step(i, loss_sum, correct, count):
            indices = chunk_indices[i]
            real = keras.ops.cast(indices >= 0, "float32")
            if chunk_images is None:
                pixels = tf.gather(self.images, keras.ops.maximum(indices, 0))
            else:
                pixels = chunk_images[i]
            x = tf.gather(self.grey_levels, keras.ops.cast(pixels, "int32"))
            y = tf.gather(self.labels, keras.ops.maximum(indices, 0))
            with tf.GradientTape() as tape:
                probabilities = self.model(x, training=True)
                losses = keras.losses.sparse_categorical_crossentropy(y, probabilities)
                loss = keras.ops.sum(losses * real) / keras.ops.sum(real)  # mean over real
            weights = self.model.trainable_variables
            self.optimizer.apply(tape.gradient(loss, weights), weights)
            hits = keras.ops.sum(count_hits(probabilities, y) * real)
            return (
                i + 1,
                loss_sum + keras.ops.sum(losses * real),
                correct + hits,
                count + (keras.ops.sum(real)),
            )

        _, loss_sum, correct, count = tf.while_loop(
            lambda i, *_: i < steps, one_step, (tf.constant(0), 0.0, 0.0, 0.0)
        )
        return self._record(loss_sum, correct, count)

    def test_step(self, data):
        x, y = data
        probabilities = self.model(x, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        return self._record(
            keras.ops.sum(losses), keras.ops.sum(count_hits(probabilities, y)), tf.shape(y)[0]
        )
