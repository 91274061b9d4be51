"""The Python API, `mnist_edge.DigitReader`: the same reading as `mnist-edge predict`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mnist_edge import DigitReader, ImageReadError, ModelError
from mnist_edge.cli import main
from tests.test_package import SAMPLE, SAMPLE_TEXT


@pytest.fixture(scope="module")
def reader(int8_model) -> DigitReader:
    return DigitReader(int8_model)


def test_a_path_reads_as_predict_json_does(reader, repo_root, int8_model) -> None:
    path = repo_root / SAMPLE
    result = reader.read(path)
    assert result.text == SAMPLE_TEXT
    assert [d.digit for d in result.digits] == [int(c) for c in SAMPLE_TEXT]
    done = CliRunner().invoke(main, ["predict", "--json", "--model", str(int8_model), str(path)])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert {k: v for k, v in printed.items() if k != "path"} == result.to_json()


def test_numpy_bgr_grey_and_pil_images_give_the_same_digits(reader, repo_root) -> None:
    bgr = cv2.imread(str(repo_root / SAMPLE), cv2.IMREAD_COLOR)
    expected = reader.read(bgr).to_json()
    assert expected["text"] == SAMPLE_TEXT
    rgb = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert reader.read(rgb).to_json() == expected
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert reader.read(grey).text == SAMPLE_TEXT
    assert reader.read(Image.fromarray(grey)).text == SAMPLE_TEXT
    # RGBA with transparent paper: composited onto white, as predict does with such files.
    rgba = np.dstack([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.full(grey.shape, 255, np.uint8)])
    assert reader.read(Image.fromarray(rgba, "RGBA")).text == SAMPLE_TEXT


def test_defaults_and_weak_digits(int8_model, repo_root, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)  # models/mnist_int8.tflite here: the default
    assert DigitReader().model_path == (repo_root / "models" / "mnist_int8.tflite").resolve()
    strict = DigitReader(int8_model, min_confidence=1.01)  # every digit is weak
    result = strict.read(repo_root / SAMPLE)
    assert result.text == "?" * len(SAMPLE_TEXT) and all(d.weak for d in result.digits)
    dropped = DigitReader(int8_model, min_confidence=1.01, drop_weak=True).read(repo_root / SAMPLE)
    assert dropped.text == "" and dropped.digits == []


def test_bad_inputs_raise_clear_errors(reader, repo_root, tmp_path) -> None:
    with pytest.raises(TypeError, match="cannot read a list"):
        reader.read([1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(2, 3, 5\)"):
        reader.read(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(ImageReadError, match="no such file"):
        reader.read(tmp_path / "missing.png")
    with pytest.raises(ModelError, match="model file not found"):
        DigitReader(tmp_path / "missing.tflite")
    keras_file = tmp_path / "mnist_dense.keras"
    keras_file.write_bytes((repo_root / "models" / "mnist_dense.keras").read_bytes()[:4096])
    with pytest.raises(ModelError, match="a Keras model, not a .tflite file.*mnist-edge export"):
        DigitReader(keras_file)
