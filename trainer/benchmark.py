"""Benchmark `mnist-edge train` against the plain seed recipe, both as whole processes.

    python -m mnist_edge.trainer.benchmark [--repeats 3] [--data-dir DIR] [--json FILE]

The plain script is the seed tutorial (`model.compile(optimizer="adam", ...)`,
`model.fit(x, y, epochs=10, batch_size=32)`), loading MNIST with our loader (Keras's
download needs the internet). It runs twice per round: as written (Keras's default
progress bar) and with `verbose=2` (one line per epoch, as `mnist-edge train` logs off a
terminal), which is the stricter baseline since it does not pay for a progress bar.
`mnist-edge train` runs with its defaults (augmentation on) and with `--no-augment`, to show
what the distortions cost. The four processes alternate, `--repeats` rounds, and medians are
reported: the ratios come from one run on one machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

PLAIN_SCRIPT = """
import time
import keras
from mnist_edge.trainer.data import load_mnist
data = load_mnist({data_dir!r})
x_train, x_test = data.x_train / 255.0, data.x_test / 255.0
model = keras.Sequential([
    keras.Input((28, 28)),
    keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
started = time.perf_counter()
model.fit(x_train, data.y_train, epochs=10, batch_size=32{verbose})
fit_seconds = time.perf_counter() - started
loss, accuracy = model.evaluate(x_test, data.y_test, verbose=0)
print("RESULT", fit_seconds, accuracy)
"""


def run_process(args: list[str]) -> tuple[float, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(args[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


@click.command()
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the measurements as JSON here.",
)
def main(repeats: int, data_dir: Path | None, json_path: Path | None) -> None:
    """Time the plain seed recipe and `mnist-edge train`, alternating, and print ratios."""
    # A str: its repr goes into the plain script.
    data_dir = str(data_dir) if data_dir else os.environ.get("MNIST_DATA_DIR")
    plain_variants = {"plain": "", "plain_verbose2": ", verbose=2"}
    ours_variants = {"mnist_edge": [], "mnist_edge_no_augment": ["--no-augment"]}
    runs = {
        name: {"process": [], "fit": [], "accuracy": []}
        for name in (*plain_variants, *ours_variants)
    }
    with tempfile.TemporaryDirectory() as out:
        for i in range(repeats):
            for name, verbose in plain_variants.items():
                script = PLAIN_SCRIPT.format(data_dir=data_dir, verbose=verbose)
                seconds, stdout = run_process([sys.executable, "-c", script])
                fit, accuracy = map(float, stdout.split("RESULT")[1].split())
                runs[name]["process"].append(seconds)
                runs[name]["fit"].append(fit)
                runs[name]["accuracy"].append(accuracy)

            for name, options in ours_variants.items():
                command = [sys.executable, "-m", "mnist_edge", "train", "--out", out, "--quiet"]
                if data_dir:
                    command += ["--data-dir", str(data_dir)]
                seconds, _ = run_process(command + options)
                metrics = json.loads((Path(out) / "mnist_dense.train.json").read_text())
                runs[name]["process"].append(seconds)
                runs[name]["fit"].append(metrics["train_seconds"])
                runs[name]["accuracy"].append(metrics["test_accuracy"])
            click.echo(
                f"round {i + 1}/{repeats}: "
                + "; ".join(
                    f"{name} fit {r['fit'][-1]:.1f} s, process {r['process'][-1]:.1f} s, "
                    f"acc {r['accuracy'][-1]:.4f}"
                    for name, r in runs.items()
                )
            )

    median = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()}
    ratios = {
        f"{kind}_ratio{'' if ours == 'mnist_edge' else '_no_augment'}_vs_{name}": (
            median[ours][kind] / median[name][kind]
        )
        for ours in ours_variants
        for name in plain_variants
        for kind in ("fit", "process")
    }
    click.echo(
        f"\nmedians of {repeats} rounds  plain (as written)  plain (verbose=2)  mnist-edge"
        "  --no-augment"
    )
    for kind, label in (
        ("fit", "fit (s)"),
        ("process", "whole process (s)"),
        ("accuracy", "test accuracy"),
    ):
        click.echo(
            f"{label:24s} {median['plain'][kind]:18.4g} {median['plain_verbose2'][kind]:18.4g}"
            f" {median['mnist_edge'][kind]:11.4g} {median['mnist_edge_no_augment'][kind]:13.4g}"
        )
    for key, value in ratios.items():
        target = 0.25 if key.startswith("fit") else 0.40
        click.echo(f"{key:47s} {value:5.3f}  (target <= {target})")
    if json_path:
        result = {
            "repeats": repeats,
            "runs": runs,
            "median": median,
            **ratios,
            "cpu_count": os.cpu_count(),
        }
        json_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
