"""A model file before any interpreter sees it: its bytes, whether it is a digit classifier,
and the model card beside it.

Everything here is decided from what the file declares (`mnist_edge.runtime.tflite_file`), so a
model refused here had nothing allocated for it: a 2 KB file may declare gigabytes of tensors.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from mnist_edge.runtime.tflite_file import ModelFacts

NUM_CLASSES = 10
IMAGE_SIZE = 28
INPUT_SHAPES = ((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE * IMAGE_SIZE,), (IMAGE_SIZE, IMAGE_SIZE, 1))
MODEL_DTYPES = ("float32", "int8", "uint8")
TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# Bounds for a model file: the 784-128-10 files are 103-399 KB and their tensors, weights
# included, 101-603 KB at batch 1 (0.9-3.7 MB at 1,024 images per invoke). Far above any digit
# classifier, far below what would take down a Raspberry Pi.
MAX_MODEL_FILE_BYTES = 64 * 2**20
MAX_TENSOR_BYTES = 64 * 2**20  # every tensor at the batch size of one invoke, weights too


class ModelError(Exception):
    """A model file that cannot be used; the message is one line and names the file."""


class ModelOutputError(ModelError):
    """The model gave something other than probabilities for one input (NaN, 75.2...)."""


def read_model_bytes(path: Path, real_path: Path) -> bytes:
    """The file's bytes: a regular file of at most MAX_MODEL_FILE_BYTES (a FIFO or
    /dev/zero given as --model would block or never end)."""
    try:
        info = real_path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except OSError as error:
        raise ModelError(f"{path}: cannot read model ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ModelError(f"{path}: is a folder, not a .tflite model file")
    if not stat.S_ISREG(info.st_mode):
        raise ModelError(f"{path}: is not a regular file (a device, FIFO or socket)")
    if info.st_size > MAX_MODEL_FILE_BYTES:
        raise ModelError(
            f"{path}: {info.st_size / 2**20:,.0f} MB, larger than any digit classifier "
            f"(limit {MAX_MODEL_FILE_BYTES // 2**20} MB)"
        )
    try:
        with open(real_path, "rb") as handle:
            content = handle.read(MAX_MODEL_FILE_BYTES + 1)
    except OSError as error:
        raise ModelError(f"{path}: cannot read model ({error.strerror})") from None
    if len(content) > MAX_MODEL_FILE_BYTES:
        raise ModelError(f"{path}: grew past {MAX_MODEL_FILE_BYTES // 2**20} MB while read")
    if path.suffix.lower() in KERAS_SUFFIXES or content[:4] in (b"PK\x03\x04", b"\x89HDF"):
        raise ModelError(
            f"{path}: a Keras model, not a .tflite file; convert it with "
            f"`mnist-edge export --model {path}` and use the .tflite it writes"
        )
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    return content


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file: what a model card records to name its model."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_model_card(
    model_path: Path, content: bytes, real_path: Path | None = None
) -> tuple[dict | None, str | None]:
    """The card `mnist_<variant>.json` beside the model, and a note if there is none to use.

    A card whose sha256 does not match the model's bytes is an error: it is the sign of a
    damaged model file or of a file copied over another (`--ignore-card` runs it anyway). A
    JSON file that is not a card (no sha256) is only noted, for `--verbose`. The card is read
    beside `real_path` (where a symlink leads), messages name `model_path`.
    """
    card_path = (real_path or model_path).with_suffix(".json")
    if not card_path.is_file():
        return None, None
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise ModelError(
            f"{card_path}: the model card beside {model_path.name} is not readable JSON "
            f"({reason}); fix or remove it, or pass --ignore-card"
        ) from None
    if not isinstance(card, dict) or not card.get("sha256"):
        return None, f"{card_path}: ignored, not a model card (no sha256)"
    if card["sha256"] != hashlib.sha256(content).hexdigest():
        raise ModelError(
            f"{model_path}: does not match its model card {card_path.name} (sha256 differs): "
            "a damaged or replaced model file; pass --ignore-card to run it anyway"
        )
    return card, None


def check_classifier(facts: ModelFacts, path: Path) -> None:
    """Refuse, in one line naming the file, a model that is not a digit classifier.

    Only what the file declares is used, so nothing is allocated for a model refused here.
    """
    if facts.control_flow_ops or facts.subgraphs != 1:
        ops = ", ".join(facts.control_flow_ops) or f"{facts.subgraphs} subgraphs"
        raise ModelError(
            f"{path}: has control flow ({ops}); a digit classifier needs none, and a loop "
            "could run for ever"
        )
    if len(facts.inputs) != 1 or len(facts.outputs) != 1:
        raise ModelError(
            f"{path}: has {len(facts.inputs)} inputs and {len(facts.outputs)} outputs, "
            "expected one input (the digit) and one output (10 probabilities)"
        )
    inp, out = facts.inputs[0], facts.outputs[0]
    if tuple(inp.signature[1:]) not in INPUT_SHAPES or len(inp.signature) < 2:
        raise ModelError(
            f"{path}: model input is {inp.signature}, expected [batch, 28, 28] or [batch, 784]"
        )
    if len(out.signature) != 2 or out.signature[1] != NUM_CLASSES:
        raise ModelError(f"{path}: model output is {out.signature}, expected [batch, 10] classes")
    if out.signature[0] != inp.signature[0]:
        raise ModelError(
            f"{path}: output batch {out.signature[0]} differs from input batch "
            f"{inp.signature[0]}, expected one row of 10 per digit"
        )
    for side, tensor in (("input", inp), ("output", out)):
        if tensor.dtype not in MODEL_DTYPES:
            raise ModelError(
                f"{path}: model {side} is {tensor.dtype}, expected {', '.join(MODEL_DTYPES)}"
            )
    if facts.tensor_bytes > MAX_TENSOR_BYTES:
        raise ModelError(
            f"{path}: its tensors need {facts.tensor_bytes / 2**20:,.0f} MB at batch 1, more "
            f"than the {MAX_TENSOR_BYTES // 2**20} MB a digit classifier may use"
        )
