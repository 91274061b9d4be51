"""The model wrapper: one `.tflite` digit classifier behind a numpy-in, probabilities-out call.

It knows tensors and quantization, nothing about frames or windows (that is `runtime/cli_*.py`
and `runtime/camera.py`). Inputs follow the MNIST convention of the training pipeline:
28x28 float pixels in [0, 1], white digit on black. Quantized files (int8 or uint8 tensors)
get their inputs quantized with the file's own scale and zero point and their outputs
dequantized back to probabilities, so callers never see the difference.

Interpreters, in order of preference: LiteRT (`ai_edge_litert`), the older `tflite_runtime`,
then full TensorFlow's `tf.lite` (imported only then: the runtime must not need TensorFlow).

A model is checked as a digit classifier when it is loaded, from its flatbuffer, before an
interpreter allocates anything (`mnist_edge.runtime.model_file`). Every invoke() runs under a
watchdog (`mnist_edge.runtime.watchdog`) and every output is checked to be probabilities, so a
bad model is a one-line ModelError, never a hang, a crash or a NaN in the results.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mnist_edge.runtime.model_file import (  # noqa: F401 (sha256_of, TFLITE_IDENTIFIER: API)
    IMAGE_SIZE,
    MAX_TENSOR_BYTES,
    NUM_CLASSES,
    TFLITE_IDENTIFIER,
    ModelError,
    ModelOutputError,
    check_classifier,
    read_model_bytes,
    read_model_card,
    sha256_of,
)
from mnist_edge.runtime.tflite_file import FlatbufferError, read_model_facts
from mnist_edge.runtime.watchdog import CallTimeout, Watchdog

DEFAULT_LABELS = [str(d) for d in range(NUM_CLASSES)]

LARGEST_BATCH = 1024  # one invoke per 1,000-image chunk; bigger gains nothing here
CACHED_BATCH_SIZES = 8  # allocated interpreters kept, one per batch size recently used
DEFAULT_MODEL = Path("models/mnist_int8.tflite")
# The released model ships inside the package: in a checkout runtime/ lies beside models/, in
# an installed wheel mnist_edge/ holds both, so the same relative path finds it.
PACKAGED_MODEL = Path(__file__).resolve().parent.parent / DEFAULT_MODEL
INVOKE_TIMEOUT_S = 10.0  # one invoke (up to LARGEST_BATCH digits) takes milliseconds
PROBABILITY_SLACK = 1e-3  # float rounding of a softmax; int8 outputs lie in [0, 255/256]


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


class DigitClassifier:
    """A `.tflite` MNIST classifier: `predict(images [N, 28, 28]) -> probabilities [N, 10]`.

    `ignore_card` skips the model card beside the file (whose sha256 must otherwise match).
    """

    def __init__(
        self, model_path: str | Path, threads: int | None = None, ignore_card: bool = False
    ):
        self.path = Path(model_path)
        self.name = self.path.stem
        self.threads = threads
        # The file and its card are read from where the path leads now, once: a model set
        # switched in meanwhile cannot give this file with another file's card.
        real_path = self.path.resolve()
        self._content = read_model_bytes(self.path, real_path)
        try:
            facts = read_model_facts(self._content)
        except FlatbufferError as error:
            raise ModelError(
                f"{self.path}: cannot load model (damaged flatbuffer: {error})"
            ) from None
        check_classifier(facts, self.path)
        inp = facts.inputs[0]
        # A fixed batch (a model exported for batch 1) is run in chunks of that size.
        self.fixed_batch = inp.signature[0] if inp.signature[0] > 0 else None
        per_image = sum(t.nbytes for t in facts.tensors if -1 in t.signature)
        spare = MAX_TENSOR_BYTES - facts.tensor_bytes
        self._batch_cap = self.fixed_batch or max(1, 1 + spare // max(per_image, 1))
        self.interpreter_class, self.backend = load_interpreter_class()
        self.card, self.card_warning = (None, None)
        if not ignore_card:
            self.card, self.card_warning = read_model_card(self.path, self._content, real_path)
        self.labels = list((self.card or {}).get("labels") or DEFAULT_LABELS)
        self._interpreters: OrderedDict[int, object] = OrderedDict()
        self._watchdog = Watchdog(INVOKE_TIMEOUT_S)

        interpreter = self._interpreter_for(self.fixed_batch or 1)[0]
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in inp["shape_signature"][1:])
        self.input_dtype, self.output_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
        self.input_quantization = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output_quantization = (float(out["quantization"][0]), int(out["quantization"][1]))
        for side, dtype, (scale, _) in (
            ("input", self.input_dtype, self.input_quantization),
            ("output", self.output_dtype, self.output_quantization),
        ):
            if dtype != np.float32 and not (np.isfinite(scale) and scale > 0):
                raise ModelError(
                    f"{self.path}: its {dtype.name} {side} has no quantization scale "
                    f"({scale:g}), so its values mean nothing"
                )
        if self.input_dtype != np.float32:
            grey_levels = np.arange(256, dtype=np.float32) / np.float32(255)
            scale, zero_point = self.input_quantization
            table = quantize_input(grey_levels, scale, zero_point, self.input_dtype)
            self._grey_level_table = table

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
                if batch != (self.fixed_batch or 1):
                    shape = [batch, *inp["shape"][1:]]
                    interpreter.resize_tensor_input(inp["index"], shape, strict=True)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError, MemoryError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
            raise ModelError(f"{self.path}: cannot load model ({reason})") from None
        if batch > 1 and not self.fixed_batch:
            self._check_allocated_bytes(interpreter, batch)
        cached = (interpreter, inp["index"], interpreter.get_output_details()[0]["index"])
        self._interpreters[batch] = cached
        if len(self._interpreters) > CACHED_BATCH_SIZES:
            self._interpreters.popitem(last=False)
        return cached

    def _check_allocated_bytes(self, interpreter, batch: int) -> None:
        """The tensors at this batch size, as allocated (nothing has touched the memory yet):
        a graph whose tensors grow faster than the batch is caught here."""
        total = sum(
            int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
            for t in interpreter.get_tensor_details()
        )
        if total > MAX_TENSOR_BYTES:
            raise ModelError(
                f"{self.path}: its tensors need {total / 2**20:,.0f} MB at batch {batch}, more "
                f"than the {MAX_TENSOR_BYTES // 2**20} MB a digit classifier may use"
            )

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
        try:
            self._watchdog.run(interpreter.invoke)
        except CallTimeout as error:
            raise ModelError(f"{self.path}: stopped, one invoke {error}") from None
        except (ValueError, RuntimeError) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ModelError(f"{self.path}: invoke failed ({reason})") from None
        return interpreter.get_tensor(output_index)

    def _invoke_padded(self, x: np.ndarray) -> np.ndarray:
        """A fixed-batch model gets exactly its batch: the last chunk is padded with blanks."""
        if self.fixed_batch is None or len(x) == self.fixed_batch:
            return self._invoke(x)
        padded = np.zeros((self.fixed_batch, *x.shape[1:]), dtype=x.dtype)
        padded[: len(x)] = x
        return self._invoke(padded)[: len(x)]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities [N, 10] for images [N, 28, 28] (or one [28, 28]), white digit on black.

        Float images are pixels in [0, 1]; uint8 images are grey levels 0..255 (the pixel is
        value / 255), the cheaper form for MNIST files and camera crops. An output that is not
        probabilities (NaN, 75.2) raises ModelOutputError.
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
        step = min(LARGEST_BATCH, self._batch_cap)
        outputs = [self._invoke_padded(x[start : start + step]) for start in range(0, len(x), step)]
        y = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        if self.output_dtype != np.float32:
            scale, zero_point = self.output_quantization
            y = dequantize_output(y, scale, zero_point)
        self._check_probabilities(y)
        return y

    def _check_probabilities(self, y: np.ndarray) -> None:
        bad = ~np.isfinite(y) | (y < -PROBABILITY_SLACK) | (y > 1 + PROBABILITY_SLACK)
        if bad.any():
            raise ModelOutputError(
                f"{self.path}: the model's output is not a probability ({y[bad].flat[0]:g}; "
                "expected 10 values in [0, 1])"
            )

    def describe(self) -> str:
        """One line for `--verbose`: the file by its full path, dtypes, interpreter."""
        return (
            f"{self.path.resolve()} ({self.input_dtype.name} in, {self.output_dtype.name} out, "
            f"{self.backend}{f', {self.threads} threads' if self.threads else ''})"
        )
