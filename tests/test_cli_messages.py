"""What a user sees on stderr: no TensorFlow start-up noise, one line for Ctrl+C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

NOISE_MARKS = ("I0000", "E0000", "W0000", "absl::InitializeLog", "cuInit", "oneDNN")


def mnist_edge(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_edge", *args]


def test_train_and_export_print_no_tensorflow_noise(mnist_data_dir: Path, tmp_path) -> None:
    out = tmp_path / "out"
    data = ["--data-dir", str(mnist_data_dir)]
    train = mnist_edge("train", *data, "--out", str(out), "--limit", "1000", "--epochs", "1")
    done = subprocess.run([*train, "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    export = mnist_edge("export", *data, "--model", str(out / "mnist_dense.keras"))
    done = subprocess.run(
        [*export, "--out", str(out), "--variants", "int8", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith(NOISE_MARKS)]


def test_ctrl_c_is_one_line_and_status_130(mnist_data_dir: Path, tmp_path) -> None:
    command = mnist_edge("train", "--data-dir", str(mnist_data_dir), "--out", str(tmp_path))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        first = process.stdout.readline()  # "MNIST: ..." once the data is loaded
        assert first.startswith("MNIST:"), first
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.splitlines() == ["mnist-edge: interrupted"]
