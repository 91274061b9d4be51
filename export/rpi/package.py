"""`mnist-edge bundle`: one archive holding what a Raspberry Pi needs to run a model, and no more.

dist/mnist-edge-rpi.tar.gz unpacks to mnist-edge-rpi/ with the model and its card (models/), the
project's wheel built here with `pip wheel --no-deps`, the pinned aarch64 requirements, install.sh,
an example systemd unit and README-rpi.md; the templates live in export/rpi/. Nothing here
imports TensorFlow: bundling works in the base install of a source checkout.
"""

from __future__ import annotations

import io
import json
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

from mnist_edge.runtime.classifier import TFLITE_IDENTIFIER, sha256_of
from mnist_edge.trainer.atomic import atomic_path
from mnist_edge.trainer.cli import writable_folder

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "rpi"
BUNDLE_DIR = "mnist-edge-rpi"
ARCHIVE_NAME = f"{BUNDLE_DIR}.tar.gz"
REQUIREMENTS = "requirements-rpi.txt"
# Template file -> mode in the archive. "@MODEL@" in them becomes the model's file name.
TEMPLATE_FILES = {
    "install.sh": 0o755,
    REQUIREMENTS: 0o644,
    "requirements-picamera2.txt": 0o644,
    "mnist-edge.service": 0o644,
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


def check_model(model: Path) -> Path | None:
    """Refuse a missing or non-TFLite model and a card describing another model; return the card."""
    if not model.is_file():
        raise click.ClickException(f"{model}: no such model file")
    try:
        with model.open("rb") as f:
            head = f.read(8)
    except OSError as error:
        raise click.ClickException(f"{model}: cannot read ({error.strerror})") from None
    if head[4:8] != TFLITE_IDENTIFIER:
        raise click.ClickException(f"{model}: not a TFLite model (no TFL3 identifier)")
    card = model.with_suffix(".json")
    if not card.is_file():
        return None
    try:
        info = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        raise click.ClickException(f"{card}: model card is not readable JSON") from None
    expected = info.get("sha256") if isinstance(info, dict) else None
    if expected and expected != sha256_of(model):
        raise click.ClickException(
            f"{card}: the card describes another model (its sha256 is not {model.name}'s); "
            "export the model again"
        )
    return card


def build_wheel(wheel_dir: Path) -> Path:
    """`pip wheel --no-deps` of a copy of this checkout; returns the .whl path."""
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        raise click.ClickException(
            f"{PROJECT_ROOT}: no pyproject.toml; bundle builds the wheel from a source checkout"
        )
    with tempfile.TemporaryDirectory(prefix="mnist-edge-src-") as tmp:
        source = Path(tmp) / "mnist-edge"
        shutil.copytree(PROJECT_ROOT, source, ignore=source_ignore)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        command += ["--wheel-dir", str(wheel_dir), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob("mnist_edge-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no wheel"]
        raise click.ClickException(f"pip wheel of {PROJECT_ROOT} failed: {lines[-1].strip()}")
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


@click.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("models/mnist_int8.tflite"),
    show_default=True,
    help="The .tflite model to ship; its card (same name, .json) goes along when present.",
)
@click.option(
    "--target",
    type=click.Choice(["rpi"]),
    default="rpi",
    show_default=True,
    help="The device: rpi is a Raspberry Pi 3/4/5 with 64-bit Raspberry Pi OS.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder for the archive.",
)
def bundle(model: Path, target: str, out: Path) -> None:
    """Pack a model and the on-device runtime for a Raspberry Pi into one .tar.gz.

    \b
    The archive unpacks to mnist-edge-rpi/: models/ (model + card), the mnist-edge wheel
    (without TensorFlow), requirements-rpi.txt (pinned aarch64 wheels, headless OpenCV),
    install.sh (venv + pip), mnist-edge.service (systemd example) and README-rpi.md.
    On the Pi: tar xzf mnist-edge-rpi.tar.gz && cd mnist-edge-rpi && ./install.sh
    """
    card = check_model(model)
    writable_folder(out)
    with tempfile.TemporaryDirectory(prefix="mnist-edge-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        check_wheel_requirements(wheel)
        members = bundle_members(model, card, wheel)
    archive = out / ARCHIVE_NAME
    write_archive(archive, members)
    click.echo(f"{archive}: {archive.stat().st_size / 1e6:.2f} MB, for target {target}")
    for name, (data, _) in members.items():
        click.echo(f"  {BUNDLE_DIR}/{name:<36} {len(data) / 1e3:>8.1f} kB")
    if card is None:
        click.echo(f"note: no card {model.with_suffix('.json')}; the runtime uses defaults")
