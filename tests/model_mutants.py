"""Bad TFLite models, made by converting small `tf.function`s (TensorFlow is a test dependency).

Each is a valid flatbuffer that LiteRT loads, but not a digit classifier the runtime may run:
`build_mutants(folder)` writes them all once and returns {name: path}. Nothing is committed:
the generator is the corpus.
"""

from __future__ import annotations

import os
from pathlib import Path


def _convert(function, path: Path) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    path.write_bytes(converter.convert())
    return path


def build_mutants(folder: Path) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    digits = tf.TensorSpec([None, 28, 28], tf.float32)

    def first_ten(x):
        return tf.reshape(x, [-1, 784])[:, :10]

    @tf.function(input_signature=[])
    def no_inputs():
        return tf.nn.softmax(tf.ones([1, 10]))

    @tf.function(input_signature=[digits, digits])
    def two_inputs(x, y):
        return tf.nn.softmax(first_ten(x) + first_ten(y))

    @tf.function(input_signature=[digits])
    def nan_output(x):
        return first_ten(x) * float("nan")

    @tf.function(input_signature=[digits])
    def not_probabilities(x):
        return first_ten(x) * 100.0 + 75.2

    @tf.function(input_signature=[digits])
    def int32_output(x):
        return tf.cast(first_ten(x) * 10, tf.int32)

    @tf.function(input_signature=[digits])
    def while_forever(x):
        i = tf.while_loop(lambda i: i >= 0.0, lambda i: i + 1.0, [tf.constant(0.0)])[0]
        return tf.nn.softmax(first_ten(x) + i)

    @tf.function(input_signature=[digits])
    def huge_tensors(x):
        # 28,000 x 28,000 floats per image: 2.9 GB declared by a file of about 2 KB.
        return tf.nn.softmax(first_ten(tf.tile(x, [1, 1000, 1000])[:, :28, :28]))

    @tf.function(input_signature=[digits])
    def slow(x):
        # No control flow and 48 MB of tensors, within every static bound, but two products
        # of 2,000 x 2,000 matrices made from the input: 16 GFLOP, about a second per invoke.
        a = tf.tile(x[:, :1, :1] * 1e-3, [1, 2000, 2000])
        b = tf.matmul(tf.matmul(a, a), a)
        return tf.nn.softmax(first_ten(x) + tf.reduce_mean(b))

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32], tf.float32)])
    def wrong_input(x):
        return tf.nn.softmax(tf.reshape(x, [-1, 1024])[:, :10])

    functions = {
        "no_inputs": no_inputs,
        "two_inputs": two_inputs,
        "nan_output": nan_output,
        "not_probabilities": not_probabilities,
        "int32_output": int32_output,
        "while_forever": while_forever,
        "huge_tensors": huge_tensors,
        "slow": slow,
        "wrong_input": wrong_input,
    }
    return {name: _convert(f, folder / f"{name}.tflite") for name, f in functions.items()}


def fixed_batch_classifier(keras_path: Path, path: Path, batch: int) -> Path:
    """A real classifier (the trained Keras model) converted for a fixed batch size."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(keras_path)

    @tf.function(input_signature=[tf.TensorSpec([batch, 28, 28], tf.float32)])
    def fixed(x):
        return model(x)

    return _convert(fixed, path)
