"""The TFLite variants: one converter function each, gathered in one table.

Adding a variant is adding a function and a row to `VARIANTS`. Every converter starts from the
same frozen TensorFlow function (`inference_function`), so every file gets the same minimal
graph: RESHAPE to [-1, 784], FULLY_CONNECTED per Dense layer, SOFTMAX. A plain Keras Flatten
over a dynamic batch would add SHAPE / STRIDED_SLICE / PACK ops; a constant reshape does not,
and still accepts any batch size.

TensorFlow is imported inside the functions: `mnist-edge --help` must not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge.trainer.data import scale_pixels

PIXELS = 28 * 28
NUM_CLASSES = 10
INT8_IO_CHOICES = ("int8", "uint8", "float32")
MIN_CALIBRATION_SAMPLES = 100  # 10 per digit; fewer gives noisy activation ranges


class ExportError(Exception):
    """A problem with the export's inputs; the message is one line meant for the user."""


@dataclass
class ExportSettings:
    """What a converter may need besides the model: the int8 calibration set and I/O type."""

    calibration_images: np.ndarray | None = None  # float32 [N, 28, 28] in [0, 1]
    int8_io: str = "int8"
    show_progress: bool = True


def load_keras_model(path: Path):
    """Load a `.keras` file safely and check that it is a 28x28 (or 784) -> 10 Dense stack."""
    import zipfile

    if not zipfile.is_zipfile(path):  # a .keras file is a zip archive; fail before TensorFlow
        raise ExportError(f"{path}: not a Keras model file (.keras zip archive expected)")
    import keras

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(
            f"{path}: cannot load as a Keras model ({type(error).__name__}: {first_line[:120]})"
        ) from None
    dense_layers(model, path)  # raises on anything we cannot convert minimally
    return model


def model_input_shape(model) -> tuple[int, ...]:
    """(28, 28) or (784,): the per-image input shape, batch dimension left out."""
    return tuple(model.inputs[0].shape[1:])


def dense_layers(model, path: Path | str = "model") -> list:
    """The model's Dense layers in order, after checking its input, layers and output."""
    import keras

    shape = model_input_shape(model)
    if shape not in ((28, 28), (PIXELS,)):
        shown = "x".join(str(d) for d in shape)
        raise ExportError(f"{path}: model input is {shown}, expected 28x28 or 784 pixels")
    dense, flat = [], shape == (PIXELS,)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            flat = True
        elif isinstance(layer, keras.layers.Dense):
            if not flat:  # a Dense on [28, 28] works per row: not what a reshape computes
                raise ExportError(f"{path}: Dense layer {layer.name!r} comes before a Flatten")
            dense.append(layer)
        elif not isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout)):
            raise ExportError(  # Dropout is a no-op at inference
                f"{path}: layer {layer.name!r} ({type(layer).__name__}) is not supported; "
                "export handles Flatten + Dense models"
            )
    if not dense or dense[-1].units != NUM_CLASSES:
        raise ExportError(f"{path}: the last Dense layer must have {NUM_CLASSES} units")
    return dense


def inference_function(model):
    """A concrete TF function [N, 28, 28] (or [N, 784]) -> [N, 10] with the weights as constants.

    The weights are captured as `tf.constant`: Keras variables would stay variables in the
    converted graph (READ_VARIABLE), which breaks int8 calibration. The Flatten becomes a
    reshape to the constant shape [-1, 784].
    """
    import tensorflow as tf

    layers = [
        (
            tf.constant(layer.kernel.numpy()),
            tf.constant(layer.bias.numpy() if layer.use_bias else np.zeros(layer.units, "f4")),
            layer.activation,
        )
        for layer in dense_layers(model)
    ]
    spec = tf.TensorSpec([None, *model_input_shape(model)], tf.float32, name="pixels")

    @tf.function(input_signature=[spec])
    def classify(pixels):
        x = tf.reshape(pixels, [-1, PIXELS])
        for kernel, bias, activation in layers:
            x = activation(tf.matmul(x, kernel) + bias)
        return x

    return classify.get_concrete_function(), classify


def _converter(model):
    import tensorflow as tf

    concrete, function = inference_function(model)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)


def convert_float32(model, settings: ExportSettings) -> bytes:
    """Plain conversion: float32 weights and activations."""
    return _converter(model).convert()


def convert_float16(model, settings: ExportSettings) -> bytes:
    """float16 weights (half the size), dequantized to float32 when the model loads."""
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def convert_dynamic(model, settings: ExportSettings) -> bytes:
    """Dynamic-range quantization: int8 weights, float activations, no calibration."""
    import tensorflow as tf

    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def convert_int8(model, settings: ExportSettings) -> bytes:
    """Full-integer quantization calibrated on `settings.calibration_images`.

    Only int8 builtin kernels are allowed, so the converter fails rather than silently keep a
    float op. The I/O type follows `settings.int8_io`.
    """
    import tensorflow as tf

    images = settings.calibration_images
    if images is None or len(images) < MIN_CALIBRATION_SAMPLES:
        raise ExportError(f"int8 needs at least {MIN_CALIBRATION_SAMPLES} calibration images")
    io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[settings.int8_io]
    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: calibration_batches(images, settings.show_progress)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    return converter.convert()


@dataclass(frozen=True)
class Variant:
    name: str
    convert: Callable[[object, ExportSettings], bytes]
    description: str
    needs_calibration: bool = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("float32", convert_float32, "float32 weights and activations"),
        Variant("float16", convert_float16, "float16 weights, float32 activations"),
        Variant("dynamic", convert_dynamic, "int8 weights, float activations (dynamic range)"),
        Variant("int8", convert_int8, "int8 weights and activations (full integer)", True),
    )
}


def calibration_batches(images: np.ndarray, show_progress: bool) -> Iterator[list[np.ndarray]]:
    """The representative dataset: one image per step, as the TFLite calibrator expects."""
    import click

    batches = ([image[np.newaxis]] for image in images)
    if not show_progress:
        yield from batches
        return
    with click.progressbar(
        batches, length=len(images), label="int8 calibration", show_pos=True
    ) as bar:
        yield from bar


def stratified_calibration_set(
    x_train: np.ndarray, y_train: np.ndarray, n: int, seed: int = 0
) -> np.ndarray:
    """`n` training images, as even over the ten digits as `n` allows, seeded, as floats.

    Calibration sets the int8 activation ranges; a set skewed towards some digits would
    fit the ranges to those digits.
    """
    if n < MIN_CALIBRATION_SAMPLES:
        raise ExportError(
            f"--calibration-samples {n}: too few, int8 calibration needs at least "
            f"{MIN_CALIBRATION_SAMPLES} (10 per digit)"
        )
    if n > len(x_train):
        raise ExportError(
            f"--calibration-samples {n}: more than the {len(x_train)} training images"
        )
    rng = np.random.default_rng(seed)
    per_class = np.full(NUM_CLASSES, n // NUM_CLASSES)
    per_class[rng.permutation(NUM_CLASSES)[: n % NUM_CLASSES]] += 1
    chosen = []
    for digit, count in enumerate(per_class):
        of_digit = np.flatnonzero(y_train == digit)
        chosen.append(rng.choice(of_digit, size=min(count, len(of_digit)), replace=False))
    order = rng.permutation(np.concatenate(chosen))
    return scale_pixels(x_train[order])
