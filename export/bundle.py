"""`mnist-edge bundle`: pack a model for one kind of device. The targets are a table: adding a
device is adding a row (its builder lives in its own folder, export/<target>/, with its
templates). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from mnist_edge.export.bundle_common import Built, check_model
from mnist_edge.runtime.classifier import DEFAULT_MODEL, default_model
from mnist_edge.trainer.cli import writable_folder


def build_rpi(model: Path, card: Path | None, out: Path, source: Path | None) -> Built:
    from mnist_edge.export.rpi.package import build_rpi_bundle

    return build_rpi_bundle(model, card, out, source)


def build_micro(model: Path, card: Path | None, out: Path, source: Path | None) -> Built:
    from mnist_edge.export.micro.package import build_micro_bundle  # numpy, TFLM

    return build_micro_bundle(model, card, out, source)


@dataclass
class Target:
    device: str  # for --help
    writes: str  # what lands in --out, for --help
    build: Callable[[Path, Path | None, Path, Path | None], Built]
    builds_wheel: bool = False  # uses --source


TARGETS = {
    "rpi": Target(
        "Raspberry Pi 3/4/5 with 64-bit Raspberry Pi OS",
        "dist/mnist-edge-rpi.tar.gz: models/ (model + card), the mnist-edge wheel (no "
        "TensorFlow), pinned aarch64 requirements, install.sh, a systemd unit, README-rpi.md. "
        "On the Pi: tar xzf mnist-edge-rpi.tar.gz && cd mnist-edge-rpi && ./install.sh",
        build_rpi,
        builds_wheel=True,
    ),
    "micro": Target(
        "a microcontroller with TensorFlow Lite Micro (Arduino, ESP-IDF, Pico SDK)",
        "dist/mnist-edge-micro/ and .zip: mnist_model_data.h/.cc (the model as a const array), "
        "mnist_model_settings.h (shapes, quantization, labels, ops, kTensorArenaSize measured "
        "in TFLM), README-micro.md, the card. Integer-only int8 models; needs the micro extra "
        "(tflite-micro).",
        build_micro,
    ),
}


def targets_help() -> str:
    return "; ".join(f"{name}: {target.device}" for name, target in TARGETS.items())


def command_help() -> str:
    """The command's --help text, one paragraph per row of TARGETS."""
    lines = ["Pack a model and what the device needs to run it.", "", "\b"]
    for name, target in TARGETS.items():
        wrapped = textwrap.wrap(f"{target.device}. {target.writes}", 72, break_on_hyphens=False)
        lines.append(f"--target {name:<6} {wrapped[0][0].upper()}{wrapped[0][1:]}")
        lines += [f"{'':16}{line}" for line in wrapped[1:]]
    return "\n".join(lines)


@click.command(help=command_help())
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The .tflite model to ship; its card (same name, .json) goes along when present. "
    f"[default: {DEFAULT_MODEL} here if present, else the packaged one]",
)
@click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default="rpi",
    show_default=True,
    help=f"The device. {targets_help()}.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder for the bundle.",
)
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="rpi: the mnist-edge source checkout to build the wheel from [default: the one this "
    "mnist-edge is installed from, if it is an editable install].",
)
def bundle(model: Path | None, target: str, out: Path, source: Path | None) -> None:
    chosen = TARGETS[target]
    if source is not None and not chosen.builds_wheel:
        raise click.UsageError(f"--source is for targets that build the wheel, not {target}")
    model = model if model is not None else default_model()
    card = check_model(model)
    writable_folder(out)
    built = chosen.build(model, card, out, source)
    first = built.artifacts[0]
    also = "".join(f", and {path}/" for path in built.artifacts[1:] if path.is_dir())
    click.echo(f"{first}: {first.stat().st_size / 1e6:.2f} MB, for target {target}{also}")
    for name, size in built.files.items():
        click.echo(f"  {built.top}/{name:<36} {size / 1e3:>8.1f} kB")
    if card is None:
        click.echo(f"note: no card {model.with_suffix('.json')}; defaults are used")
    for line in built.notes:
        click.echo(line)
    click.echo("next steps:")
    for line in built.next_steps:
        click.echo(f"  {line}")
