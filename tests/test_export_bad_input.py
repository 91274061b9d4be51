"""Bad inputs to `mnist-edge export`: one line, non-zero exit, nothing half-written."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnist_edge.export.cli import export


def assert_clean_failure(result, out: Path | None, *fragments: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    if out is not None and out.exists():
        assert list(out.iterdir()) == []  # no file, no leftover staging folder


def invoke(*args: str):
    return CliRunner().invoke(export, [*args, "--quiet"])


def test_missing_model_file(tmp_path):
    out = tmp_path / "out"
    result = invoke("--model", str(tmp_path / "nope.keras"), "--out", str(out))
    assert_clean_failure(result, out, "nope.keras", "not found")


def test_model_that_is_not_keras(tmp_path, mnist_data_dir):
    out = tmp_path / "out"
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    result = invoke("--model", str(text), "--out", str(out), "--data-dir", str(mnist_data_dir))
    assert_clean_failure(result, out, "notes.keras", "not a Keras model")

    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras archive")
    result = invoke("--model", str(other_zip), "--out", str(out), "--data-dir", str(mnist_data_dir))
    assert_clean_failure(result, out, "other.keras", "cannot load as a Keras model")


def test_model_with_the_wrong_input(tmp_path, mnist_data_dir):
    import keras

    model = keras.Sequential(
        [keras.Input((32, 32)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    path = tmp_path / "wrong_input.keras"
    model.save(path)
    out = tmp_path / "out"
    result = invoke("--model", str(path), "--out", str(out), "--data-dir", str(mnist_data_dir))
    assert_clean_failure(result, out, "wrong_input.keras", "32x32", "28x28 or 784")


def test_unwritable_output_folder(tmp_path, small_keras_model):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = invoke("--model", str(small_keras_model), "--out", str(blocker / "out"))
    assert_clean_failure(result, None, "cannot create output folder")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("variants", ["float32,int4", "", " , "])
def test_unknown_variant(tmp_path, small_keras_model, variants):
    out = tmp_path / "out"
    result = invoke("--model", str(small_keras_model), "--out", str(out), "--variants", variants)
    assert_clean_failure(result, out, "--variants", "float32, float16, dynamic, int8")


def test_too_few_calibration_samples(tmp_path, small_keras_model):
    out = tmp_path / "out"
    result = invoke(
        "--model", str(small_keras_model), "--out", str(out), "--calibration-samples", "20"
    )
    assert_clean_failure(result, out, "--calibration-samples 20", "at least 100")


def test_too_many_calibration_samples(tmp_path, small_keras_model, mnist_data_dir):
    out = tmp_path / "out"
    result = invoke(
        "--model",
        str(small_keras_model),
        "--out",
        str(out),
        "--data-dir",
        str(mnist_data_dir),
        "--calibration-samples",
        "70000",
    )
    assert_clean_failure(result, out, "--calibration-samples 70000", "60000 training images")


def test_max_drop_needs_float32_and_int8(tmp_path, small_keras_model):
    out = tmp_path / "out"
    result = invoke(
        "--model", str(small_keras_model), "--out", str(out), "--variants", "int8",
        "--max-drop", "0.2",
    )  # fmt: skip
    assert_clean_failure(result, out, "--max-drop", "float32")


def test_export_commands_do_not_import_tensorflow_at_start():
    code = (
        "import sys; import mnist_edge.export.cli; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_all_and_export_are_wired_into_mnist_edge(tmp_path):
    """Through the real entry point: bad inputs stop before training or converting anything."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for args, fragment in (
        (["all", "--out", str(blocker / "out")], "cannot create output folder"),
        (["export", "--variants", "int3", "--out", str(tmp_path / "o")], "unknown variant int3"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "mnist_edge", *args], capture_output=True, text=True
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("Error:"), done.stderr
        assert fragment in done.stderr
    assert not (tmp_path / "o").exists()


def test_models_export_cannot_convert_faithfully_are_refused():
    import keras

    from mnist_edge.export.variants import ExportError, dense_layers

    refused = {
        "comes before a Flatten": [keras.Input((28, 28)), keras.layers.Dense(10)],
        "(Conv1D) is not supported": [keras.Input((28, 28)), keras.layers.Conv1D(4, 3)],
        "must have 10 units": [keras.Input((784,)), keras.layers.Dense(12)],
    }
    for message, layers in refused.items():
        with pytest.raises(ExportError, match=re.escape(message)):
            dense_layers(keras.Sequential(layers), "m.keras")
    accepted = [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dropout(0.2)]
    accepted += [keras.layers.Dense(16, use_bias=False), keras.layers.Dense(10)]
    assert [layer.units for layer in dense_layers(keras.Sequential(accepted))] == [16, 10]
