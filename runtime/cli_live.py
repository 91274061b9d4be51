"""`mnist-edge live`: digits from a camera, a stream or a video file, in a window or headless."""

from __future__ import annotations

from pathlib import Path

import click

from mnist_edge.runtime.camera import CameraError, open_source
from mnist_edge.runtime.cli_common import load_classifier, model_options
from mnist_edge.runtime.live import (
    VideoRecorder,
    Window,
    print_json_line,
    run_live,
    stop_signals_as_ctrl_c,
)


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
@stop_signals_as_ctrl_c
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
    SIGTERM and SIGHUP stop it as Ctrl+C does, and the recording is kept.
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
