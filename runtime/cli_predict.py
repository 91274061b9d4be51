"""`mnist-edge predict`: the digits in image files, one row (or JSON line) per input.

A file that cannot be used gets an error row and the others go on; the exit status is 1 at the
end if any failed. The per-file work is `runtime.batch` (here or in `--jobs` worker processes);
this module is the command: its options, the table and JSON lines, the progress bar, and where
annotated copies go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from mnist_edge.runtime.batch import ReadOptions, Task, run_tasks
from mnist_edge.runtime.classifier import ModelError
from mnist_edge.runtime.cli_common import IGNORE_CARD, load_classifier, model_options
from mnist_edge.runtime.crop_files import save_crops as write_crops
from mnist_edge.runtime.digits import FrameResult
from mnist_edge.runtime.images import MAX_PIXELS
from mnist_edge.runtime.inputs import ImageInput, expand_inputs, shown_path

NUMBER_WIDTH = 10  # the table's number column; a longer number puts its digits on a new line
HANDFUL = 10  # more inputs than this, and stderr a terminal: a progress bar


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
    "--save-crops",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write every digit's 28x28 input into this folder, as DIR/<predicted digit>/*.png "
    "(white on black, the form `train --extra-data` reads; check the folders first).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Refuse larger images before decoding them.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Worker processes (0: one per core). Output is the same, in input order.",
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
    save_crops: Path | None,
    max_pixels: int,
    jobs: int,
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
    if save_crops is not None:
        try:
            save_crops.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = f"{save_crops}: cannot create the folder ({error.strerror})"
            raise click.ClickException(reason) from None
    targets = annotated_targets(inputs, save_annotated)
    tasks = [
        Task(item.shown, item.path, item.error, target)
        for item, target in zip(inputs, targets, strict=True)
    ]
    readable = sum(task.error is None for task in tasks)
    jobs = min(jobs or os.cpu_count() or 1, max(1, readable))
    options = ReadOptions(max_pixels, min_confidence, drop_weak, quiet=not verbose)
    # Several workers share the cores: one interpreter thread each, unless told otherwise.
    ignore_card = bool(ctx.meta.get(IGNORE_CARD))
    outcomes = run_tasks(tasks, classifier, options, jobs, threads or 1, ignore_card)

    width = max(len(table_path(item.shown)) for item in inputs)
    if not as_json:
        click.echo(f"{'path':<{width}}  {'number':<{NUMBER_WIDTH}}  digits (confidence; ? = weak)")
    failed = 0
    with Output(len(tasks)) as out, _model_errors_end_the_run():
        for outcome in outcomes:
            task, result, error = outcome.task, outcome.result, outcome.error
            if save_crops is not None and result is not None and error is None:
                try:
                    write_crops(save_crops, task.shown, result)
                except OSError as write_error:
                    error = f"cannot write the crops ({write_error})"
            failed += error is not None
            if verbose and task.annotated is not None and error is None:
                where = shown_path(str(task.annotated))
                out.echo(f"annotated: {shown_path(task.shown)} -> {where}", err=True)
            if as_json:
                line = {"path": shown_path(task.shown), **(result.to_json() if result else {})}
                if error is not None:
                    line["error"] = error
                out.echo(json.dumps(line))
            else:
                out.echo(table_row(table_path(task.shown), width, result, error))
            out.done()
    if failed:
        click.echo(f"Error: {failed} of {len(inputs)} inputs failed", err=True)
        ctx.exit(1)


@contextlib.contextmanager
def _model_errors_end_the_run() -> Iterator[None]:
    """A model that hangs or fails (not merely a bad output for one image): nothing can go
    on, one line and exit 1."""
    try:
        yield
    except ModelError as error:
        raise click.ClickException(str(error)) from None


def table_row(shown: str, width: int, result: FrameResult | None, error: str | None) -> str:
    """path, number, digits; a number too long for its column puts the digits on a new line
    under their column, so every row's columns stay aligned."""
    if result is None:
        return f"{shown:<{width}}  {'-':<{NUMBER_WIDTH}}  error: {error}"
    digits = "  ".join(
        f"{d.digit}{'?' if d.weak else ''} ({d.confidence:.2f})" for d in result.digits
    )
    digits = digits or "no digits found"
    if error is not None:
        digits = f"{digits}  error: {error}"
    text = result.text or "-"
    if len(text) > NUMBER_WIDTH:
        return f"{shown:<{width}}  {text}\n{'':<{width}}  {'':<{NUMBER_WIDTH}}  {digits}"
    return f"{shown:<{width}}  {text:<{NUMBER_WIDTH}}  {digits}"


def table_path(shown: str) -> str:
    """A path for the table: bytes as shown_path, and control characters escaped (a newline
    in a file name must not start a row)."""
    text = shown_path(shown)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Output:
    """Lines to stdout/stderr, around a progress bar on stderr when there is one.

    The bar (files done, files/s, time left) is drawn only with more than HANDFUL inputs and
    stderr a terminal; it is cleared before a line is printed to the same terminal and redrawn
    after, so it never lands in the output.
    """

    def __init__(self, total: int) -> None:
        self.stderr = click.get_text_stream("stderr")
        self.bar = None
        if total > HANDFUL and self.stderr.isatty():
            self.start = time.monotonic()
            self.clear_for_stdout = sys.stdout.isatty()
            self.bar = click.progressbar(
                length=total, label="reading", file=self.stderr, show_pos=True,
                item_show_func=self._rate,
            )  # fmt: skip

    def __enter__(self) -> Output:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)

    def echo(self, line: str, err: bool = False) -> None:
        if self.bar is not None and (err or self.clear_for_stdout):
            self.stderr.write("\r\033[K")  # clear the bar's line first
        click.echo(line, err=err)

    def done(self) -> None:
        """One more input done: the bar moves (and is redrawn)."""
        if self.bar is not None:
            self.bar.update(1)

    def _rate(self, _: object) -> str:
        seconds = max(time.monotonic() - self.start, 1e-6)
        return f"{self.bar.pos / seconds:.1f} files/s"


def annotated_targets(inputs: list[ImageInput], folder: Path | None) -> list[Path | None]:
    """Where each input's annotated copy goes: never two inputs to one file.

    A relative path keeps its place under the folder (scans/a.jpg -> DIR/scans/a.png), and so
    does a file found in a folder given by its absolute path (/data/scans + a.jpg ->
    DIR/a.png). Any other absolute path or one out of the folder (..), and an input that would
    land on a name already taken (x.png and x.jpg, or a file given twice), gets its name plus
    a short hash of the path as given, and a counter if even that is taken: stable from run to
    run for the same arguments.
    """
    if folder is None:
        return [None] * len(inputs)
    taken: set[str] = set()
    targets: list[Path | None] = []
    for item in inputs:
        if item.error is not None:
            targets.append(None)
            continue
        path = Path(item.shown)
        if path.is_absolute() and item.inside is not None:
            path = Path(item.inside)
        parts = path.parts
        inside = not path.is_absolute() and ".." not in parts and not path.drive
        natural = folder.joinpath(*parts).with_suffix(".png") if inside and parts else None
        if natural is None or natural.as_posix().casefold() in taken:
            digest = hashlib.sha1(os.fsencode(item.shown)).hexdigest()[:8]
            where = natural.parent if natural is not None else folder
            natural = where / f"{path.stem}-{digest}.png"
        target, n = natural, 1
        while target.as_posix().casefold() in taken:
            n += 1
            target = natural.with_name(f"{natural.stem}-{n}.png")
        taken.add(target.as_posix().casefold())
        targets.append(target)
    return targets
