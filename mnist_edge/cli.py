"""The `mnist-edge` command: one click group, one subcommand per pipeline step.

Each stage keeps its commands in its own package (`mnist_edge.trainer.cli`,
`mnist_edge.export.cli`, `mnist_edge.runtime.cli_*`); this module only gathers them. None of those
modules imports TensorFlow at import time, so `mnist-edge --help` and the runtime commands start
fast and run on a device that only has the base install.
"""

import sys

import click

from mnist_edge.export.bundle import bundle
from mnist_edge.export.cli import export, run_all
from mnist_edge.runtime.cli_bench import bench
from mnist_edge.runtime.cli_live import live
from mnist_edge.runtime.cli_predict import predict
from mnist_edge.runtime.cli_serve import serve
from mnist_edge.trainer.cli import train


class Interrupted(click.ClickException):
    """Ctrl+C: one line and the shell's usual status for SIGINT, instead of click's 'Aborted!'."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")

    def show(self, file=None) -> None:
        # After the terminal's "^C", start a line of our own.
        newline = "\n" if sys.stderr.isatty() else ""
        click.echo(f"{newline}mnist-edge: interrupted", err=True)


class Commands(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mnist-edge", prog_name="mnist-edge")
def main() -> None:
    """Train a handwritten-digit model, quantize it to TFLite and run it on the edge.

    \b
    Pipeline:  train -> export -> predict / live / bench / bundle
    Main job:  mnist-edge all
    """


for command in (run_all, train, export, predict, live, serve, bench, bundle):
    main.add_command(command)


if __name__ == "__main__":
    main()
