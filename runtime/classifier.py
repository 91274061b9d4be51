"""The model wrapper: one `.tflite` digit classifier behind a numpy-in, probabilities-out call.

It knows tensors and quantization, nothing about frames or windows (that is `runtime/cli_*.py`
and `runtime/camera.py`). Inputs follow the MNIST convention of the training pipeline:
28x28 float pixels in [0, 1], white digit on black. Quantized files (int8 or uint8 tensors)
get their inputs quantized with the file's own scale and zero point and their outputs
dequantized back to probabilities, so callers never see the difference.

Interpreters, in order of preference: LiteRT (`ai_edge_litert`), the older `tflite_runtime`,
then full TensorFlow's `tf.lite` (imported only then: the runtime must not need TensorFlow).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

NUM_CLASSES = 10
IMAGE_SIZE = 28
DEFAULT_LABELS = [str(d) for d in range(NUM_CLASSES)]
LARGEST_BATCH = 1024  # one invoke per 1,000-image chunk; bigger gains nothing here
CACHED_BATCH_SIZES = 8  # allocated interpreters kept, one per batch size recently used
TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer
DEFAULT_MODEL = Path("models/mnist_int8.tflite")
# The released model ships inside the package: in a checkout runtime/ lies beside models/, in
# an installed wheel mnist_edge/ holds both, so the same relative path finds it.
PACKAGED_MODEL = Path(__file__).resolve().parent.parent / DEFAULT_MODEL
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class ModelError(Exception):
    """A model file that cannot be used; the message is one line and names the file."""


def load_interpreter_class() -> tuple[type, str]:
    """The best TFLite interpreter installed, and its name for `--verbose`."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # last resort only, e.g. on Windows where LiteRT has no wheel

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise ModelError(
            "no TFLite interpreter installed: pip install ai-edge-litert "
            "(or tflite-runtime, or tensorflow)"
        ) from None


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment.

    LiteRT's C++ prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    fd 2 when an interpreter is made, whatever the log level: that would break the promise of
    one error line on stderr. Python-level errors still arrive as exceptions.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (some service managers): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Float pixels to the integer tensor a quantized model takes: round(x / scale) + zp."""
    info = np.iinfo(dtype)
    q = np.rint(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """An integer output tensor back to float: (q - zp) * scale."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def default_model() -> Path:
    """models/mnist_int8.tflite in the current folder if there is one, else the packaged one."""
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else PACKAGED_MODEL


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file: what a model card records to name its model."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_model_card(model_path: Path) -> tuple[dict | None, str | None]:
    """The card `mnist_<variant>.json` beside the model, and why it was ignored if it was.

    A card whose sha256 does not match the file describes some other build of the model:
    using its numbers would be wrong, so it is ignored (and `--verbose` says so).
    """
    card_path = model_path.with_suffix(".json")
    if not card_path.is_file():
        return None, None
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return None, f"{card_path}: ignored, not readable JSON ({error})"
    if not isinstance(card, dict):
        return None, f"{card_path}: ignored, not a model card"
    want = card.get("sha256")
    if want and want != sha256_of(model_path):
        return None, f"{card_path}: ignored, its sha256 does not match {model_path.name}"
    return card, None


class DigitClassifier:
    """A `.tflite` MNIST classifier: `predict(images [N, 28, 28]) -> probabilities [N, 10]`."""

    def __init__(self, model_path: str | Path, threads: int | None = None):
        self.path = Path(model_path)
        self.name = self.path.stem
        self.threads = threads
        self._content = self._read_flatbuffer(self.path)
        self.interpreter_class, self.backend = load_interpreter_class()
        self.card, self.card_warning = read_model_card(self.path)
        self.labels = list((self.card or {}).get("labels") or DEFAULT_LABELS)
        self._interpreters: OrderedDict[int, object] = OrderedDict()

        interpreter = self._interpreter_for(1)[0]
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in inp["shape_signature"][1:])
        if self.input_shape not in ((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE * IMAGE_SIZE,)):
            raise ModelError(
                f"{self.path}: model input is {inp['shape_signature'].tolist()}, "
                "expected [batch, 28, 28] or [batch, 784]"
            )
        if int(out["shape_signature"][-1]) != NUM_CLASSES:
            raise ModelError(
                f"{self.path}: model output is {out['shape_signature'].tolist()}, "
                "expected 10 classes"
            )
        self.input_dtype, self.output_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
        self.input_quantization = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output_quantization = (float(out["quantization"][0]), int(out["quantization"][1]))
        if self.input_dtype != np.float32:
            grey_levels = np.arange(256, dtype=np.float32) / np.float32(255)
            scale, zero_point = self.input_quantization
            table = quantize_input(grey_levels, scale, zero_point, self.input_dtype)
            self._grey_level_table = table

    @staticmethod
    def _read_flatbuffer(path: Path) -> bytes:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{path}: model file not found") from None
        except IsADirectoryError:
            raise ModelError(f"{path}: is a folder, not a .tflite model file") from None
        except OSError as error:
            raise ModelError(f"{path}: cannot read model ({error.strerror})") from None
        if path.suffix.lower() in KERAS_SUFFIXES or content[:4] in (b"PK\x03\x04", b"\x89HDF"):
            raise ModelError(
                f"{path}: a Keras model, not a .tflite file; convert it with "
                f"`mnist-edge export --model {path}` and use the .tflite it writes"
            )
        if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
            raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
        return content

    def _interpreter_for(self, batch: int) -> tuple[object, int, int]:
        """An allocated interpreter whose input takes exactly `batch` images, with the indices
        of its input and output tensors.

        Resizing and re-allocating costs far more than a small invoke, so one interpreter per
        batch size is kept (the few most recent): frames with 3 digits, then 4, then 3 again
        never resize anything twice.
        """
        cached = self._interpreters.get(batch)
        if cached is not None:
            self._interpreters.move_to_end(batch)
            return cached
        try:
            with native_stderr_silenced():
                interpreter = self.interpreter_class(
                    model_content=self._content, num_threads=self.threads
                )
                inp = interpreter.get_input_details()[0]
                if batch != 1:
                    shape = [batch, *inp["shape"][1:]]
                    interpreter.resize_tensor_input(inp["index"], shape, strict=True)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
            raise ModelError(f"{self.path}: cannot load model ({reason})") from None
        cached = (interpreter, inp["index"], interpreter.get_output_details()[0]["index"])
        self._interpreters[batch] = cached
        if len(self._interpreters) > CACHED_BATCH_SIZES:
            self._interpreters.popitem(last=False)
        return cached

    def _input_tensor(self, images: np.ndarray) -> np.ndarray:
        if images.dtype == np.uint8:
            return self._input_tensor_from_grey_levels(images)
        x = images.reshape((len(images), *self.input_shape))
        if self.input_dtype == np.float32:
            return x.astype(np.float32, copy=False)
        scale, zero_point = self.input_quantization
        return quantize_input(x, scale, zero_point, self.input_dtype)

    def _input_tensor_from_grey_levels(self, images: np.ndarray) -> np.ndarray:
        """uint8 grey levels (value / 255 is the pixel) through a 256-entry table.

        Exactly what quantizing `images / 255` gives, several times faster: MNIST and camera
        crops are 8-bit, and an int8 input at scale 1/255 has exactly 256 levels anyway.
        """
        flat = images.reshape(len(images), -1)
        if self.input_dtype == np.float32:
            x = flat.astype(np.float32) / np.float32(255)  # as the training pipeline scales
        else:
            x = cv2.LUT(flat, self._grey_level_table)
        return x.reshape((len(images), *self.input_shape))

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        interpreter, input_index, output_index = self._interpreter_for(len(x))
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities [N, 10] for images [N, 28, 28] (or one [28, 28]), white digit on black.

        Float images are pixels in [0, 1]; uint8 images are grey levels 0..255 (the pixel is
        value / 255), the cheaper form for MNIST files and camera crops.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = images.astype(np.float32, copy=False)
        if images.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE) and images.ndim == 2:
            images = images[None]
        if images.ndim < 2 or np.prod(images.shape[1:]) != IMAGE_SIZE * IMAGE_SIZE:
            raise ValueError(f"expected images [N, 28, 28], got shape {images.shape}")
        if len(images) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        x = self._input_tensor(images)
        outputs = [
            self._invoke(x[start : start + LARGEST_BATCH])
            for start in range(0, len(x), LARGEST_BATCH)
        ]
        y = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        if self.output_dtype == np.float32:
            return y
        scale, zero_point = self.output_quantization
        return dequantize_output(y, scale, zero_point)

    def describe(self) -> str:
        """One line for `--verbose`: the file by its full path, dtypes, interpreter."""
        return (
            f"{self.path.resolve()} ({self.input_dtype.name} in, {self.output_dtype.name} out, "
            f"{self.backend}{f', {self.threads} threads' if self.threads else ''})"
        )
