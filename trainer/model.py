"""The seed tutorial's network, exactly: 28x28 -> Flatten -> Dense 128 ReLU -> Dense 10 softmax."""

from __future__ import annotations

import keras

INPUT_SHAPE = (28, 28)
HIDDEN_UNITS = 128
NUM_CLASSES = 10
PEAK_LEARNING_RATE = 3e-3
STEPS_PER_CALL = 100  # optimizer steps per compiled call (trainer/chunked_fit.py)


def build_model() -> keras.Model:
    """The 784-128-10 network. Inputs are float pixels in [0, 1] (see `mnist_edge.trainer.data`)."""
    pixels = keras.Input(shape=INPUT_SHAPE, name="pixels")
    x = keras.layers.Flatten(name="flatten")(pixels)
    x = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden")(x)
    probabilities = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(pixels, probabilities, name="mnist_dense")


def make_optimizer(total_steps: int, peak_learning_rate: float = PEAK_LEARNING_RATE):
    """Adam, as the seed, with cosine decay from 3e-3 to 0 instead of a constant 1e-3.

    Chosen on a validation split of the training set (README, "How the recipe was chosen").
    """
    schedule = keras.optimizers.schedules.CosineDecay(peak_learning_rate, total_steps)
    return keras.optimizers.Adam(learning_rate=schedule)
