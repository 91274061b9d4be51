"""`mnist-edge export` and `mnist-edge all`. TensorFlow is imported inside the commands only."""

from __future__ import annotations

from pathlib import Path

import click

from mnist_edge.export.variants import INT8_IO_CHOICES, MIN_CALIBRATION_SAMPLES, VARIANTS
from mnist_edge.trainer.cli import (
    allow_custom_option,
    data_dir_option,
    load_data_or_exit,
    locked_output,
    tensorflow_or_exit,
)

DEFAULT_VARIANTS = ",".join(VARIANTS)

out_option = click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("models"),
    show_default=True,
    help="Folder for the .tflite files, their model cards and the report.",
)
max_drop_option = click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    default=None,
    metavar="PP",
    help="After writing everything, exit with status 1 if int8 accuracy is more than PP "
    "percentage points below float32 (a CI gate).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress output.")


def parse_variants(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise click.ClickException(
            f"--variants {text!r}: unknown variant {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(VARIANTS)}"
        )
    return list(dict.fromkeys(names))  # keep the order, drop repeats


eval_dir_option = click.option(
    "--eval-dir",
    "eval_dirs",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="DIR",
    help="Also measure every model on the labelled digits in DIR/0 ... DIR/9 (any size; "
    "put into MNIST's layout as the runtime does). Repeatable.",
)


def default_model_path(out: Path) -> Path:
    """`<out>/mnist_dense.keras` when `train --out` wrote one there, else models/'s."""
    beside = out / "mnist_dense.keras"
    return beside if beside.is_file() else Path("models/mnist_dense.keras")


def load_eval_sets(folders: tuple[Path, ...]) -> list:
    """Every --eval-dir read before any conversion starts; one-line errors naming the path."""
    from mnist_edge.trainer.cli import load_digit_folders_or_exit

    sets = [load_digit_folders_or_exit(folder) for folder in folders]
    seen: dict[str, int] = {}
    for digits in sets:  # two folders of one name ("a/usps", "b/usps") stay apart in reports
        seen[digits.name] = seen.get(digits.name, 0) + 1
        if seen[digits.name] > 1:
            digits.name = f"{digits.name} ({seen[digits.name]})"
    return sets


def check_model_file(path: Path) -> None:
    if not path.exists():
        raise click.ClickException(
            f"{path}: model file not found (train one with `mnist-edge train`)"
        )
    if not path.is_file():
        raise click.ClickException(f"{path}: is not a file (a .keras model file expected)")


@click.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The trained Keras model [default: <--out>/mnist_dense.keras if it exists, else "
    "models/mnist_dense.keras].",
)
@out_option
@click.option(
    "--variants",
    default=DEFAULT_VARIANTS,
    show_default=True,
    help="Comma-separated TFLite variants to write.",
)
@click.option(
    "--calibration-samples",
    type=int,
    default=500,
    show_default=True,
    help="Training images (stratified over the digits) that calibrate int8.",
)
@click.option(
    "--int8-io",
    type=click.Choice(INT8_IO_CHOICES),
    default="int8",
    show_default=True,
    help="The int8 file's input/output tensor type (float32: quantize inside the model).",
)
@max_drop_option
@eval_dir_option
@data_dir_option
@allow_custom_option
@quiet_option
def export(
    model_path: Path | None,
    out: Path,
    variants: str,
    calibration_samples: int,
    int8_io: str,
    max_drop: float | None,
    eval_dirs: tuple[Path, ...],
    data_dir: Path | None,
    allow_custom_data: bool,
    quiet: bool,
) -> None:
    """Convert the Keras model to TFLite variants, check and evaluate them, write a report.

    Writes mnist_<variant>.tflite with a model card mnist_<variant>.json for each variant, and
    report.json, report.md and report.html, into --out.
    """
    run_export_command(
        model_path or default_model_path(out),
        out,
        variants,
        calibration_samples,
        int8_io,
        max_drop,
        data_dir,
        allow_custom_data,
        quiet,
        eval_dirs,
    )


def run_export_command(
    model_path: Path,
    out: Path,
    variants: str = DEFAULT_VARIANTS,
    calibration_samples: int = 500,
    int8_io: str = "int8",
    max_drop: float | None = None,
    data_dir: Path | None = None,
    allow_custom_data: bool = False,
    quiet: bool = False,
    eval_dirs: tuple[Path, ...] = (),
) -> dict:
    """The `export` command's body (`all` calls it too): check inputs cheaply, then run."""
    names = parse_variants(variants)
    if "int8" in names and calibration_samples < MIN_CALIBRATION_SAMPLES:
        raise click.ClickException(
            f"--calibration-samples {calibration_samples}: too few, int8 calibration needs at "
            f"least {MIN_CALIBRATION_SAMPLES} (10 per digit)"
        )
    if max_drop is not None and not {"float32", "int8"} <= set(names):
        raise click.ClickException("--max-drop compares int8 with float32: export both variants")
    tensorflow_or_exit("export", check_only=True)
    check_model_file(model_path)
    eval_sets = load_eval_sets(eval_dirs)
    with locked_output(out, "export"):
        data = load_data_or_exit(data_dir, allow_custom_data)

        tensorflow_or_exit("export")
        from mnist_edge.export.pipeline import ExportOptions, run_export
        from mnist_edge.export.report import terminal_tables
        from mnist_edge.export.variants import ExportError

        options = ExportOptions(
            model_path, out, names, calibration_samples, int8_io, max_drop, quiet, eval_sets
        )
        if not quiet:
            click.echo(f"model: {model_path}")
        try:
            report = run_export(options, data)
        except ExportError as error:
            raise click.ClickException(str(error)) from None

    click.echo("\n" + terminal_tables(report))
    files = "1 .tflite file" if len(names) == 1 else f"{len(names)} .tflite files"
    cards = "its model card" if len(names) == 1 else "model cards"
    click.echo(
        f"\nexported {model_path}: wrote {files} with {cards} and report.json/.md/.html "
        f"into {out} in {report['export_seconds']:.1f} s"
    )
    drop = report["int8_drop_pp"]
    if max_drop is not None and drop > max_drop:
        raise click.ClickException(
            f"int8 accuracy is {drop:.2f} percentage points below float32, more than "
            f"--max-drop {max_drop:g} (every file and the report were written)"
        )
    return report


@click.command(name="all")
@data_dir_option
@allow_custom_option
@out_option
@max_drop_option
@eval_dir_option
@quiet_option
def run_all(
    data_dir: Path | None,
    allow_custom_data: bool,
    out: Path,
    max_drop: float | None,
    eval_dirs: tuple[Path, ...],
    quiet: bool,
) -> None:
    """The main job: train -> export -> report, with the default settings, into --out."""
    from mnist_edge.trainer.cli import run_train
    from mnist_edge.trainer.train import MODEL_FILENAME

    load_eval_sets(eval_dirs)  # a bad --eval-dir stops before training, not after it
    with locked_output(out, "all"):  # held from train to the end of export
        run_train(data_dir, allow_custom_data, out, quiet=quiet)
        run_export_command(
            out / MODEL_FILENAME,
            out,
            max_drop=max_drop,
            data_dir=data_dir,
            allow_custom_data=allow_custom_data,
            quiet=quiet,
            eval_dirs=eval_dirs,
        )
