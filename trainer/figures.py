"""The trainer's two figures, drawn with matplotlib and written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_edge.trainer.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def save_sample_grid(
    images: np.ndarray, labels: np.ndarray, path: Path, rows: int = 4, cols: int = 8
) -> None:
    """The first training images with their labels, tiled into one image.

    One imshow of a montage instead of rows x cols subplots: the same picture, drawn in a
    fraction of the time (the figure is part of every `mnist-edge train`).
    """
    plt = _pyplot()
    n, pad = rows * cols, 4
    size = 28 + 2 * pad
    tiles = np.zeros((n, size, size), dtype=np.uint8)
    tiles[: len(images[:n]), pad:-pad, pad:-pad] = images[:n]
    montage = tiles.reshape(rows, cols, size, size).transpose(0, 2, 1, 3).reshape(rows * size, -1)
    fig, ax = plt.subplots(figsize=(cols * 0.9, rows * 0.9 + 0.5))
    ax.imshow(montage, cmap="gray", vmin=0, vmax=255)
    for i, label in enumerate(labels[:n]):
        row, col = divmod(i, cols)
        ax.text(
            col * size + 2,
            row * size + 2,
            str(int(label)),
            color="yellow",
            fontsize=9,
            va="top",
            ha="left",
        )
    ax.axis("off")
    ax.set_title("MNIST training images and their labels")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def save_training_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and accuracy per epoch, for the training and validation sets."""
    plt = _pyplot()
    epochs = np.arange(1, len(history) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.plot(epochs, [h[metric] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{metric}"] for h in history], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training curves (784-128-10, Adam with cosine decay)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
