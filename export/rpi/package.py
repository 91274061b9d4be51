"""`mnist-edge bundle --target rpi`: one archive holding what a Raspberry Pi needs to run a
model, and no more.

dist/mnist-edge-rpi.tar.gz unpacks to mnist-edge-rpi/ with the model and its card (models/), the
project's wheel built here with `pip wheel --no-deps`, the pinned aarch64 requirements, install.sh,
an example systemd unit and README-rpi.md; the templates live beside this module. The wheel is
built from a source checkout: the one this package is installed from (an editable install), or
`--source DIR`. Nothing here imports TensorFlow: bundling works in the base install.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import click

from mnist_edge.export.bundle_common import Built, next_step_lines
from mnist_edge.trainer.atomic import atomic_path

# export/rpi/package.py -> the checkout root, in an editable install (in a wheel install this is
# the installed mnist_edge/ folder, which holds no pyproject.toml).
INSTALLED_FROM = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent
BUNDLE_DIR = "mnist-edge-rpi"
ARCHIVE_NAME = f"{BUNDLE_DIR}.tar.gz"
REQUIREMENTS = "requirements-rpi.txt"
# Template file -> mode in the archive. "@MODEL@" in them becomes the model's file name.
TEMPLATE_FILES = {
    "install.sh": 0o755,
    REQUIREMENTS: 0o644,
    "requirements-picamera2.txt": 0o644,
    "mnist-edge.service": 0o644,
    "mnist-edge-serve.service": 0o644,
    "README-rpi.md": 0o644,
}
# The wheel names the desktop OpenCV; the Pi gets the headless build of the same cv2 module.
PI_REPLACEMENTS = {"opencv-python": "opencv-python-headless"}
TRAINING_ONLY = ("tensorflow", "keras", "matplotlib")
# Copying the source tree keeps setuptools' build/ and egg-info out of the checkout; skip what a
# wheel never holds (dot folders such as .git or a .venv, data, models, tests, earlier builds).
SKIPPED_SOURCES = shutil.ignore_patterns(
    ".*", "__pycache__", "*.egg-info", "build", "dist", "tests", "data", "venv"
)
PACKAGED_MODEL_FILES = {"mnist_int8.tflite", "mnist_int8.json"}  # the wheel's models/


def source_ignore(folder: str, names: list[str]) -> set[str]:
    """What the wheel's source copy leaves out; of models/, all but the packaged model."""
    skipped = set(SKIPPED_SOURCES(folder, names))
    if Path(folder).name == "models":
        skipped |= {name for name in names if name not in PACKAGED_MODEL_FILES}
    return skipped


def is_checkout(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    try:
        return pyproject.is_file() and 'name = "mnist-edge"' in pyproject.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def find_checkout(source: Path | None) -> Path:
    """The mnist-edge source checkout to build the wheel from: `--source`, else the one this
    package is installed from (editable install)."""
    if source is not None:
        if not is_checkout(source):
            raise click.ClickException(
                f"--source {source}: not an mnist-edge source checkout (no pyproject.toml "
                "naming mnist-edge)"
            )
        return source
    if is_checkout(INSTALLED_FROM):
        return INSTALLED_FROM
    raise click.ClickException(
        "mnist-edge is installed without its source checkout, and the Pi bundle builds the "
        "mnist-edge wheel from one: pass --source DIR (a clone of the repository)"
    )


def build_wheel(checkout: Path, wheel_dir: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout; returns the .whl path."""
    with tempfile.TemporaryDirectory(prefix="mnist-edge-src-") as tmp:
        source = Path(tmp) / "mnist-edge"
        shutil.copytree(checkout, source, ignore=source_ignore)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        command += ["--wheel-dir", str(wheel_dir), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob("mnist_edge-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no wheel"]
        raise click.ClickException(f"pip wheel of {checkout} failed: {lines[-1].strip()}")
    return wheels[0]


def requirement_name(requirement: str) -> str:
    """'ai-edge-litert>=1.2; sys_platform == ...' -> 'ai-edge-litert' (PEP 503 normalized)."""
    name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that a plain install follows (those without an extra)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    requires = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            requirement = line.split(":", 1)[1].strip()
            if not re.search(r"\bextra\s*==", requirement):
                requires.append(requirement)
    return requires


def pinned_names(requirements_file: Path) -> set[str]:
    lines = requirements_file.read_text(encoding="utf-8").splitlines()
    return {requirement_name(line) for line in lines if line.strip() and not line.startswith("#")}


def check_wheel_requirements(wheel: Path) -> None:
    """TensorFlow only under an extra; every runtime dependency pinned for the Pi."""
    needed = [requirement_name(r) for r in installed_requirements(wheel)]
    heavy = [name for name in needed if name.startswith(TRAINING_ONLY)]
    if heavy:
        raise click.ClickException(
            f"{wheel.name}: a plain install would pull {', '.join(heavy)}; keep it under an extra"
        )
    pinned = pinned_names(TEMPLATES / REQUIREMENTS)
    missing = [name for name in needed if PI_REPLACEMENTS.get(name, name) not in pinned]
    if missing:
        raise click.ClickException(
            f"{TEMPLATES / REQUIREMENTS}: pins no version of {', '.join(missing)}, "
            "which mnist-edge needs"
        )


def bundle_members(model: Path, card: Path | None, wheel: Path) -> dict[str, tuple[bytes, int]]:
    """Archive path (inside mnist-edge-rpi/) -> (content, mode)."""
    members = {f"models/{model.name}": (model.read_bytes(), 0o644)}
    if card is not None:
        members[f"models/{card.name}"] = (card.read_bytes(), 0o644)
    members[wheel.name] = (wheel.read_bytes(), 0o644)
    for name, mode in TEMPLATE_FILES.items():
        text = (TEMPLATES / name).read_text(encoding="utf-8").replace("@MODEL@", model.name)
        members[name] = (text.encode("utf-8"), mode)
    return members


def write_archive(archive: Path, members: dict[str, tuple[bytes, int]]) -> None:
    """A .tar.gz with one top folder, written beside `archive` and renamed over it when complete."""
    now = int(time.time())

    def entry(name: str, mode: int, size: int = 0, is_dir: bool = False) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{BUNDLE_DIR}/{name}".rstrip("/"))
        info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        info.mode, info.size, info.mtime = mode, size, now
        return info

    with atomic_path(archive) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.addfile(entry("", 0o755, is_dir=True))
            tar.addfile(entry("models", 0o755, is_dir=True))
            for name, (data, mode) in members.items():
                tar.addfile(entry(name, mode, len(data)), io.BytesIO(data))


NEXT_STEPS = [
    "copy:    scp {archive} pi@raspberrypi.local:",
    f"install: tar xzf {ARCHIVE_NAME} && cd {BUNDLE_DIR} && ./install.sh    (on the Pi)",
    "run:     venv/bin/mnist-edge live --headless --json --source 0 --threads 4",
]


def build_rpi_bundle(model: Path, card: Path | None, out: Path, source: Path | None) -> Built:
    """Write out/mnist-edge-rpi.tar.gz with the wheel built from the checkout."""
    checkout = find_checkout(source)
    with tempfile.TemporaryDirectory(prefix="mnist-edge-wheel-") as tmp:
        wheel = build_wheel(checkout, Path(tmp))
        check_wheel_requirements(wheel)
        members = bundle_members(model, card, wheel)
    archive = out / ARCHIVE_NAME
    write_archive(archive, members)
    files = {name: len(data) for name, (data, _) in members.items()}
    steps = next_step_lines(NEXT_STEPS, archive=archive)
    return Built([archive], BUNDLE_DIR, files, [f"wheel built from {checkout}"], steps)
