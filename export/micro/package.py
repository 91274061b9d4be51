"""`mnist-edge bundle --target micro`: the model as C++ for TensorFlow Lite Micro, with its
settings, its measured arena and how it fits three boards; a folder and a .zip of it.

Only integer-only int8 models with int8 or uint8 I/O are accepted: TFLM runs float models
slowly or not at all on boards without an FPU, and has no hybrid (dynamic-range) kernels.
Needs TFLM's interpreter (the `micro` extra) to measure the arena; no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import click

from mnist_edge.export.bundle_common import Built, next_step_lines
from mnist_edge.export.micro.arena import (
    ARENA_MARGIN,
    ArenaError,
    ArenaMeasurement,
    invoke_once,
    measure_arena,
    tflm_runtime,
)
from mnist_edge.export.micro.boards import FRAMEWORK_NOTE, fit_table
from mnist_edge.export.micro.c_source import (
    DATA_HEADER,
    DATA_SOURCE,
    model_data_header,
    model_data_source,
)
from mnist_edge.export.micro.firmware import ToolchainError, measured_flash
from mnist_edge.export.micro.settings import (
    RESOLVER_METHODS,
    SETTINGS_HEADER,
    TensorInfo,
    resolver_ops,
    settings_header,
    tensor_info,
)
from mnist_edge.export.tflite_graph import Graph, read_graph
from mnist_edge.runtime.classifier import DEFAULT_LABELS, sha256_of
from mnist_edge.trainer.atomic import atomic_path

BUNDLE_DIR = "mnist-edge-micro"
ZIP_NAME = f"{BUNDLE_DIR}.zip"
README = "README-micro.md"
TEMPLATE = Path(__file__).resolve().parent / README
FLOAT_TYPES = {"FLOAT32", "FLOAT16"}
WEIGHT_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"}
MICRO_IO = {"INT8", "UINT8"}
NEXT_STEPS = [
    "Arduino:  copy the 3 sources from {folder} into your sketch folder, beside the .ino; "
    "library: Arduino_TensorFlowLite",
    "ESP-IDF:  copy them into main/ and add mnist_model_data.cc to SRCS; idf.py add-dependency "
    '"espressif/esp-tflite-micro"',
    "Pico SDK: copy them beside main.cpp, add mnist_model_data.cc to add_executable, "
    "link pico-tflmicro",
    "then:     SetupDigitModel() once, ClassifyDigit() per image ({folder}/README-micro.md)",
]


def refusal(graph: Graph) -> str | None:
    """Why TFLM cannot run this file as an integer-only model (None: it can)."""
    for op in graph.ops:
        if op.name in WEIGHT_OPS and op.input_types[0] in FLOAT_TYPES and "INT8" in op.input_types:
            return (
                "a dynamic-range model (int8 weights, float activations); TFLM has no hybrid "
                "kernels: bundle the integer-only int8 model (mnist_int8.tflite)"
            )
    if any(set(op.input_types) & FLOAT_TYPES for op in graph.ops if op.name in WEIGHT_OPS):
        return "a float model; bundle the integer-only int8 model (mnist_int8.tflite) for micro"
    io_types = graph.input_types + graph.output_types
    if not set(io_types) <= MICRO_IO:
        return (
            f"{'/'.join(dict.fromkeys(io_types)).lower()} input/output; micro needs int8 or uint8 "
            "I/O (mnist-edge export --int8-io int8)"
        )
    unknown = [name for name in resolver_ops(graph.op_names) if name not in RESOLVER_METHODS]
    if unknown:
        return f"op {', '.join(unknown)} has no MicroMutableOpResolver call known to mnist-edge"
    return None


def read_labels(card: Path | None, count: int) -> list[str]:
    labels = DEFAULT_LABELS
    if card is not None:
        info = json.loads(card.read_text(encoding="utf-8"))  # check_model read it already
        labels = (info.get("labels") if isinstance(info, dict) else None) or DEFAULT_LABELS
    if len(labels) != count:
        raise click.ClickException(f"{card}: {len(labels)} labels for {count} model outputs")
    return [str(label) for label in labels]


def io_note(inp: TensorInfo) -> str:
    """How the quantization formula works out for this model's input."""
    if inp.dtype == "int8" and inp.zero_point == -128 and abs(inp.scale * 255 - 1) < 1e-6:
        return (
            "With this model's scale (1/255) and zero point (-128) the quantized pixel is "
            "exactly `grey - 128`, so the loop can skip the float arithmetic."
        )
    if inp.dtype == "uint8" and inp.zero_point == 0 and abs(inp.scale * 255 - 1) < 1e-6:
        return (
            "With this model's scale (1/255) and zero point (0) the quantized pixel is exactly "
            "`grey`, so the loop can copy the image as it is."
        )
    return f"This model's input: scale {inp.scale!r}, zero point {inp.zero_point}."


def readme_text(
    model: Path,
    card: Path | None,
    ops: list[str],
    arena: ArenaMeasurement,
    flash: int,
    flash_how: str,
    inp: TensorInfo,
) -> str:
    record = ", ".join(f"{kind} {arena.record[kind]}" for kind in ("total", "head", "tail"))
    values = {
        "@MODEL@": model.name,
        "@SHA256@": sha256_of(model),
        "@CARD@": card.name if card is not None else "(no model card)",
        "@OP_COUNT@": str(len(ops)),
        "@OPS@": ", ".join(ops),
        "@FLASH@": f"{flash:,}",
        "@FLASH_HOW@": flash_how,
        "@ARENA_SIZE@": f"{arena.stated:,}",
        "@ARENA_MEASURED@": f"{arena.smallest:,}",
        "@ARENA_RECORD@": f"{record} bytes",
        "@ARENA_MARGIN@": f"{ARENA_MARGIN:,}",
        "@BOARDS@": fit_table(flash, arena.stated),
        "@FRAMEWORK_NOTE@": FRAMEWORK_NOTE,
        "@INPUT_NOTE@": io_note(inp),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def model_flash(folder: Path, model_bytes: int) -> tuple[int, str]:
    """The model's flash in bytes, and how it was obtained."""
    try:
        sizes = measured_flash(folder, DATA_SOURCE)
    except ToolchainError as error:
        raise click.ClickException(f"cannot compile the model array: {error}") from None
    if sizes is None:  # the array and its length constant
        return model_bytes + 4, "the array and its length; arm-none-eabi-g++ was not found"
    return (
        sizes["text"] + sizes["data"],
        "`arm-none-eabi-size` of mnist_model_data.cc compiled for a Cortex-M4",
    )


def write_zip(archive: Path, folder: Path) -> None:
    """folder's files under one top folder, written beside `archive` and renamed over it."""
    stamp = time.localtime()[:6]
    with atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{BUNDLE_DIR}/{path.name}", date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def replace_folder(final: Path, staged: Path) -> None:
    """Put the complete `staged` folder at `final`; an older `final` is removed only after."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old)


def build_micro_bundle(model: Path, card: Path | None, out: Path, source: Path | None) -> Built:
    """Write out/mnist-edge-micro/ and out/mnist-edge-micro.zip; `source` is not used."""
    try:
        tflm_runtime()
    except ArenaError as error:  # not installed: the model is not the problem
        raise click.ClickException(str(error)) from None
    try:
        graph = read_graph(model)
    except Exception as error:  # a damaged flatbuffer raises whatever its parser hits
        raise click.ClickException(f"{model}: cannot read the TFLite graph ({error})") from None
    reason = refusal(graph)
    if reason:
        raise click.ClickException(f"{model}: {reason}")
    try:
        arena = measure_arena(model)
        interpreter = invoke_once(model.read_bytes(), arena.stated)
    except ArenaError as error:
        raise click.ClickException(f"{model}: {error}") from None
    inp, outp = (
        tensor_info(interpreter.get_input_details(0)),
        tensor_info(interpreter.get_output_details(0)),
    )
    labels = read_labels(card, outp.size)
    ops = resolver_ops(graph.op_names)
    data = model.read_bytes()

    staged = Path(tempfile.mkdtemp(prefix=f".{BUNDLE_DIR}.", dir=out))
    try:
        (staged / DATA_HEADER).write_text(model_data_header(model.name), encoding="utf-8")
        source_text = model_data_source(data, model.name, sha256_of(model))
        (staged / DATA_SOURCE).write_text(source_text, encoding="utf-8")
        header = settings_header(model.name, graph.op_names, inp, outp, labels, arena)
        (staged / SETTINGS_HEADER).write_text(header, encoding="utf-8")
        flash, flash_how = model_flash(staged, len(data))
        readme = readme_text(model, card, ops, arena, flash, flash_how, inp)
        (staged / README).write_text(readme, encoding="utf-8")
        if card is not None:
            shutil.copyfile(card, staged / card.name)
        os.chmod(staged, 0o755)
        for path in staged.iterdir():
            os.chmod(path, 0o644)
        files = {p.name: p.stat().st_size for p in sorted(staged.iterdir())}
        write_zip(out / ZIP_NAME, staged)
        replace_folder(out / BUNDLE_DIR, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)

    folder = out / BUNDLE_DIR
    notes = [
        f"ops: {', '.join(ops)} (MicroMutableOpResolver<{len(ops)}>)",
        f"tensor arena: {arena.stated:,} bytes = smallest that runs in TFLM, "
        f"{arena.smallest:,} (TFLM's record: total {arena.record['total']:,}), "
        f"+ {ARENA_MARGIN:,} margin",
        f"model in flash: {flash:,} bytes ({flash_how.replace('`', '')})",
        "",
        *fit_table(flash, arena.stated).splitlines(),
        "",
        *textwrap.wrap(FRAMEWORK_NOTE, 100),
    ]
    steps = next_step_lines(NEXT_STEPS, folder=folder)
    return Built([out / ZIP_NAME, folder], BUNDLE_DIR, files, notes, steps)
