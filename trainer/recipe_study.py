"""The augmentation study behind `mnist-edge train`'s default recipe (docs/recipe.md).

    nice -n 10 python -m mnist_edge.trainer.recipe_study [--runs NAME,...] [--seeds 0]
        [--usps FILE] [--photos DIR] [--json FILE] [--figures DIR]

Trains the seed's network (10 epochs, batch 32, Adam with cosine decay) with each candidate
distortion and measures it on data that is *not* MNIST's test set (loaded, never used):

- MNIST's validation split (the 5,000 training images `train` holds out);
- USPS's training split (7,291 postal digits, in MNIST's layout as `--eval-dir` reads them);
- digit crops from the real photos (`../shared/data/real_photos`), the camera path: each
  photo whose crops (`find_digit_crops`) are as many as its label's digits, paired in
  reading order. Optional: skipped when the folder is missing.

Prints one row per run and writes every number as JSON, and two figures: the validation and
USPS accuracy of each run, and a sheet of distorted training digits for the default.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from mnist_edge.trainer.augment import DEFAULT_DISTORTION, Distortion, distort
from mnist_edge.trainer.data import load_mnist, scale_pixels
from mnist_edge.trainer.usps import DEFAULT_USPS, usps_in_mnist_layout

DEFAULT_PHOTOS = Path("../shared/data/real_photos")
BASE = Distortion(
    rotation_deg=10, shear=0.25, scale=0.12, aspect=0.08, shift_px=1.5, pen=0.5, elastic_px=0
)
OFF = Distortion(0, 0, 0, 0, 0, 0, 0)


def scaled(d: Distortion, factor: float) -> Distortion:
    return Distortion(**{k: v * factor for k, v in d.describe().items()})


# One factor at a time around BASE, then BASE scaled, with elastic wobble, and variations.
RUNS: dict[str, Distortion | None] = {
    "plain": None,
    "rotation 10": replace(OFF, rotation_deg=10),
    "shear 0.25": replace(OFF, shear=0.25),
    "scale 0.12 + aspect 0.08": replace(OFF, scale=0.12, aspect=0.08),
    "shift 1.5": replace(OFF, shift_px=1.5),
    "pen 0.5": replace(OFF, pen=0.5),
    "elastic 1.0": replace(OFF, elastic_px=1.0),
    "all x0.5": scaled(BASE, 0.5),
    "all x1 (base)": BASE,
    "all x1.5": scaled(BASE, 1.5),
    "base + elastic 0.5": replace(BASE, elastic_px=0.5),
    "base + elastic 1.0": replace(BASE, elastic_px=1.0),
    "base without shift": replace(BASE, shift_px=0),
    "base with pen 1.0": replace(BASE, pen=1.0),
    "base with rotation 15 shear 0.35": replace(BASE, rotation_deg=15, shear=0.35),
    # Round two, after the first: elastic alone led, pen width alone did nothing.
    "elastic 1.5": replace(OFF, elastic_px=1.5),
    "elastic 2.0": replace(OFF, elastic_px=2.0),
    "shift 1.5 + elastic 1.0": replace(OFF, shift_px=1.5, elastic_px=1.0),
    "rotation + shift + elastic 1.0": replace(OFF, rotation_deg=10, shift_px=1.5, elastic_px=1.0),
    "base without pen": replace(BASE, pen=0),
    "base without pen + elastic 1.0": replace(BASE, pen=0, elastic_px=1.0),
    "all x0.5 + elastic 1.0": replace(scaled(BASE, 0.5), elastic_px=1.0),
}


def photo_crops(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 [N, 28, 28], labels) of the photos whose crop count matches their label."""
    labels_csv = folder / "labels.csv"
    if not labels_csv.is_file():
        return None
    from mnist_edge.runtime.images import read_image
    from mnist_edge.runtime.preprocess import find_digit_crops

    images, labels = [], []
    with labels_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            crops = find_digit_crops(read_image(folder / row["file"]))
            if len(crops) == len(row["text"]):
                images += [np.rint(crop * 255).astype(np.uint8) for _, crop in crops]
                labels += [int(c) for c in row["text"]]
    return np.stack(images), np.array(labels, np.uint8)


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    probabilities = model.predict(scale_pixels(images), batch_size=1024, verbose=0)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def save_accuracy_figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["run"] for r in results))
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.42 * len(names) + 1.5), sharey=True)
    for ax, key, title in (
        (axes[0], "validation", "MNIST validation split (5,000)"),
        (axes[1], "usps", "USPS training split (7,291), MNIST layout"),
        (axes[2], "photos", "real-photo crops (262; noisy)"),
    ):
        for i, name in enumerate(names):
            values = [100 * r[key] for r in results if r["run"] == name and r[key] is not None]
            if not values:
                continue
            ax.plot(values, [i] * len(values), "o", color="C0" if name != "plain" else "C3")
            ax.plot([np.mean(values)], [i], "|", color="k", markersize=14)
        ax.set_title(title)
        ax.set_xlabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels(names)
    axes[0].invert_yaxis()
    fig.suptitle("784-128-10, 10 epochs, batch 32, Adam: each distortion (dots: seeds, bar: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_distortion_sheet(images: np.ndarray, d: Distortion, path: Path, copies: int = 7) -> None:
    """Each row: one training digit, then `copies` random distortions of it."""
    import cv2

    rng = np.random.default_rng(0)
    rows = [
        np.concatenate([image, *distort(np.repeat(image[None], copies, 0), rng, d)], 1)
        for image in images
    ]
    sheet = np.concatenate(rows, 0)
    cv2.imwrite(str(path), cv2.resize(sheet, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST))


def extra_weight_study(
    data,
    x_usps: np.ndarray,
    y_usps: np.ndarray,
    sizes: list[int],
    weights: list[int],
    seeds: list[int],
) -> list[dict]:
    """USPS as a user's own digits: `size` of them (stratified) mixed in with each weight,
    measured on MNIST's validation split and on the USPS digits left out."""
    from mnist_edge.trainer.digit_folders import DigitSet
    from mnist_edge.trainer.train import fit_model, mix_in, split_extra, split_validation

    usps = DigitSet(x_usps, y_usps, [], "usps", "")
    rows = []
    for seed in seeds:
        train_idx, val_idx = split_validation(len(data.x_train), seed)
        x_val, y_val = data.x_train[val_idx], data.y_train[val_idx]
        for size in sizes:
            _, picked = split_extra(usps, min(size / len(y_usps), 1.0), seed)
            rest = np.setdiff1d(np.arange(len(y_usps)), picked)
            for weight in weights:
                x, y, pool = mix_in(
                    data.x_train[train_idx], data.y_train[train_idx].astype(np.int32),
                    x_usps[picked], y_usps[picked], weight,
                )  # fmt: skip
                fit = fit_model(
                    x, y, scale_pixels(x_val), y_val.astype(np.int32), seed=seed, quiet=True,
                    pool=pool,
                )  # fmt: skip
                row = {
                    "seed": seed,
                    "extra_images": len(picked),
                    "weight": weight,
                    "validation": accuracy(fit.model, x_val, y_val),
                    "usps_left_out": accuracy(fit.model, x_usps[rest], y_usps[rest]),
                    "usps_left_out_size": len(rest),
                    "fit_seconds": round(fit.seconds, 2),
                }
                rows.append(row)
                click.echo(
                    f"seed {seed}: USPS extra {len(picked):5d} x{weight}  validation "
                    f"{row['validation']:.2%}  USPS left out ({len(rest)}) "
                    f"{row['usps_left_out']:.2%}"
                )
    return rows


@click.command()
@click.option("--runs", default=",".join(RUNS), help="Comma-separated names from RUNS, or none.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--usps", "usps_path", type=click.Path(path_type=Path), default=DEFAULT_USPS)
@click.option("--photos", type=click.Path(path_type=Path), default=DEFAULT_PHOTOS)
@click.option(
    "--extra-sizes",
    default="",
    help="Also: USPS digits (counts, comma-separated) as --extra-data, with each of "
    "--extra-weights; measured on MNIST validation and the USPS digits left out.",
)
@click.option("--extra-weights", default="1,2,4", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option(
    "--include",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="Results of earlier runs (their --json) to add to this JSON and the figures.",
)
@click.option("--figures", type=click.Path(path_type=Path, file_okay=False), default=None)
def main(
    runs: str,
    seeds: str,
    data_dir: Path | None,
    usps_path: Path,
    photos: Path,
    extra_sizes: str,
    extra_weights: str,
    json_path: Path | None,
    include: tuple[Path, ...],
    figures: Path | None,
) -> None:
    """Train with each candidate distortion; report validation, USPS and photo accuracy."""
    from mnist_edge.trainer.train import fit_model, split_validation

    names = [n.strip() for n in runs.split(",") if n.strip()]
    if runs == "none":
        names = []
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise click.ClickException(f"--runs: unknown {', '.join(unknown)}; see RUNS")
    data = load_mnist(data_dir)  # only its training half is used below
    x_usps, y_usps = usps_in_mnist_layout(usps_path)
    photo_set = photo_crops(photos)
    click.echo(
        f"USPS {len(y_usps)} digits; photo crops "
        f"{'none' if photo_set is None else len(photo_set[1])}"
    )
    results = []
    for seed in [int(s) for s in seeds.split(",")]:
        train_idx, val_idx = split_validation(len(data.x_train), seed)
        x_train, y_train = data.x_train[train_idx], data.y_train[train_idx].astype(np.int32)
        x_val, y_val = data.x_train[val_idx], data.y_train[val_idx]
        for name in names:
            fit = fit_model(
                x_train,
                y_train,
                scale_pixels(x_val),
                y_val.astype(np.int32),
                seed=seed,
                distortion=RUNS[name],
                quiet=True,
            )
            row = {
                "run": name,
                "seed": seed,
                "distortion": None if RUNS[name] is None else RUNS[name].describe(),
                "validation": accuracy(fit.model, x_val, y_val),
                "usps": accuracy(fit.model, x_usps, y_usps),
                "photos": None if photo_set is None else accuracy(fit.model, *photo_set),
                "train_accuracy_last_epoch": fit.history[-1]["accuracy"],
                "fit_seconds": round(fit.seconds, 2),
            }
            results.append(row)
            photos_text = "-" if row["photos"] is None else f"{row['photos']:.2%}"
            click.echo(
                f"{name:32s} seed {seed}  validation {row['validation']:.2%}  "
                f"USPS {row['usps']:.2%}  photos {photos_text}  fit {row['fit_seconds']:.1f} s"
            )
    extra_rows = []
    if extra_sizes:
        sizes = [int(s) for s in extra_sizes.split(",")]
        weights = [int(w) for w in extra_weights.split(",")]
        extra_rows = extra_weight_study(
            data, x_usps, y_usps, sizes, weights, [int(s) for s in seeds.split(",")]
        )
    earlier_results, earlier_extra = [], []
    for earlier in include:  # in the order given, before this run's
        previous = json.loads(earlier.read_text())
        earlier_results += previous["results"]
        earlier_extra += previous.get("extra_data", [])
    results, extra_rows = earlier_results + results, earlier_extra + extra_rows
    if json_path:
        summary = {
            "recipe": "784-128-10, 10 epochs, batch 32, Adam cosine 3e-3",
            "usps_size": len(y_usps),
            "photo_crops": None if photo_set is None else len(photo_set[1]),
            "results": results,
            "extra_data": extra_rows,
            "created": time.strftime("%Y-%m-%d"),
        }
        json_path.write_text(json.dumps(summary, indent=2) + "\n")
    if figures:
        figures.mkdir(parents=True, exist_ok=True)
        save_accuracy_figure(results, figures / "recipe_study.png")
        save_distortion_sheet(data.x_train[:10], DEFAULT_DISTORTION, figures / "distortions.png")


if __name__ == "__main__":
    main()
