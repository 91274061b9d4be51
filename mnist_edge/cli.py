"""The `mnist-edge` command: one click group, one subcommand per pipeline step.

Each stage keeps its commands in its own package (`mnist_edge.trainer.cli`,
`mnist_edge.export.cli`, `mnist_edge.runtime.cli_*`); this module only gathers them. None of those
modules imports TensorFlow at import time, so `mnist-edge --help` and the runtime commands start
fast and run on a device that only has the base install; a command's module is imported only
when that command runs.
"""

import importlib
import sys

import click

# Each command imported only when it runs (or `--help` lists them): `predict` on a batch of
# files starts without serve's HTTP server, live's recorder or the exporter's modules.
COMMANDS = {
    "all": "mnist_edge.export.cli:run_all",
    "train": "mnist_edge.trainer.cli:train",
    "export": "mnist_edge.export.cli:export",
    "predict": "mnist_edge.runtime.cli_predict:predict",
    "live": "mnist_edge.runtime.cli_live:live",
    "serve": "mnist_edge.runtime.cli_serve:serve",
    "bench": "mnist_edge.runtime.cli_bench:bench",
    "bundle": "mnist_edge.export.bundle:bundle",
}


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
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

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


if __name__ == "__main__":
    main()
