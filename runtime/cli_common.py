"""What the runtime's commands share: the model options and loading the classifier.

Nothing here imports TensorFlow: the interpreter comes from `mnist_edge.runtime.classifier`
(LiteRT), the pixels from OpenCV and Pillow. Every bad input gets a one-line error naming it;
`predict` goes on with the other inputs and exits 1 at the end if any failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click
import cv2

from mnist_edge.runtime.classifier import DEFAULT_MODEL, DigitClassifier, ModelError, default_model


def model_options(command: Callable) -> Callable:
    """The options predict and live share: model, threads, confidence, verbosity."""
    options = [
        click.option(
            "--model",
            type=click.Path(dir_okay=True, path_type=Path),
            default=None,
            help=f"The .tflite model.  [default: {DEFAULT_MODEL}, else the packaged one]",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="Interpreter threads (default: the interpreter's choice).",
        ),
        click.option(
            "--min-confidence",
            type=click.FloatRange(0.0, 1.0),
            default=0.0,
            show_default=True,
            help="Digits below it are marked weak.",
        ),
        click.option("--drop-weak", is_flag=True, help="Leave weak digits out entirely."),
        click.option("--verbose", "-v", is_flag=True, help="Say which model and interpreter."),
        # Read by load_classifier from the context, so the commands need no extra parameter.
        click.option(
            "--ignore-card",
            is_flag=True,
            expose_value=False,
            callback=lambda ctx, _param, value: ctx.meta.__setitem__(IGNORE_CARD, value),
            help="Run the model even if its card (the .json beside it) does not match it.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


IGNORE_CARD = "mnist_edge.ignore_card"


def load_classifier(model: Path | None, threads: int | None, verbose: bool) -> DigitClassifier:
    # OpenCV and FFmpeg log decoder complaints to stderr; our one-line errors say it better.
    if not verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg starts
    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_WARNING if verbose else cv2.utils.logging.LOG_LEVEL_SILENT
    )
    try:
        context = click.get_current_context(silent=True)
        ignore_card = bool(context and context.meta.get(IGNORE_CARD))
        classifier = DigitClassifier(model or default_model(), threads, ignore_card)
    except ModelError as error:
        raise click.ClickException(str(error)) from None
    if verbose:
        click.echo(f"model: {classifier.describe()}", err=True)
        if classifier.card_warning:
            click.echo(classifier.card_warning, err=True)
    return classifier
