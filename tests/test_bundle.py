"""`mnist-edge bundle`: what the archive holds, that it stays TensorFlow-free, and bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mnist_edge.export.rpi.package import (
    ARCHIVE_NAME,
    BUNDLE_DIR,
    installed_requirements,
    requirement_name,
)


def run_bundle(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter, so sys.modules shows what bundling itself imports.
    code = (
        "import sys; from mnist_edge.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "finally:\n    print('imported TensorFlow:', 'tensorflow' in sys.modules, file=sys.stderr)"
    )
    command = [sys.executable, "-c", code, "bundle", *args]
    return subprocess.run(command, cwd=repo_root, capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(repo_root: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("dist")
    done = run_bundle(repo_root, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out / ARCHIVE_NAME, done


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(built[0]) as tar:
        tar.extractall(dest, filter="data")
    return dest / BUNDLE_DIR


def test_bundle_holds_what_a_pi_needs_and_nothing_more(built, unpacked, repo_root) -> None:
    archive, done = built
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert all(name == BUNDLE_DIR or name.startswith(f"{BUNDLE_DIR}/") for name in names)
    files = sorted(str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file())
    wheel = next(unpacked.glob("mnist_edge-*.whl")).name
    assert files == sorted(
        [
            "models/mnist_int8.tflite",
            "models/mnist_int8.json",
            wheel,
            "requirements-rpi.txt",
            "requirements-picamera2.txt",
            "install.sh",
            "mnist-edge.service",
            "mnist-edge-serve.service",
            "README-rpi.md",
        ]
    )
    for name in ("mnist_int8.tflite", "mnist_int8.json"):
        assert (unpacked / "models" / name).read_bytes() == (
            repo_root / "models" / name
        ).read_bytes()
    assert (unpacked / "install.sh").stat().st_mode & 0o111  # executable after tar xzf
    assert str(archive) in done.stdout


def test_bundling_never_imports_tensorflow(built) -> None:
    assert "imported TensorFlow: False" in built[1].stderr


def test_wheel_installs_no_tensorflow_and_ships_no_tests(unpacked) -> None:
    wheel = next(unpacked.glob("mnist_edge-*.whl"))
    names = [requirement_name(r) for r in installed_requirements(wheel)]
    assert "numpy" in names and not any(n.startswith(("tensorflow", "keras")) for n in names)
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith("METADATA"))
        extras = archive.read(metadata).decode()
        files = archive.namelist()
    assert 'tensorflow>=2.16; extra == "train"' in extras  # training still gets it
    assert "mnist_edge/runtime/classifier.py" in files and "mnist_edge/cli.py" in files
    # One top-level name; of the models only the default one, with its card.
    top = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
    assert top == {"mnist_edge"}
    models = sorted(f for f in files if f.startswith("mnist_edge/models/"))
    assert models == ["mnist_edge/models/mnist_int8.json", "mnist_edge/models/mnist_int8.tflite"]


def test_requirements_pin_every_runtime_dependency_with_headless_opencv(unpacked) -> None:
    lines = (unpacked / "requirements-rpi.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in pin for pin in pins)
    pinned = {requirement_name(pin) for pin in pins}
    wheel = next(unpacked.glob("mnist_edge-*.whl"))
    for name in (requirement_name(r) for r in installed_requirements(wheel)):
        assert name.replace("opencv-python", "opencv-python-headless") in pinned
    assert "opencv-python" not in pinned


def test_templates_name_the_bundled_model(unpacked) -> None:
    unit = (unpacked / "mnist-edge.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "live --headless --json --source picamera2" in exec_start
    assert "models/mnist_int8.tflite" in exec_start and "--threads 4" in exec_start
    for name in ("install.sh", "mnist-edge.service", "README-rpi.md"):
        assert "@MODEL@" not in (unpacked / name).read_text()


def test_install_script_is_valid_sh_and_refuses_unknown_options(unpacked) -> None:
    script = str(unpacked / "install.sh")
    assert subprocess.run(["sh", "-n", script]).returncode == 0
    usage = subprocess.run(["sh", script, "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--picamera2" in usage.stdout
    bad = subprocess.run(["sh", script, "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option '--bogus'" in bad.stderr


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    errors = [line for line in done.stderr.splitlines() if not line.startswith("imported")]
    assert done.returncode != 0
    assert len(errors) == 1 and errors[0].startswith("Error: "), done.stderr
    assert all(word in errors[0] for word in words), errors[0]


def test_bad_models_are_refused_in_one_line(repo_root, tmp_path) -> None:
    out = tmp_path / "dist"
    missing = run_bundle(repo_root, "--model", str(tmp_path / "nope.tflite"), "--out", str(out))
    assert_one_line_error(missing, "nope.tflite", "no such model file")
    not_tflite = tmp_path / "notes.tflite"
    not_tflite.write_text("hello")
    wrong = run_bundle(repo_root, "--model", str(not_tflite), "--out", str(out))
    assert_one_line_error(wrong, "notes.tflite", "not a TFLite model")
    assert not out.exists() or not list(out.iterdir())  # nothing written


def test_a_broken_card_or_one_of_another_model_is_refused(repo_root, tmp_path) -> None:
    model = tmp_path / "mnist_int8.tflite"
    shutil.copy(repo_root / "models" / "mnist_int8.tflite", model)
    card = json.loads((repo_root / "models" / "mnist_int8.json").read_text())
    card["sha256"] = "0" * 64
    (tmp_path / "mnist_int8.json").write_text(json.dumps(card))
    done = run_bundle(repo_root, "--model", str(model), "--out", str(tmp_path / "dist"))
    assert_one_line_error(done, "mnist_int8.json", "describes another model")
    (tmp_path / "mnist_int8.json").write_text('{"sha256": ')
    done = run_bundle(repo_root, "--model", str(model), "--out", str(tmp_path / "dist"))
    assert_one_line_error(done, "mnist_int8.json", "not readable JSON")


def test_a_model_without_card_is_bundled_alone(repo_root, tmp_path) -> None:
    model = tmp_path / "digits.tflite"
    shutil.copy(repo_root / "models" / "mnist_float32.tflite", model)
    out = tmp_path / "dist"
    done = run_bundle(repo_root, "--model", str(model), "--out", str(out))
    assert done.returncode == 0, done.stderr
    with tarfile.open(out / ARCHIVE_NAME) as tar:
        models = [n for n in tar.getnames() if "/models/" in n]
        unit = tar.extractfile(f"{BUNDLE_DIR}/mnist-edge.service").read().decode()
    assert models == [f"{BUNDLE_DIR}/models/digits.tflite"]
    assert "models/digits.tflite" in unit
    assert "no card" in done.stdout


def test_out_must_be_a_writable_folder_and_an_old_archive_survives_failures(
    repo_root, tmp_path, built
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    done = run_bundle(repo_root, "--out", str(a_file))
    assert done.returncode != 0 and "Error: " in done.stderr
    out = tmp_path / "dist"
    out.mkdir()
    shutil.copy(built[0], out / ARCHIVE_NAME)
    failed = run_bundle(repo_root, "--model", str(tmp_path / "nope.tflite"), "--out", str(out))
    assert failed.returncode != 0
    assert (out / ARCHIVE_NAME).read_bytes() == built[0].read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [ARCHIVE_NAME]  # no temporary left behind


def test_bundle_run_elsewhere_uses_the_packaged_model_and_the_installed_checkout(
    repo_root, tmp_path
) -> None:
    done = run_bundle(tmp_path)  # no models/ here; the default target is rpi
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "dist" / ARCHIVE_NAME) as tar:
        model = tar.extractfile(f"{BUNDLE_DIR}/models/mnist_int8.tflite").read()
    assert model == (repo_root / "models" / "mnist_int8.tflite").read_bytes()
    assert f"wheel built from {repo_root}" in done.stdout
    steps = done.stdout[done.stdout.index("next steps:") :]
    assert "scp " in steps and "./install.sh" in steps and "mnist-edge live" in steps


def test_source_must_be_an_mnist_edge_checkout(repo_root, tmp_path) -> None:
    from mnist_edge.export.rpi.package import find_checkout

    assert find_checkout(repo_root) == repo_root
    done = run_bundle(repo_root, "--source", str(tmp_path), "--out", str(tmp_path / "dist"))
    assert_one_line_error(done, f"--source {tmp_path}", "not an mnist-edge source checkout")
