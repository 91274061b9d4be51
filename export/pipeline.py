"""The export stage from a .keras file to checked TFLite files, model cards and the report.

Nothing appears in the output folder until every file is converted, checked, loaded back and
evaluated: the files are built in a staging folder and switched in as one set
(`mnist_edge.trainer.atomic.output_set`), so a failed or interrupted export leaves the previous
files untouched, a second export into the same folder is refused, and no set is ever mixed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np

from mnist_edge.export import report as report_files
from mnist_edge.export.evaluate import (
    EVAL_CHUNK,
    LATENCY_RUNS,
    THROUGHPUT_PASSES,
    evaluate,
    keras_predict_fn,
    metrics,
)
from mnist_edge.export.tflite_graph import integer_only_problems, minimal_graph_problems, read_graph
from mnist_edge.export.variants import (
    VARIANTS,
    ExportError,
    ExportSettings,
    load_keras_model,
    stratified_calibration_set,
)
from mnist_edge.runtime.classifier import sha256_of
from mnist_edge.trainer.atomic import output_set
from mnist_edge.trainer.data import Mnist, scale_pixels
from mnist_edge.trainer.digit_folders import DigitSet
from mnist_edge.trainer.train import without_absolute_paths

CARD_VERSION = 1
CALIBRATION_SEED = 0
SMOKE_BATCH = 7  # test images run at batch 1 and as one odd-sized batch after conversion
PREPROCESSING = {
    "size": [28, 28],
    "polarity": "white digit on black",
    "value_range": [0.0, 1.0],
    "layout": "digit fitted in a 20x20 box, centre of mass at the centre of 28x28",
}
LABELS = [str(d) for d in range(10)]


@dataclass
class ExportOptions:
    model_path: Path
    out: Path
    variants: list[str]
    calibration_samples: int = 500
    int8_io: str = "int8"
    max_drop: float | None = None
    quiet: bool = False
    eval_sets: list[DigitSet] = field(default_factory=list)  # --eval-dir, in MNIST layout


def shown_path(path: Path, out: Path) -> str:
    """A path as reports show it: relative to `out` when inside it, else its file name."""
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return path.name


def tflite_filename(variant: str) -> str:
    return f"mnist_{variant}.tflite"


@contextlib.contextmanager
def converter_output_held_back() -> Iterator[None]:
    """Hold back what the TFLite converter writes to file descriptor 2, shown only on failure.

    Its C++ parts print lines like "fully_quantize: 0, inference_type: 6" straight to the
    descriptor, past `sys.stderr`, on every successful int8 conversion.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the converter's deprecation chatter
                yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def convert_and_check(
    model, variant: str, settings: ExportSettings, path: Path, probe: np.ndarray
) -> None:
    """Convert one variant into `path`, check its graph from the file, and run it on the
    `probe` test images at batch 1 and at a larger batch: both must give the same answers."""
    from mnist_edge.runtime.classifier import DigitClassifier, ModelError

    try:
        with converter_output_held_back():
            content = VARIANTS[variant].convert(model, settings)
    except ExportError:
        raise
    except Exception as error:  # the converter raises many types; say which variant failed
        first = (str(error).strip().splitlines() or [""])[0][:160]
        reason = f"{type(error).__name__}: {first}"
        raise ExportError(f"{variant}: conversion failed ({reason})") from None
    path.write_bytes(content)

    graph = read_graph(path)
    problems = minimal_graph_problems(graph)
    if variant == "int8":
        problems += integer_only_problems(graph, settings.int8_io)
    if problems:
        raise ExportError(f"{variant}: the converted file {'; '.join(problems)}")
    try:
        classifier = DigitClassifier(path)
        one_by_one = np.concatenate([classifier.predict(image[None]) for image in probe])
        batched = classifier.predict(probe)
    except ModelError as error:
        raise ExportError(f"{variant}: the converted file does not load ({error})") from None
    if batched.shape != (len(probe), 10) or not np.isfinite(batched).all():
        raise ExportError(f"{variant}: a batch of {len(probe)} gave output {batched.shape}")
    if not np.array_equal(one_by_one.argmax(axis=1), batched.argmax(axis=1)):
        raise ExportError(f"{variant}: batch 1 and batch {len(probe)} give different digits")


def model_card(variant: str, path: Path, classifier, accuracy: float, source: str) -> dict:
    """What the runtime needs to know about a file, beside the file."""
    in_scale, in_zero = classifier.input_quantization
    out_scale, out_zero = classifier.output_quantization
    return {
        "card_version": CARD_VERSION,
        "variant": variant,
        "file": path.name,
        "sha256": sha256_of(path),
        "size_bytes": path.stat().st_size,
        "input": {
            "name": "pixels",
            "shape": [-1, *classifier.input_shape],
            "dtype": classifier.input_dtype.name,
            "scale": in_scale,
            "zero_point": in_zero,
        },
        "output": {
            "shape": [-1, 10],
            "dtype": classifier.output_dtype.name,
            "scale": out_scale,
            "zero_point": out_zero,
        },
        "preprocessing": PREPROCESSING,
        "labels": LABELS,
        "test_accuracy": accuracy,
        "source_model": source,
    }


def tool_versions(backend: str) -> dict[str, str]:
    import keras
    import matplotlib
    import tensorflow as tf

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "ai_edge_litert": version("ai-edge-litert"),
        "interpreter": backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


def run_export(options: ExportOptions, data: Mnist) -> dict:
    """Convert, check, evaluate and report; returns the report (also written to `out`)."""
    started = time.perf_counter()
    model = load_keras_model(options.model_path)
    settings = ExportSettings(int8_io=options.int8_io, show_progress=not options.quiet)
    if any(VARIANTS[v].needs_calibration for v in options.variants):
        settings.calibration_images = stratified_calibration_set(
            data.x_train, data.y_train, options.calibration_samples, CALIBRATION_SEED
        )
    x_test = scale_pixels(data.x_test)

    with output_set(options.out, "export") as staging:
        for variant in options.variants:
            path = staging / tflite_filename(variant)
            convert_and_check(model, variant, settings, path, x_test[:SMOKE_BATCH])
            if not options.quiet:
                click.echo(f"{variant}: converted and checked ({VARIANTS[variant].description})")
        rows, results = evaluate_all(model, options, staging, data.x_test, data.y_test)
        report = build_report(options, data, rows, results)
        report["eval_sets"] = [
            evaluate_set(model, options.variants, staging, digits) for digits in options.eval_sets
        ]
        figures = report_files.figures(
            report, data.x_test, data.y_test, {n: r.probabilities for n, r in results.items()}
        )
        report["export_seconds"] = round(time.perf_counter() - started, 2)
        report_files.write_json(report, staging / "report.json")
        report_files.write_markdown(report, staging / "report.md")
        report_files.write_html(report, figures, staging / "report.html")
    return report


def evaluate_all(
    model, options: ExportOptions, staging: Path, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[list[dict], dict]:
    """Evaluate Keras and every staged file on the uint8 test images; write each file's card.
    Returns the report's rows and the raw results by name.

    Keras gets the images scaled to [0, 1]; the TFLite files get the uint8 grey levels, which
    the runtime's wrapper scales (float files) or quantizes through a lookup table (int8)
    to exactly the same inputs, the way it feeds camera crops on a device.
    """
    from mnist_edge.runtime.classifier import DigitClassifier

    show = not options.quiet
    keras_result = evaluate("keras", keras_predict_fn(model), scale_pixels(x_test), show)
    results = {"keras": keras_result}
    rows = [
        {
            "name": "keras",
            "path": shown_path(options.model_path, options.out),
            "size_bytes": options.model_path.stat().st_size,
            "sha256": sha256_of(options.model_path),
            **metrics(keras_result, y_test, keras_result),
        }
    ]
    for variant in options.variants:
        staged = staging / tflite_filename(variant)
        classifier = DigitClassifier(staged)
        results[variant] = evaluate(variant, classifier.predict, x_test, show)
        row = metrics(results[variant], y_test, keras_result)
        card = model_card(variant, staged, classifier, row["accuracy"], options.model_path.name)
        staged.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        rows.append(
            {
                "name": variant,
                "path": staged.name,
                "size_bytes": card["size_bytes"],
                "sha256": card["sha256"],
                "input_dtype": card["input"]["dtype"],
                "output_dtype": card["output"]["dtype"],
                "ops": read_graph(staged).op_names,
                "interpreter": classifier.backend,
                **row,
            }
        )
    compare_with_float32(rows, results)
    return rows, results


def build_report(options: ExportOptions, data: Mnist, rows: list[dict], results: dict) -> dict:
    # The page compares float32 with int8; with fewer variants, the nearest pair there is.
    a = "float32" if "float32" in results else "keras"
    b = "int8" if "int8" in results else list(results)[-1]
    disagreements = np.flatnonzero(results[a].predictions != results[b].predictions)
    both = "float32" in results and "int8" in results
    backend = rows[-1].get("interpreter", "-")
    return {
        "report_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_model": shown_path(options.model_path, options.out),
        "models": rows,
        "int8_drop_pp": report_files.int8_drop_pp(rows),
        "int8_disagreements_with_float32": len(disagreements) if both else None,
        "compared": [a, b],
        "disagreements": [int(i) for i in disagreements],  # test indices where a and b differ
        "settings": {
            "variants": options.variants,
            "calibration_samples": options.calibration_samples,
            "calibration_seed": CALIBRATION_SEED,
            "calibration_source": "training set, stratified over the ten digits",
            "int8_io": options.int8_io,
            "max_drop_pp": options.max_drop,
            "eval_chunk": EVAL_CHUNK,
            "latency_runs": LATENCY_RUNS,
            "throughput_passes": THROUGHPUT_PASSES,
        },
        "data": {
            "source": without_absolute_paths(data.source),
            "md5": data.checksums,
            "test_size": len(data.y_test),
            "train_size": len(data.y_train),
        },
        "versions": tool_versions(backend),
    }


def evaluate_set(model, variants: list[str], staging: Path, digits: DigitSet) -> dict:
    """Accuracy of Keras and every staged file on one --eval-dir set, and each one's top-1
    agreement with float32 (and int8's drop from it)."""
    from mnist_edge.runtime.classifier import DigitClassifier

    predictions = {"keras": keras_predict_fn(model)(scale_pixels(digits.images)).argmax(axis=1)}
    for variant in variants:
        classifier = DigitClassifier(staging / tflite_filename(variant))
        predictions[variant] = np.concatenate(
            [
                classifier.predict(digits.images[i : i + EVAL_CHUNK]).argmax(axis=1)
                for i in range(0, len(digits.images), EVAL_CHUNK)
            ]
        )
    rows = []
    for name, predicted in predictions.items():
        hits = predicted == digits.labels
        per_class = [
            float(hits[digits.labels == d].mean()) if c else None
            for d, c in enumerate(digits.counts)
        ]
        row = {"name": name, "accuracy": float(hits.mean()), "per_class_accuracy": per_class}
        if "float32" in predictions:
            row["agreement_with_float32"] = float(np.mean(predicted == predictions["float32"]))
        rows.append(row)
    return {**digits.describe(), "models": rows, "int8_drop_pp": report_files.int8_drop_pp(rows)}


def compare_with_float32(rows: list[dict], results: dict) -> None:
    """Add size, accuracy drop and agreement relative to the float32 file to every row."""
    base = next((r for r in rows if r["name"] == "float32"), None)
    if base is None:
        return
    base_predictions = results["float32"].predictions
    for row in rows:
        row["size_vs_float32"] = round(row["size_bytes"] / base["size_bytes"], 4)
        row["drop_vs_float32_pp"] = round((base["accuracy"] - row["accuracy"]) * 100, 4)
        row["agreement_with_float32"] = float(
            np.mean(results[row["name"]].predictions == base_predictions)
        )
