"""The project as a user installs it: the wheel, in a fresh venv, used from an empty folder.

The venv has only the base install (no TensorFlow) and no access to this checkout: what it
can do comes from the wheel alone, its packaged model included. pip reads the dependencies'
wheels from its cache when it has them (the project's own install put them there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

SAMPLE = "docs/images/sample-number.jpg"
SAMPLE_TEXT = "52817"  # what the committed model reads in it (tests/test_reader.py checks it)


@pytest.fixture(scope="module")
def wheel(repo_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    done = subprocess.run([*command, str(repo_root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("mnist_edge-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(bin folder, environment) of a fresh venv with the wheel's base install."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", MNIST_DATA_DIR="")
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)]
    done = subprocess.run(pip, capture_output=True, text=True, env=env)
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"the base install's wheels are neither cached nor reachable: {done.stderr}")
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "bin", env


def run_in_empty_folder(installed, tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    bin_dir, env = installed
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    program = str(bin_dir / command[0])
    return subprocess.run(
        [program, *command[1:]], cwd=empty, env=env, capture_output=True, text=True
    )


def test_the_wheel_has_one_top_level_name_and_the_default_model(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"mnist_edge"}
    assert "mnist_edge/py.typed" in names
    assert "mnist_edge/models/mnist_int8.tflite" in names
    assert not [n for n in names if n.endswith((".keras", "_float32.tflite", ".png"))]


def test_predict_uses_the_packaged_model_anywhere(installed, repo_root, tmp_path) -> None:
    image = str(repo_root / SAMPLE)
    done = run_in_empty_folder(installed, tmp_path, "mnist-edge", "predict", "--json", "-v", image)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"] == SAMPLE_TEXT
    # --verbose names the model by its full path: the one inside the venv's site-packages.
    model_line = next(line for line in done.stderr.splitlines() if line.startswith("model: "))
    assert str(installed[0].parent) in model_line
    assert "site-packages/mnist_edge/models/mnist_int8.tflite" in model_line


def test_python_api_and_module_entry_point(installed, repo_root, tmp_path) -> None:
    image = str(repo_root / SAMPLE)
    code = f"from mnist_edge import DigitReader; print(DigitReader().read({image!r}).text)"
    done = run_in_empty_folder(installed, tmp_path, "python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == SAMPLE_TEXT
    done = run_in_empty_folder(installed, tmp_path, "python", "-m", "mnist_edge", "--help")
    assert done.returncode == 0 and "Usage: mnist-edge" in done.stdout


@pytest.mark.parametrize(
    ("command", "job"), [("train", "training"), ("export", "export"), ("all", "training")]
)
def test_training_commands_without_tensorflow_say_how_to_get_it(
    installed, tmp_path, command, job
) -> None:
    done = run_in_empty_folder(installed, tmp_path, "mnist-edge", command, "--out", "out")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f'Error: {job} needs TensorFlow: pip install "mnist-edge[train]"'
    ]
    assert not (tmp_path / "empty" / "out").exists()  # nothing written, not even a folder


def test_bundle_from_a_wheel_install_says_what_it_needs(installed, tmp_path) -> None:
    # The Pi bundle builds the wheel from a source checkout, which a wheel install lacks; the
    # micro bundle measures its arena in TFLM, which the base install lacks.
    for target, words in (("rpi", "--source DIR"), ("micro", "mnist-edge[micro]")):
        done = run_in_empty_folder(installed, tmp_path, "mnist-edge", "bundle", "--target", target)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1 and len(errors) == 1 and words in errors[0], done.stderr
        assert "site-packages" not in errors[0]
