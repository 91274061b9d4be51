"""`mnist-edge train` end to end, as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_trainer_data import write_small_idx


def mnist_edge(*args: str, env_data_dir: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MNIST_DATA_DIR", None)
    if env_data_dir is not None:
        env["MNIST_DATA_DIR"] = str(env_data_dir)
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def test_help_and_version_do_not_import_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; import mnist_edge.cli; "
        "r = CliRunner().invoke(mnist_edge.cli.main, ['--help']); "
        "print(r.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules); "
        "print(r.output)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.startswith("0 False False"), done.stdout + done.stderr
    for command in ("train", "export", "all", "predict", "live", "bench", "bundle"):
        assert command in done.stdout
    version = mnist_edge("--version")
    assert version.returncode == 0 and "mnist-edge, version 0.1.0" in version.stdout


def test_train_writes_model_metrics_and_figures(mnist_data_dir, tmp_path):
    out = tmp_path / "models"
    done = mnist_edge(
        "train",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--limit",
        "3000",
        "--seed",
        "3",
        env_data_dir=mnist_data_dir,
    )
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout
    assert " - accuracy: " in done.stdout and "val_accuracy" in done.stdout  # per-epoch log line
    assert "85/85 - " in done.stdout  # optimizer steps (2,700 images at batch 32), not calls
    metrics = json.loads((out / "mnist_dense.train.json").read_text())
    for key in (
        "test_accuracy",
        "test_loss",
        "epochs",
        "batch_size",
        "seed",
        "train_seconds",
        "history",
        "data",
        "versions",
    ):
        assert key in metrics
    assert (metrics["epochs"], metrics["batch_size"], metrics["seed"]) == (1, 32, 3)
    assert len(metrics["history"]) == 1 and "val_accuracy" in metrics["history"][0]
    assert metrics["test_accuracy"] > 0.8
    assert len(metrics["data"]["md5"]) == 4 and "tensorflow" in metrics["versions"]
    assert metrics["data"]["source"] == f"IDX files in {mnist_data_dir.name}"  # no folder path
    for name in ("mnist_dense.keras", "samples.png", "training_curves.png"):
        assert (out / name).stat().st_size > 1000
        assert (out / name).read_bytes()[:4] in (b"PK\x03\x04", b"\x89PNG")
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_quiet_prints_nothing(mnist_data_dir, tmp_path):
    done = mnist_edge(
        "train",
        "--out",
        str(tmp_path),
        "--epochs",
        "1",
        "--limit",
        "1000",
        "--quiet",
        "--data-dir",
        str(mnist_data_dir),
    )
    assert done.returncode == 0 and done.stdout == ""


def test_missing_data_dir_is_one_line_error(tmp_path):
    done = mnist_edge("train", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert_one_line_error(done, str(tmp_path / "nope"), "no such folder")


def test_checksum_mismatch_names_the_file_and_the_flag(mnist, tmp_path):
    write_small_idx(tmp_path / "small", mnist, n=300)
    done = mnist_edge("train", "--data-dir", str(tmp_path / "small"), "--out", str(tmp_path))
    assert_one_line_error(done, "train-images-idx3-ubyte", "--allow-custom-data")
    done = mnist_edge(
        "train",
        "--data-dir",
        str(tmp_path / "small"),
        "--out",
        str(tmp_path / "m"),
        "--allow-custom-data",
        "--epochs",
        "1",
        "-q",
    )
    assert done.returncode == 0, done.stderr


def test_unwritable_output_is_one_line_error(mnist_data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = mnist_edge("train", "--out", str(blocker / "models"), env_data_dir=mnist_data_dir)
    assert_one_line_error(done, str(blocker / "models"), "cannot create output folder")


def test_bad_option_value_is_a_usage_error():
    done = mnist_edge("train", "--epochs", "0")
    assert done.returncode == 2 and "Invalid value for '--epochs'" in done.stderr


def test_reports_name_no_folder_of_the_building_machine():
    from mnist_edge.trainer.train import without_absolute_paths

    assert without_absolute_paths("IDX files in /data/mnist") == "IDX files in mnist"
    assert without_absolute_paths("IDX files in ../shared/data/mnist") == "IDX files in mnist"
    assert without_absolute_paths("IDX files in ./mnist/") == "IDX files in mnist"
    untouched = "1/2 of 3.5/4, IDX files in mnist"
    assert without_absolute_paths(untouched) == untouched
