"""What every `mnist-edge bundle` target shares: the model check and the shape of a result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click

from mnist_edge.runtime.classifier import TFLITE_IDENTIFIER, sha256_of


@dataclass
class Built:
    """What a target wrote, for the command to report."""

    artifacts: list[Path]  # the archive first, then anything else written (e.g. the folder)
    top: str  # the folder name inside the archive
    files: dict[str, int]  # path inside `top` -> size in bytes
    notes: list[str] = field(default_factory=list)  # target-specific lines (measurements)
    next_steps: list[str] = field(default_factory=list)


def next_step_lines(templates: list[str], **paths: Path) -> list[str]:
    """A target's next-step lines with the paths just written filled in ({archive}, {folder})."""
    return [line.format(**paths) for line in templates]


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
