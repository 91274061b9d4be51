"""`mnist-edge export` on a small model really trained here: real conversions, real LiteRT.

The full export (four variants, evaluation, report) runs once per session; the tests read
its files.
"""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.export.cli import export
from mnist_edge.export.tflite_graph import (
    DYNAMIC_SHAPE_OPS,
    integer_only_problems,
    minimal_graph_problems,
    read_graph,
)
from mnist_edge.runtime.classifier import DigitClassifier

VARIANTS = ["float32", "float16", "dynamic", "int8"]
REPORT_FILES = ["report.json", "report.md", "report.html"]


def run_export(*args: str):
    return CliRunner().invoke(export, [*args, "--quiet"], catch_exceptions=False)


EVAL_IMAGES = 300  # the first test images, written as a digit folder for --eval-dir


@pytest.fixture(scope="session")
def eval_dir(mnist, tmp_path_factory) -> Path:
    from mnist_edge.trainer.digit_folders import write_digit_folders

    folder = tmp_path_factory.mktemp("eval") / "first300"
    write_digit_folders(mnist.x_test[:EVAL_IMAGES], mnist.y_test[:EVAL_IMAGES], folder)
    return folder


@pytest.fixture(scope="session")
def exported(small_keras_model, mnist_data_dir, eval_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    result = run_export(
        "--model", str(small_keras_model), "--out", str(out), "--data-dir", str(mnist_data_dir),
        "--eval-dir", str(eval_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def report(exported) -> dict:
    return json.loads((exported / "report.json").read_text())


@pytest.fixture(scope="session")
def test_set(mnist):
    return mnist.x_test.astype(np.float32) / 255.0, mnist.y_test


@pytest.fixture(scope="session")
def calibration_images(mnist):
    from mnist_edge.export.variants import stratified_calibration_set

    return stratified_calibration_set(mnist.x_train, mnist.y_train, 200)


def test_export_writes_every_file_and_nothing_else(exported):
    expected = {f"mnist_{v}{s}" for v in VARIANTS for s in (".tflite", ".json")}
    assert {p.name for p in exported.iterdir()} == expected | set(REPORT_FILES)


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_loads_and_classifies_at_any_batch_size(exported, test_set, variant):
    x, y = test_set
    classifier = DigitClassifier(exported / f"mnist_{variant}.tflite")
    one = classifier.predict(x[:1])
    batch = classifier.predict(x[:300])
    assert one.shape == (1, 10) and batch.shape == (300, 10)
    assert np.allclose(batch.sum(axis=1), 1.0, atol=0.02)
    assert one.argmax() == batch[0].argmax()
    assert np.mean(batch.argmax(axis=1) == y[:300]) > 0.85  # 2 epochs on 6,000 images


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_file_has_the_minimal_graph(exported, variant):
    graph = read_graph(exported / f"mnist_{variant}.tflite")
    assert not DYNAMIC_SHAPE_OPS & set(graph.op_names)
    assert minimal_graph_problems(graph) == []
    assert graph.input_shapes == [[-1, 28, 28]]
    compute_ops = [name for name in graph.op_names if name != "DEQUANTIZE"]  # float16 weights
    assert compute_ops == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]


def test_int8_file_is_integer_only_with_int8_io(exported):
    graph = read_graph(exported / "mnist_int8.tflite")
    assert integer_only_problems(graph, "int8") == []
    assert graph.input_types == ["INT8"] and graph.output_types == ["INT8"]
    classifier = DigitClassifier(exported / "mnist_int8.tflite")
    assert classifier.input_quantization[1] == -128
    assert classifier.input_quantization[0] == pytest.approx(1 / 255)


def test_integer_only_check_finds_float_kernels(exported):
    """The check is not vacuous: a float file fails it, naming the float ops."""
    problems = integer_only_problems(read_graph(exported / "mnist_float32.tflite"), "int8")
    assert any("FULLY_CONNECTED works on FLOAT32" in p for p in problems)
    assert any("input is FLOAT32, expected INT8" in p for p in problems)


@pytest.mark.parametrize("io_type", ["uint8", "float32"])
def test_int8_io_option_sets_the_io_dtypes(
    small_keras_model, calibration_images, tmp_path, io_type
):
    from mnist_edge.export.pipeline import convert_and_check
    from mnist_edge.export.variants import ExportSettings, load_keras_model

    settings = ExportSettings(calibration_images, int8_io=io_type, show_progress=False)
    path = tmp_path / "mnist_int8.tflite"
    convert_and_check(
        load_keras_model(small_keras_model), "int8", settings, path, calibration_images[:5]
    )
    graph = read_graph(path)
    assert graph.input_types == [io_type.upper()] and graph.output_types == [io_type.upper()]
    assert integer_only_problems(graph, io_type) == []
    if io_type == "float32":  # the only float kernels are the boundary conversions
        assert graph.op_names[0] == "QUANTIZE" and graph.op_names[-1] == "DEQUANTIZE"
    classifier = DigitClassifier(path)
    assert classifier.input_dtype == np.dtype(io_type)


def test_calibration_set_is_stratified_and_seeded(mnist):
    from mnist_edge.export.variants import stratified_calibration_set

    images = stratified_calibration_set(mnist.x_train, mnist.y_train, 505)
    assert images.shape == (505, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    # Recover each image's label by matching it back to the training set.
    flat = {img.tobytes(): label for img, label in zip(mnist.x_train, mnist.y_train, strict=True)}
    labels = [flat[np.rint(img * 255).astype(np.uint8).tobytes()] for img in images]
    counts = np.bincount(labels, minlength=10)
    assert counts.min() == 50 and counts.max() == 51 and counts.sum() == 505
    again = stratified_calibration_set(mnist.x_train, mnist.y_train, 505)
    assert np.array_equal(images, again)


def test_report_json_is_complete_and_consistent(exported, report, test_set):
    _, y = test_set
    fields = {
        "name",
        "path",
        "size_bytes",
        "accuracy",
        "per_class_accuracy",
        "confusion_matrix",
        "agreement_with_keras",
        "mean_abs_probability_difference",
        "max_abs_probability_difference",
        "latency_us",
        "throughput_images_per_s",
    }
    assert [m["name"] for m in report["models"]] == ["keras", *VARIANTS]
    by_name = {m["name"]: m for m in report["models"]}
    for model in report["models"]:
        assert fields <= set(model), model["name"]
        matrix = np.array(model["confusion_matrix"])
        assert matrix.sum() == len(y) == report["data"]["test_size"]
        assert np.array_equal(matrix.sum(axis=1), np.bincount(y, minlength=10))
        assert model["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-12)
        assert np.allclose(model["per_class_accuracy"], matrix.diagonal() / matrix.sum(axis=1))
        assert 0 <= model["agreement_with_keras"] <= 1
        assert model["latency_us"] > 0 and model["throughput_images_per_s"] > 0
        if model["name"] != "keras":  # the files by name, relative to --out
            assert (exported / model["path"]).stat().st_size == model["size_bytes"]
    assert by_name["keras"]["path"] == "mnist_dense.keras"  # its file name: not in --out
    assert report["source_model"] == "mnist_dense.keras"
    assert by_name["keras"]["agreement_with_keras"] == 1.0
    drop = (by_name["float32"]["accuracy"] - by_name["int8"]["accuracy"]) * 100
    assert report["int8_drop_pp"] == pytest.approx(drop, abs=1e-3)
    assert by_name["int8"]["drop_vs_float32_pp"] == pytest.approx(drop, abs=1e-3)
    f32, i8 = by_name["float32"], by_name["int8"]
    assert report["int8_disagreements_with_float32"] == len(report["disagreements"])
    assert i8["agreement_with_float32"] == pytest.approx(1 - len(report["disagreements"]) / len(y))
    assert i8["size_bytes"] < 0.3 * f32["size_bytes"]
    assert report["settings"]["calibration_samples"] == 500
    assert set(report["data"]["md5"]) and report["versions"]["tensorflow"]


def test_cards_describe_their_files(exported, report):
    from mnist_edge.export.pipeline import sha256_of

    by_name = {m["name"]: m for m in report["models"]}
    for variant in VARIANTS:
        path = exported / f"mnist_{variant}.tflite"
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["variant"] == variant and card["file"] == path.name
        assert card["sha256"] == sha256_of(path) and card["size_bytes"] == path.stat().st_size
        assert card["test_accuracy"] == by_name[variant]["accuracy"]
        assert card["input"]["shape"] == [-1, 28, 28] and card["output"]["shape"] == [-1, 10]
        assert card["labels"] == [str(d) for d in range(10)]
        assert DigitClassifier(path).card == card  # the runtime accepts it (sha256 matches)
        quantized = variant == "int8"
        assert card["input"]["dtype"] == ("int8" if quantized else "float32")
        assert (card["input"]["scale"] > 0) == quantized


class _PageChecker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.open_tags = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables += 1


def test_report_pages_are_self_contained(exported, report):
    import base64

    page = (exported / "report.html").read_text()
    checker = _PageChecker()
    checker.feed(page)
    assert checker.tables == 3  # comparison, per class, the --eval-dir set
    assert len(checker.images) == (3 if report["disagreements"] else 2)
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in page  # nothing fetched from elsewhere
    markdown = (exported / "report.md").read_text()
    for model in report["models"]:
        assert f"| {model['name']} | {model['size_bytes'] / 1024:.1f} |" in markdown


def test_eval_dir_measures_every_model_on_that_set(exported, report, eval_dir, test_set):
    """The --eval-dir folder holds the first 300 test images: each model's accuracy there is
    its accuracy on those test images, computed here from the files."""
    x, y = test_set
    (eval_set,) = report["eval_sets"]
    assert eval_set["name"] == "first300" and eval_set["images"] == EVAL_IMAGES
    assert eval_set["counts"] == np.bincount(y[:EVAL_IMAGES], minlength=10).tolist()
    by_name = {m["name"]: m for m in eval_set["models"]}
    assert list(by_name) == ["keras", *VARIANTS]
    predictions = {}
    for variant in VARIANTS:
        classifier = DigitClassifier(exported / f"mnist_{variant}.tflite")
        predictions[variant] = classifier.predict(x[:EVAL_IMAGES]).argmax(axis=1)
        accuracy = float(np.mean(predictions[variant] == y[:EVAL_IMAGES]))
        assert by_name[variant]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    agreement = float(np.mean(predictions["int8"] == predictions["float32"]))
    assert by_name["int8"]["agreement_with_float32"] == pytest.approx(agreement, abs=1e-9)
    drop = (by_name["float32"]["accuracy"] - by_name["int8"]["accuracy"]) * 100
    assert eval_set["int8_drop_pp"] == pytest.approx(drop, abs=1e-3)
    markdown = (exported / "report.md").read_text()
    assert "--eval-dir first300 (300 images)" in markdown
    assert "first300" in (exported / "report.html").read_text()


def test_terminal_summary_fits_100_columns(report):
    from mnist_edge.export.report import terminal_tables

    text = terminal_tables(report)
    assert "first300" in text and "images/s" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_export_reads_the_model_beside_out_and_names_it(
    small_keras_model, mnist_data_dir, tmp_path
):
    """No --model: <--out>/mnist_dense.keras (there, as `train --out` leaves it)."""
    import shutil

    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(small_keras_model, out / "mnist_dense.keras")
    result = CliRunner().invoke(
        export, ["--out", str(out), "--data-dir", str(mnist_data_dir), "--variants", "float32"]
    )
    assert result.exit_code == 0, result.output
    assert f"model: {out / 'mnist_dense.keras'}" in result.output
    assert "wrote 1 .tflite file with its model card" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["source_model"] == "mnist_dense.keras"  # relative to --out
    assert report["eval_sets"] == []


def amplified_hidden_unit_model(small_keras_model: Path, tmp_path: Path) -> Path:
    """The same function in float, but one hidden unit scaled up 1000x (and its outgoing
    weights down 1000x; ReLU is positively homogeneous). The per-tensor int8 activation scale
    then follows that one unit and the other 127 units collapse: int8 really loses accuracy."""
    import keras

    model = keras.saving.load_model(small_keras_model)
    hidden, output = model.get_layer("hidden"), model.get_layer("probabilities")
    kernel, bias = hidden.get_weights()
    unit = int(np.argmax(np.abs(kernel).sum(axis=0)))
    kernel[:, unit] *= 1000
    bias[unit] *= 1000
    hidden.set_weights([kernel, bias])
    out_kernel, out_bias = output.get_weights()
    out_kernel[unit] /= 1000
    output.set_weights([out_kernel, out_bias])
    path = tmp_path / "amplified.keras"
    model.save(path)
    return path


def test_max_drop_gate_exits_1_after_writing_everything(
    small_keras_model, mnist_data_dir, tmp_path
):
    model = amplified_hidden_unit_model(small_keras_model, tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        export,
        ["--model", str(model), "--out", str(out), "--data-dir", str(mnist_data_dir)]
        + ["--variants", "float32,int8", "--max-drop", "0.5", "--quiet"],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--max-drop 0.5" in errors[0]
    report = json.loads((out / "report.json").read_text())
    assert report["int8_drop_pp"] > 0.5
    assert {"mnist_int8.tflite", "mnist_float32.tflite", *REPORT_FILES} <= {
        p.name for p in out.iterdir()
    }


def test_a_784_input_model_exports_too(small_keras_model, mnist_data_dir, exported, tmp_path):
    """Flattening done in preprocessing: the same weights behind a [N, 784] input."""
    import keras

    trained = keras.saving.load_model(small_keras_model)
    flat = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(128, "relu"), keras.layers.Dense(10, "softmax")]
    )
    flat.set_weights(trained.get_weights())
    model_path = tmp_path / "flat.keras"
    flat.save(model_path)
    out = tmp_path / "out"
    result = run_export(
        "--model", str(model_path), "--out", str(out), "--data-dir", str(mnist_data_dir),
        "--variants", "float32",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((out / "mnist_float32.json").read_text())
    assert card["input"]["shape"] == [-1, 784]
    assert minimal_graph_problems(read_graph(out / "mnist_float32.tflite")) == []
    reference = json.loads((exported / "mnist_float32.json").read_text())
    assert card["test_accuracy"] == reference["test_accuracy"]  # the same function
