"""The LiteRT wrapper on real TFLite files: quantization, batching, model cards, bad models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mnist_edge.runtime.classifier import (
    DigitClassifier,
    ModelError,
    dequantize_output,
    quantize_input,
)


@pytest.fixture(scope="module")
def test_images(mnist):
    return mnist.x_test[:600].astype(np.float32) / 255.0, mnist.y_test[:600]


def test_quantize_input_maps_the_256_grey_levels_exactly():
    levels = np.arange(256, dtype=np.float32) / 255.0
    q = quantize_input(levels, 1 / 255, -128, np.int8)
    assert q.dtype == np.int8
    assert np.array_equal(q.astype(int), np.arange(256) - 128)
    # Out-of-range values saturate instead of wrapping around.
    assert quantize_input(np.array([-1.0, 2.0]), 1 / 255, -128, np.int8).tolist() == [-128, 127]
    assert quantize_input(np.array([0.6]), 1 / 255, 0, np.uint8).tolist() == [153]


def test_dequantize_output_gives_probabilities():
    q = np.array([-128, 0, 127], dtype=np.int8)
    assert np.allclose(dequantize_output(q, 1 / 256, -128), [0.0, 0.5, 255 / 256])


def test_int8_model_reads_and_batches(int8_model, test_images):
    x, y = test_images
    classifier = DigitClassifier(int8_model, threads=1)
    assert classifier.input_dtype == np.int8 and classifier.output_dtype == np.int8
    assert classifier.input_shape in ((28, 28), (784,))
    assert classifier.labels == [str(d) for d in range(10)]

    batched = classifier.predict(x)
    assert batched.shape == (600, 10) and batched.dtype == np.float32
    assert np.all(batched >= 0) and np.allclose(batched.sum(axis=1), 1.0, atol=0.05)
    assert np.mean(batched.argmax(axis=1) == y) > 0.95

    one_by_one = np.concatenate([classifier.predict(image) for image in x[:20]])
    assert np.array_equal(one_by_one, batched[:20])  # batching changes nothing
    assert np.array_equal(classifier.predict(x[:3]), batched[:3])
    assert classifier.predict(np.zeros((0, 28, 28))).shape == (0, 10)
    assert np.array_equal(classifier.predict(x[:5].reshape(5, 784)), batched[:5])


def test_float_and_int8_agree(repo_root, int8_model, test_images):
    float_model = repo_root / "models" / "mnist_float32.tflite"
    if not float_model.is_file():
        pytest.skip(f"{float_model} missing")
    x, _ = test_images
    float_top1 = DigitClassifier(float_model).predict(x).argmax(axis=1)
    int8_top1 = DigitClassifier(int8_model).predict(x).argmax(axis=1)
    assert np.mean(float_top1 == int8_top1) >= 0.99


def test_rejects_wrong_shaped_images(int8_model):
    with pytest.raises(ValueError, match="expected images"):
        DigitClassifier(int8_model).predict(np.zeros((2, 32, 32)))


def test_model_card_is_read_and_a_stale_one_refused(int8_model, tmp_path):
    model = tmp_path / "mnist_int8.tflite"
    model.write_bytes(int8_model.read_bytes())
    card = {"labels": list("abcdefghij"), "sha256": "0" * 64}
    (tmp_path / "mnist_int8.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not match its model card"):
        DigitClassifier(model)
    ignored = DigitClassifier(model, ignore_card=True)
    assert ignored.card is None and ignored.labels == [str(d) for d in range(10)]

    import hashlib

    card["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "mnist_int8.json").write_text(json.dumps(card))
    fresh = DigitClassifier(model)
    assert fresh.card == card and fresh.labels == list("abcdefghij")


def test_bad_model_files_give_one_line_errors(tmp_path):
    not_tflite = tmp_path / "photo.tflite"
    not_tflite.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x20\x00\x00\x00TFL3" + bytes(40))
    cases = {
        tmp_path / "missing.tflite": "not found",
        tmp_path: "is a folder",
        not_tflite: "not a TFLite model",
        truncated: "cannot load model",
    }
    for path, reason in cases.items():
        with pytest.raises(ModelError) as error:
            DigitClassifier(path)
        message = str(error.value)
        assert str(path) in message and reason in message and "\n" not in message


def test_model_with_wrong_input_shape_is_refused(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32], tf.float32)])
    def wrong(x):
        return tf.nn.softmax(tf.reshape(x, [-1, 1024])[:, :10])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([wrong.get_concrete_function()])
    path = tmp_path / "cifar_like.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(ModelError, match=r"cifar_like.tflite: model input is \[-1, 32, 32\]"):
        DigitClassifier(path)


def test_runtime_wrapper_imports_no_tensorflow(int8_model):
    code = (
        "import sys, numpy as np; from mnist_edge.runtime.classifier import DigitClassifier; "
        f"c = DigitClassifier({str(int8_model)!r}); c.predict(np.zeros((2, 28, 28))); "
        "print(c.backend, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith(('mnist_edge.trainer', 'mnist_edge.export'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ai_edge_litert", "[]"]


def test_uint8_grey_levels_give_exactly_the_float_results(repo_root, int8_model, mnist):
    grey = mnist.x_test[:300]
    for path in (int8_model, repo_root / "models" / "mnist_float32.tflite"):
        classifier = DigitClassifier(path)
        from_floats = classifier.predict(grey.astype(np.float32) / 255)
        assert np.array_equal(classifier.predict(grey), from_floats), path.name


def test_batches_larger_than_one_invoke_are_split(int8_model, mnist, monkeypatch):
    import mnist_edge.runtime.classifier

    classifier = DigitClassifier(int8_model)
    whole = classifier.predict(mnist.x_test[:100])
    monkeypatch.setattr(mnist_edge.runtime.classifier, "LARGEST_BATCH", 32)  # 100 = 3 x 32 + 4
    assert np.array_equal(classifier.predict(mnist.x_test[:100]), whole)
    assert {32, 4} <= set(classifier._interpreters)
