"""The Raspberry Pi bundle, installed and run on an emulated 64-bit Pi, answers as on x86.

The bundle from `mnist-edge bundle` is unpacked and installed the way install.sh does it, into a
venv of Debian Bookworm's aarch64 Python 3.11 with the pinned aarch64 wheels, under
qemu-aarch64-static emulating a Pi 4, 5 or 3 CPU with that board's /proc/cpuinfo
(export/rpi/emulate.py). Then the same `predict` and `live` commands run there and on this
machine; the digits must be the same and the confidences within 1/256. Skipped, with the
reason, where qemu-user-static, root or the package registries are missing. The first run
downloads about 96 MB into ~/.cache/mnist-edge.

install.sh itself (not its replay) also runs on this machine, with pip reading this machine's
wheels of the same pins from the cache (another ~106 MB on the first run), and the example
systemd unit, adapted as README-rpi.md says, must pass `systemd-analyze verify`.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnist_edge.export.rpi import emulate
from tests.synthetic import camera_frame, write_video

TOLERANCE = 1 / 256 + 1e-4  # one step of the int8 output scale, plus the JSON's rounding
# Small by default to keep the suite fast; a larger trial, printing what differed (run with -s):
#   MNIST_EDGE_PI_PHOTOS=40 MNIST_EDGE_PI_FRAMES=30 pytest -s tests/test_rpi_emulated.py -k matches
N_PHOTOS = int(os.environ.get("MNIST_EDGE_PI_PHOTOS", "8"))
N_FRAMES = int(os.environ.get("MNIST_EDGE_PI_FRAMES", "6"))


@pytest.fixture(scope="module")
def bundle_dir(repo_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    command = [sys.executable, "-m", "mnist_edge", "bundle", "--out", str(out)]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return emulate.unpack(out / "mnist-edge-rpi.tar.gz", out)


@pytest.fixture(scope="module")
def pi(bundle_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(venv, root): the bundle installed on the emulated Pi."""
    try:
        root, wheels = emulate.prepare(bundle_dir)
    except emulate.Unavailable as reason:
        pytest.skip(f"no emulated Raspberry Pi here: {reason}")
    venv = tmp_path_factory.mktemp("pi") / "venv"
    seconds = emulate.install(bundle_dir, venv, root, wheels)
    print("install.sh steps under emulation:", {k: round(v, 1) for k, v in seconds.items()})
    return venv, root


@pytest.fixture(scope="module")
def digit_images(mnist, tmp_path_factory) -> list[Path]:
    """Camera-like photos of MNIST test digits: 1 to 4 digits each (PNG)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(N_PHOTOS):
        count = 1 + i % 4
        digits = [mnist.x_test[j] for j in rng.integers(len(mnist.x_test), size=count)]
        path = folder / f"photo{i}.png"
        cv2.imwrite(str(path), camera_frame(digits, rng))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def digit_video(mnist, tmp_path_factory) -> Path:
    rng = np.random.default_rng(6)
    frames = [camera_frame([mnist.x_test[i], mnist.x_test[i + 1]], rng) for i in range(N_FRAMES)]
    return write_video(tmp_path_factory.mktemp("video") / "digits.mp4", frames)


def x86(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mnist_edge", *args]
    return subprocess.run(command, cwd=repo_root, capture_output=True, text=True)


def answers(stdout: str) -> list[tuple[str, list[tuple[int, float, list[int]]]]]:
    """Each JSON line's text and (digit, confidence, box) triples."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [
        (ln["text"], [(d["digit"], d["confidence"], d["box"]) for d in ln["digits"]])
        for ln in lines
    ]


def assert_same_answers(on_pi: str, on_x86: str, expected_lines: int, what: str = "") -> None:
    """Same text and digits, confidences within TOLERANCE. Not the boxes: OpenCV's arm64 and x86
    builds decode a video a little differently, which moved 5 of 60 boxes in a trial, no digit."""
    pi_answers, x86_answers = answers(on_pi), answers(on_x86)
    assert len(pi_answers) == len(x86_answers) == expected_lines
    assert sum(len(digits) for _, digits in x86_answers) > 0  # something to compare
    differences, moved_boxes = [], 0
    for (pi_text, pi_digits), (x86_text, x86_digits) in zip(pi_answers, x86_answers, strict=True):
        assert pi_text == x86_text
        assert [d[0] for d in pi_digits] == [d[0] for d in x86_digits]
        for (_, pi_conf, pi_box), (_, x86_conf, x86_box) in zip(pi_digits, x86_digits, strict=True):
            assert abs(pi_conf - x86_conf) <= TOLERANCE
            differences.append(abs(pi_conf - x86_conf))
            moved_boxes += pi_box != x86_box
    print(
        f"{what}: {len(differences)} digits in {expected_lines} lines all the same; "
        f"{sum(d > 0 for d in differences)} confidences differ (max {max(differences):.4f}); "
        f"{moved_boxes} boxes moved"
    )


def test_pi_venv_holds_the_headless_runtime_without_tensorflow(pi) -> None:
    venv, root = pi
    probe = (
        "import importlib.metadata as m, importlib.util as u, platform, sys;"
        "print(platform.machine(), sys.version_info[:2] == (3, 11));"
        "print(u.find_spec('tensorflow') is None, u.find_spec('keras') is None);"
        "print(m.version('opencv-python-headless'));"
        "print([d.metadata['Name'] for d in m.distributions() if d.metadata['Name'] == "
        "'opencv-python'])"
    )
    done = emulate.run(venv, ["python", "-c", probe], root)
    assert done.returncode == 0, done.stderr
    machine, no_tf, headless, desktop_cv = done.stdout.splitlines()
    assert machine == "aarch64 True"
    assert no_tf == "True True"
    assert headless  # the pinned headless OpenCV is what cv2 comes from
    assert desktop_cv == "[]"


@pytest.fixture(scope="module")
def predict_args(bundle_dir, digit_images) -> list[str]:
    model = str(bundle_dir / "models" / "mnist_int8.tflite")
    return ["predict", "--json", "--verbose", "--model", model, *map(str, digit_images)]


@pytest.fixture(scope="module")
def live_args(bundle_dir, digit_video) -> list[str]:
    model = str(bundle_dir / "models" / "mnist_int8.tflite")
    args = ["live", "--headless", "--json", "--source", str(digit_video), "--model", model]
    return [*args, "--max-frames", str(N_FRAMES)]


@pytest.fixture(scope="module")
def x86_predict(predict_args, repo_root) -> str:
    done = x86(repo_root, *predict_args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def x86_live(live_args, repo_root) -> str:
    done = x86(repo_root, *live_args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("board", ["pi4", "pi5", "pi3"])
def test_predict_on_the_pi_matches_x86(pi, board, predict_args, digit_images, x86_predict) -> None:
    venv, root = pi
    on_pi = emulate.run(venv, ["mnist-edge", *predict_args, "--threads", "4"], root, board)
    assert on_pi.returncode == 0, on_pi.stderr
    assert "ai_edge_litert" in on_pi.stderr  # the real LiteRT interpreter, not a fallback
    assert_same_answers(on_pi.stdout, x86_predict, len(digit_images), f"predict on {board}")


@pytest.mark.parametrize("board", ["pi4", "pi5", "pi3"])
def test_live_on_the_pi_matches_x86(pi, board, live_args, x86_live) -> None:
    venv, root = pi
    on_pi = emulate.run(venv, ["mnist-edge", *live_args, "--threads", "4"], root, board)
    assert on_pi.returncode == 0, on_pi.stderr
    assert_same_answers(on_pi.stdout, x86_live, N_FRAMES, f"live on {board}")


def test_picamera2_missing_on_the_pi_is_one_line(pi, bundle_dir) -> None:
    """A venv made without --picamera2 cannot see the camera library: say so, no traceback."""
    venv, root = pi
    model = str(bundle_dir / "models" / "mnist_int8.tflite")
    args = ["live", "--headless", "--json", "--source", "picamera2", "--model", model]
    done = emulate.run(venv, ["mnist-edge", *args, "--max-frames", "1"], root)
    errors = [line for line in done.stderr.splitlines() if line.startswith(("Error", "Trace"))]
    assert done.returncode == 1 and len(errors) == 1
    assert errors[0].startswith("Error: picamera2") and "python3-picamera2" in errors[0]


@pytest.fixture(scope="module")
def installed_here(bundle_dir) -> tuple[Path, dict[str, str]]:
    """(venv, env): install.sh itself run on this machine, pip reading only cached wheels of
    this machine's platform for the same pins."""
    pins = emulate.requirement_lines(bundle_dir / "requirements-rpi.txt")
    try:
        with emulate.cache_lock():
            wheels = emulate.download_wheels(pins, aarch64=False)
    except emulate.Unavailable as reason:
        pytest.skip(f"cannot fetch this machine's wheels of the pins: {reason}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this Python 3
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(["./install.sh"], cwd=bundle_dir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mnist-edge, version" in done.stdout
    return bundle_dir / "venv", env


def test_install_sh_itself_installs_the_bundle_here(
    installed_here, bundle_dir, digit_images, x86_predict
) -> None:
    venv, env = installed_here
    listed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
    )
    names = {item["name"].lower() for item in json.loads(listed.stdout)}
    assert "opencv-python-headless" in names and "mnist-edge" in names
    assert not names & {"opencv-python", "tensorflow", "keras"}
    args = ["predict", "--json", "--model", "models/mnist_int8.tflite", *map(str, digit_images)]
    run = subprocess.run(
        [venv / "bin" / "mnist-edge", *args],
        cwd=bundle_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert_same_answers(run.stdout, x86_predict, len(digit_images), "predict after install.sh")


def test_systemd_unit_adapted_as_the_readme_says_verifies(installed_here, bundle_dir, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not found")
    unit = (bundle_dir / "mnist-edge.service").read_text()
    # README-rpi.md's sed: the folder where the bundle was unpacked, and the current user.
    unit = unit.replace("/home/pi/mnist-edge-rpi", str(bundle_dir))
    unit = unit.replace("\nUser=pi\n", f"\nUser={getpass.getuser()}\n")
    (tmp_path / "mnist-edge.service").write_text(unit)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "mnist-edge.service")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"ExecStart={bundle_dir}/venv/bin/mnist-edge live --headless" in unit
