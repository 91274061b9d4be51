"""Hostile and broken models: refused at load, or an error per input, never a hang or a NaN.

The mutants are real TFLite files converted here from small tf.functions (tests/model_mutants.py),
built once per session. Commands run through the real CLI; the memory and hang cases in a
subprocess with an address-space limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.cli import main
from mnist_edge.runtime.classifier import DigitClassifier, ModelError, ModelOutputError
from tests.model_mutants import fixed_batch_classifier
from tests.synthetic import camera_frame

MEMORY_CEILING = 1536 * 2**20  # address space for a runtime subprocess (it needs ~770 MB)

REFUSED_AT_LOAD = {
    "no_inputs": "has 0 inputs and 1 outputs",
    "two_inputs": "has 2 inputs and 1 outputs",
    "int32_output": "model output is int32",
    "while_forever": "has control flow (WHILE)",
    "huge_tensors": "tensors need 2,991 MB at batch 1, more than the 64 MB",
    "wrong_input": "model input is [-1, 32, 32]",
}


@pytest.fixture(scope="session")
def frame_png(mnist, tmp_path_factory) -> Path:
    """A camera-like photo of a three-digit number."""
    rng = np.random.default_rng(16)
    path = tmp_path_factory.mktemp("frame") / "number.png"
    cv2.imwrite(str(path), camera_frame(list(mnist.x_test[:3]), rng))
    return path


def limited_run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A Python subprocess that cannot map more than MEMORY_CEILING."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))

    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, preexec_fn=limit, **kwargs
    )


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("Error: "), line
    return line


@pytest.mark.parametrize("name", REFUSED_AT_LOAD)
def test_models_that_are_not_digit_classifiers_are_refused_at_load(mutants, name):
    with pytest.raises(ModelError) as caught:
        DigitClassifier(mutants[name])
    message = str(caught.value)
    assert message.startswith(str(mutants[name])) and REFUSED_AT_LOAD[name] in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["while_forever", "huge_tensors", "two_inputs"])
def test_refused_models_through_predict_in_bounded_memory(mutants, frame_png, name):
    done = limited_run(
        ["-m", "mnist_edge", "predict", "--model", str(mutants[name]), str(frame_png)],
        timeout=120,
    )
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert str(mutants[name]) in line and REFUSED_AT_LOAD[name] in line


@pytest.mark.parametrize(
    "name, value", [("nan_output", "nan"), ("not_probabilities", "75.2")], ids=["nan", "75.2"]
)
def test_outputs_that_are_not_probabilities_are_an_error_per_input(
    mutants, frame_png, tmp_path, name, value
):
    classifier = DigitClassifier(mutants[name])  # loads: the output is known only when run
    with pytest.raises(ModelOutputError, match=rf"not a probability \({value}"):
        classifier.predict(np.full((2, 28, 28), 0.0, dtype=np.float32))

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100), 255, np.uint8))
    args = ["predict", "--json", "--model", str(mutants[name]), str(frame_png), str(blank)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = [json.loads(line, parse_constant=pytest.fail) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(frame_png), str(blank)]  # the batch went on
    assert "not a probability" in lines[0]["error"] and "digits" not in lines[0]
    assert lines[1] == {"path": str(blank), "text": "", "digits": []}  # no digit, no model run
    assert result.stderr.strip() == "Error: 1 of 2 inputs failed"


@pytest.mark.parametrize("batch", [1, 4])
def test_a_fixed_batch_model_is_run_in_chunks_of_its_batch(
    small_keras_model, mnist, tmp_path, batch
):
    import keras

    path = fixed_batch_classifier(small_keras_model, tmp_path / f"fixed{batch}.tflite", batch)
    classifier = DigitClassifier(path)
    assert classifier.fixed_batch == batch
    x = mnist.x_test[:11]  # not a multiple of 4: the last chunk is padded
    expected = keras.saving.load_model(small_keras_model).predict(x / 255.0, verbose=0)
    got = classifier.predict(x)
    assert got.shape == (11, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert set(classifier._interpreters) == {batch}  # never resized


def test_a_slow_model_is_stopped_by_the_watchdog(mutants, frame_png, monkeypatch):
    import mnist_edge.runtime.classifier as classifier_module

    monkeypatch.setattr(classifier_module, "INVOKE_TIMEOUT_S", 0.02)  # one invoke: ~0.15 s
    classifier = DigitClassifier(mutants["slow"])
    with pytest.raises(ModelError, match=r"slow.tflite: stopped, one invoke took longer than"):
        classifier.predict(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ModelError, match="an earlier call took longer"):  # not run twice
        classifier.predict(np.zeros((1, 28, 28), np.float32))

    result = CliRunner().invoke(main, ["predict", "--model", str(mutants["slow"]), str(frame_png)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "stopped, one invoke took longer than 0.02 s" in result.stderr


# A model that never ends, with the control-flow check switched off: what the watchdog is for.
NEVER_ENDING = """
import sys
import numpy as np
import mnist_edge.runtime.classifier as c
c.check_classifier = lambda facts, path: None
c.INVOKE_TIMEOUT_S = float(sys.argv[2])
classifier = c.DigitClassifier(sys.argv[1])
print("invoking", flush=True)
try:
    classifier.predict(np.zeros((1, 28, 28), np.float32))
except c.ModelError as error:
    sys.exit(f"Error: {error}")
except KeyboardInterrupt:
    sys.exit("Error: interrupted")
"""


def test_an_invoke_that_never_ends_times_out_and_the_process_exits(mutants):
    done = limited_run(["-c", NEVER_ENDING, str(mutants["while_forever"]), "0.5"], timeout=60)
    assert done.returncode == 1 and done.stdout == "invoking\n"
    assert "while_forever.tflite: stopped, one invoke took longer than 0.5 s" in one_error_line(
        done.stderr
    )


def test_ctrl_c_ends_an_invoke_that_never_ends(mutants):
    process = subprocess.Popen(
        [sys.executable, "-c", NEVER_ENDING, str(mutants["while_forever"]), "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "invoking\n"
        time.sleep(0.5)  # inside invoke(), which never returns
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)  # without the watchdog: never
        waited = time.perf_counter() - sent
    finally:
        process.kill()
    assert process.returncode == 1
    assert one_error_line(process.stderr.read()) == "Error: interrupted"
    print(f"Ctrl+C to exit: {waited:.2f} s")


def test_a_model_that_does_not_match_its_card_is_refused(int8_model, frame_png, tmp_path):
    model = tmp_path / "mnist_int8.tflite"
    content = bytearray(int8_model.read_bytes())
    model.write_bytes(content)
    card = json.loads(int8_model.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps(card))
    assert DigitClassifier(model).card == card

    # Two bytes of the weights changed (they fill the middle of the file), as a damaged copy
    # might: it still loads and runs, and without the card nothing would tell.
    middle = len(content) // 2
    content[middle : middle + 2] = bytes([content[middle] ^ 0x55, content[middle + 1] ^ 0x55])
    model.write_bytes(content)
    assert DigitClassifier(model, ignore_card=True).predict(np.zeros((1, 28, 28))).shape == (1, 10)
    assert hashlib.sha256(content).hexdigest() != card["sha256"]
    with pytest.raises(ModelError, match="does not match its model card mnist_int8.json"):
        DigitClassifier(model)
    result = CliRunner().invoke(main, ["predict", "--model", str(model), str(frame_png)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {model}: does not match its model card mnist_int8.json (sha256 differs): a "
        "damaged or replaced model file; pass --ignore-card to run it anyway"
    ]
    args = ["predict", "--ignore-card", "--model", str(model), str(frame_png)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert DigitClassifier(model, ignore_card=True).card is None

    model.with_suffix(".json").write_text('{"sha256": "trunc')
    with pytest.raises(ModelError, match="not readable JSON"):
        DigitClassifier(model)


def test_model_paths_that_are_not_regular_files(tmp_path):
    fifo = tmp_path / "model.tflite"
    import os

    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ModelError, match="is not a regular file"):
            DigitClassifier(path)


# Damaged copies of the real model: truncated anywhere, or one 32-bit word overwritten. Run in
# a subprocess: a native crash would show as a signal, not as a failed assertion here.
FUZZ = """
import sys, numpy as np
from mnist_edge.runtime.classifier import DigitClassifier, ModelError
content = open(sys.argv[1], "rb").read()
rng = np.random.default_rng(0)
outcomes = {"refused": 0, "runs": 0}
path = sys.argv[2]
for trial in range(300):
    damaged = bytearray(content)
    if trial % 3 == 0:
        damaged = damaged[: int(rng.integers(8, len(content)))]
    else:
        at = int(rng.integers(0, min(len(content), 2048) - 4))  # the tables, not the weights
        damaged[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
    open(path, "wb").write(bytes(damaged))
    try:
        c = DigitClassifier(path)
        c.predict(np.zeros((3, 28, 28), np.uint8))
        outcomes["runs"] += 1
    except ModelError as error:
        assert "\\n" not in str(error)
        outcomes["refused"] += 1
print(outcomes)
"""


def test_damaged_model_files_never_crash(int8_model, tmp_path):
    done = limited_run(["-c", FUZZ, str(int8_model), str(tmp_path / "m.tflite")], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = eval(done.stdout)  # noqa: S307 (our own subprocess's dict)
    assert outcomes["refused"] > 100  # the truncations at least
    print(outcomes)
