"""`mnist-edge predict`: the digits in image files, one row (or JSON line) per input.

A file that cannot be used gets an error row and the others go on; the exit status is 1 at the
end if any failed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.runtime.classifier import ModelError, ModelOutputError
from mnist_edge.runtime.cli_common import load_classifier, model_options
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.images import MAX_PIXELS, ImageReadError, expand_inputs, read_image
from mnist_edge.runtime.live import draw_results


@click.command()
@click.argument("paths", nargs=-1, required=True)
@model_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and input.")
@click.option(
    "--save-annotated",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each image with its boxes and digits drawn into this folder (as PNG).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Refuse larger images before decoding them.",
)
@click.pass_context
def predict(
    ctx: click.Context,
    paths: tuple[str, ...],
    model: Path | None,
    threads: int | None,
    min_confidence: float,
    drop_weak: bool,
    verbose: bool,
    as_json: bool,
    save_annotated: Path | None,
    max_pixels: int,
) -> None:
    """Read the digits in image files.

    PATH: image files (PNG, JPEG, BMP, TIFF, WebP, GIF), folders (searched recursively) and
    glob patterns such as 'scans/*.png' or 'scans/**/*.jpg'. One row per image; a file that
    cannot be read gets an error row and the others go on (exit status 1 at the end).
    """
    inputs = expand_inputs(paths)
    classifier = load_classifier(model, threads, verbose)
    if save_annotated is not None:
        try:
            save_annotated.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = f"{save_annotated}: cannot create the folder ({error.strerror})"
            raise click.ClickException(reason) from None
    width = max(len(item.shown) for item in inputs)
    if not as_json:
        click.echo(f"{'path':<{width}}  {'number':<8}  digits (confidence; ? = weak)")
    failed = 0
    for item in inputs:
        error = item.error
        result = None
        if error is None:
            try:
                image = read_image(item.path, max_pixels=max_pixels)
                result = recognize(
                    image, classifier, min_confidence=min_confidence, drop_weak=drop_weak
                )
                if save_annotated is not None:
                    save_annotated_image(save_annotated, item.shown, draw_results(image, result))
            except ImageReadError as read_error:
                error = read_error.reason
            except ModelOutputError as output_error:  # NaN or 75.2 for this image
                error = str(output_error)
            except ModelError as model_error:  # the model hangs or fails: nothing can go on
                raise click.ClickException(str(model_error)) from None
            except OSError as write_error:
                error = f"cannot write the annotated image ({write_error})"
        if error is not None:
            failed += 1
        if as_json:
            line = {"path": item.shown, **(result.to_json() if result is not None else {})}
            if error is not None:
                line["error"] = error
            click.echo(json.dumps(line))
        else:
            click.echo(table_row(item.shown, width, result, error))
    if failed:
        click.echo(f"Error: {failed} of {len(inputs)} inputs failed", err=True)
        ctx.exit(1)


def table_row(shown: str, width: int, result: FrameResult | None, error: str | None) -> str:
    if result is None:
        return f"{shown:<{width}}  {'-':<8}  error: {error}"
    digits = "  ".join(
        f"{d.digit}{'?' if d.weak else ''} ({d.confidence:.2f})" for d in result.digits
    )
    row = f"{shown:<{width}}  {result.text or '-':<8}  {digits or 'no digits found'}"
    return row if error is None else f"{row}  error: {error}"


def save_annotated_image(folder: Path, shown: str, image: np.ndarray) -> Path:
    """folder/<the input's path, made relative>.png, written atomically."""
    parts = [p for p in Path(shown).parts if p not in (os.sep, "..", ".") and not p.endswith(":")]
    target = folder.joinpath(*parts).with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{target}: PNG encoding failed")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(png.tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
