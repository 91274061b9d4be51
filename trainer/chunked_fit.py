"""Many batch-32 optimizer steps per compiled call, so `fit` is not bound by per-step overhead.

A 784-128-10 step at batch 32 is ~90 µs of arithmetic on this CPU, but Keras's own loop
spends ~250 µs more per step fetching the batch from tf.data, wrapping it in an Optional and
launching the compiled step; `steps_per_execution` does not remove that, as each step still
goes through the iterator. Here `fit` is fed only shuffled *indices*, `chunk` batches at a
time; one XLA call then runs those optimizer steps one after another, each on its own 32
images gathered inside the call. The maths is the plain recipe's: the same batch size, the
same number of Adam updates, every training image once per epoch in a fresh order.

The standard Keras "custom train_step" pattern: progress bar, callbacks and validation work
as usual. Only the wrapped model (`.model`) is saved.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mnist_edge.trainer.data import scale_pixels


def index_chunks(n: int, batch_size: int, chunk: int, seed: int) -> tf.data.Dataset:
    """Each epoch: a fresh permutation of range(n), as [chunk, batch_size] index chunks.

    Every chunk has the same shape, padded with -1 (a last batch of 24 images becomes 24
    indices and 8 x -1; a last chunk of 18 batches gets 82 rows of -1), because XLA compiles
    one program per input shape: odd-shaped tail chunks cost a recompilation every epoch.
    """
    n_chunks = -(-n // (batch_size * chunk))

    def pad_to(length: int):
        def pad(indices):
            missing = length - tf.shape(indices)[0]
            pads = [[0, missing]] + [[0, 0]] * (len(indices.shape) - 1)
            return tf.pad(tf.cast(indices, tf.int32), pads, constant_values=-1)

        return pad

    dataset = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(pad_to(batch_size))
    dataset = dataset.batch(chunk).map(pad_to(chunk))
    dataset = dataset.map(lambda indices: tf.ensure_shape(indices, [chunk, batch_size]))
    return dataset.apply(tf.data.experimental.assert_cardinality(n_chunks)).prefetch(2)


def count_hits(probabilities, labels):
    """1.0 where the top-1 class is the label, else 0.0."""
    predicted = keras.ops.cast(keras.ops.argmax(probabilities, axis=-1), labels.dtype)
    return keras.ops.cast(predicted == labels, "float32")


class ChunkedTrainer(keras.Model):
    """Trains `model` on (x, y) held in memory; `fit` takes `index_chunks(...)` as input.

    `x` are the raw uint8 images: each gathered batch is scaled to [0, 1] inside the call
    by looking its grey levels up in `scale_pixels(0..255)`, so the values are the data
    pipeline's bit for bit (a division inside XLA may be rewritten as a multiplication, which
    differs in the last bit), while the 55,000 images stay 43 MB instead of 172 MB.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray):
        super().__init__()
        if x.dtype != np.uint8:
            raise TypeError(f"ChunkedTrainer takes uint8 images, got {x.dtype}")
        self.model = model
        # Non-trainable tf.Variables: read inside the XLA call without being copied into the
        # graph as constants.
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

    def train_step(self, chunk_indices):
        # Rows that hold at least one real index are real batches; -1 marks padding.
        steps = keras.ops.sum(keras.ops.cast(chunk_indices[:, 0] >= 0, "int32"))

        def one_step(i, loss_sum, correct, count):
            indices = chunk_indices[i]
            real = keras.ops.cast(indices >= 0, "float32")
            pixels = tf.gather(self.images, keras.ops.maximum(indices, 0))
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
