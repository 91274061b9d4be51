"""`mnist-edge bench`: time the runtime on this machine (medians)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnist_edge.runtime.camera import CameraError, open_source
from mnist_edge.runtime.classifier import DEFAULT_MODEL
from mnist_edge.runtime.cli_common import load_classifier
from mnist_edge.runtime.images import ImageReadError, read_image
from mnist_edge.runtime.inputs import expand_inputs


@click.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=True, path_type=Path),
    default=None,
    help=f"The .tflite model.  [default: {DEFAULT_MODEL}, else the packaged one]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Interpreter threads.")
@click.option(
    "--frame",
    "frame_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Time this image instead of the synthetic 640x480 frame.",
)
@click.option(
    "--video",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Time the live loop on this video instead of a synthetic one.",
)
@click.option(
    "--video-size",
    default="640x480",
    show_default=True,
    help="Width x height of the synthetic video (decoding costs more at 1280x720).",
)
@click.option(
    "--video-frames",
    type=click.IntRange(min=1),
    default=150,
    show_default=True,
    help="Length of the synthetic video.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=5),
    default=200,
    show_default=True,
    help="Timed runs per number (x10 for batch 1).",
)
@click.option(
    "--files",
    "files_dir",
    default=None,
    help="Time `predict` over this folder (or file, or glob) instead, against decoding alone.",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="With --files: timed passes over the files.",
)
@click.option("--verbose", "-v", is_flag=True, help="Say which model and interpreter.")
def bench(
    model: Path | None,
    as_json: bool,
    threads: int | None,
    frame_path: Path | None,
    video: Path | None,
    video_size: str,
    video_frames: int,
    repeats: int,
    files_dir: str | None,
    passes: int,
    verbose: bool,
) -> None:
    """Time the runtime on this machine (medians).

    \b
    - one digit at batch 1, and batched throughput (256 digits per call);
    - one 640x480 frame with 3-5 digits: preprocessing plus inference;
    - the live loop on a video file against decoding the file alone.
    Frames are drawn here (no MNIST needed); --frame and --video take your own.
    --files DIR times `predict` on your own images instead: per file, against a plain
    cv2.imread of the same files (and cv2.imread + recognize).
    """
    from mnist_edge.runtime.bench import format_table, run_benchmarks, synthetic_frame

    if files_dir is not None:
        return bench_files(files_dir, model, threads, passes, as_json, verbose)

    width, _, height = video_size.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 64 and int(height) >= 64):
        raise click.BadParameter(f"{video_size!r} is not WIDTHxHEIGHT", param_hint="--video-size")
    classifier = load_classifier(model, threads, verbose)
    try:
        frame = synthetic_frame() if frame_path is None else read_image(frame_path)
    except ImageReadError as error:
        raise click.ClickException(str(error)) from None
    if video is not None:
        try:
            open_source(str(video)).close()  # a clear error before anything is timed
        except CameraError as error:
            raise click.ClickException(str(error)) from None
    results = run_benchmarks(
        classifier,
        frame,
        video=video,
        video_size=(int(height), int(width)),
        video_frames=video_frames,
        repeats=repeats,
    )
    click.echo(json.dumps(results) if as_json else format_table(results))


def bench_files(
    where: str, model: Path | None, threads: int | None, passes: int, as_json: bool, verbose: bool
) -> None:
    from mnist_edge.runtime.bench import files_benchmark, format_files_table

    inputs = expand_inputs([where])
    paths = [item.path for item in inputs if item.error is None and item.path is not None]
    if not paths:
        raise click.ClickException(f"{where}: {inputs[0].error if inputs else 'no images'}")
    classifier = load_classifier(model, threads, verbose)
    results = files_benchmark(paths, classifier, passes=passes)
    results.update(model=str(classifier.path), backend=classifier.backend)
    click.echo(json.dumps(results) if as_json else format_files_table(results))
