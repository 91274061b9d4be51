"""`mnist-edge predict`, `live` and `bench`: the runtime's commands.

Nothing here imports TensorFlow: the interpreter comes from `mnist_edge.runtime.classifier`
(LiteRT), the pixels from OpenCV and Pillow. Every bad input gets a one-line error naming it;
`predict` goes on with the other inputs and exits 1 at the end if any failed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import click
import cv2
import numpy as np
from mnist_edge.runtime.camera import CameraError, open_source
from mnist_edge.runtime.classifier import DEFAULT_MODEL, DigitClassifier, ModelError, default_model
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.images import MAX_PIXELS, ImageReadError, expand_inputs, read_image
from mnist_edge.runtime.live import VideoRecorder, Window, draw_results, print_json_line, run_live


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
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_classifier(model: Path | None, threads: int | None, verbose: bool) -> DigitClassifier:
    # OpenCV and FFmpeg log decoder complaints to stderr; our one-line errors say it better.
    if not verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg starts
    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_WARNING if verbose else cv2.utils.logging.LOG_LEVEL_SILENT
    )
    try:
        classifier = DigitClassifier(model or default_model(), threads=threads)
    except ModelError as error:
        raise click.ClickException(str(error)) from None
    if verbose:
        click.echo(f"model: {classifier.describe()}", err=True)
        if classifier.card_warning:
            click.echo(classifier.card_warning, err=True)
    return classifier


# -- predict ------------------------------------------------------------------------------------


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


# -- live ---------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--source",
    default="0",
    show_default=True,
    help="Camera index (0), a video file, a stream URL (rtsp://, http://) or 'picamera2'.",
)
@model_options
@click.option("--headless", is_flag=True, help="No window (servers, tests, SSH sessions).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per processed frame.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Record the annotated video (.mp4, .avi, .mov, .m4v).",
)
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N.")
@click.option("--mirror", is_flag=True, help="Flip frames left-right (a selfie camera).")
@click.option(
    "--snapshot-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=".",
    show_default=True,
    help="Where the s key saves snapshots.",
)
def live(
    source: str,
    model: Path | None,
    threads: int | None,
    min_confidence: float,
    drop_weak: bool,
    verbose: bool,
    headless: bool,
    as_json: bool,
    output: Path | None,
    max_frames: int | None,
    mirror: bool,
    snapshot_dir: Path,
) -> None:
    """Read digits live from a camera or a video file.

    Window keys: q or Esc quit, s saves a snapshot, p pauses (and p again resumes).

    A camera is read in a background thread that keeps only the newest frame (no lag); a video
    file is processed frame by frame, every frame, in order, and the command ends at its end.
    """
    classifier = load_classifier(model, threads, verbose)
    try:
        # Nothing drawn, nothing recorded: the colours are never needed, and the reader
        # thread converts each frame to grey beside decoding.
        frames = open_source(source, grey=headless and output is None)
    except CameraError as error:
        raise click.ClickException(str(error)) from None
    recorder = window = None
    try:
        if output is not None:
            recorder = VideoRecorder(output, frames.fps)
        if not headless:
            window = Window(f"mnist-edge live - {classifier.name}", snapshot_dir)
        stats = run_live(
            frames,
            classifier,
            min_confidence=min_confidence,
            drop_weak=drop_weak,
            window=window,
            recorder=recorder,
            on_result=print_json_line if as_json else None,
            max_frames=max_frames,
            mirror=mirror,
        )
    except CameraError as error:
        raise click.ClickException(str(error)) from None
    finally:
        frames.close()
        if window is not None:
            window.close()
        if recorder is not None:
            recorder.close()
    if recorder is not None and recorder.frames:
        click.echo(f"recorded {recorder.frames} frames to {recorder.path}", err=True)
    if verbose:
        rate = stats.frames / stats.seconds if stats.seconds > 0 else 0.0
        click.echo(f"{stats.frames} frames in {stats.seconds:.2f} s ({rate:.1f} FPS)", err=True)
    if stats.error:
        raise click.ClickException(stats.error)


# -- bench --------------------------------------------------------------------------------------


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
    verbose: bool,
) -> None:
    """Time the runtime on this machine (medians).

    \b
    - one digit at batch 1, and batched throughput (256 digits per call);
    - one 640x480 frame with 3-5 digits: preprocessing plus inference;
    - the live loop on a video file against decoding the file alone.
    Frames are drawn here (no MNIST needed); --frame and --video take your own.
    """
    from mnist_edge.runtime.bench import format_table, run_benchmarks, synthetic_frame

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
