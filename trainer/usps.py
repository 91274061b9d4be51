"""USPS postal digits: a development set from other writers, pens and scanner than MNIST's.

    python -m mnist_edge.trainer.usps [--usps FILE] OUT

writes USPS's training split (`../shared/data/usps/zip.train.gz`, 7,291 digits; see its README)
as digit folders `OUT/0 ... OUT/9` of 16x16 PNGs, for `mnist-edge export --eval-dir OUT` and
`mnist-edge train --extra-data OUT`. The digits are white on black and fill their 16x16 box;
whoever reads the folders puts them into MNIST's layout (20x20 box, centre of mass centred)
with the runtime's own function, like a camera's crops (`trainer/digit_folders.py`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import click
import numpy as np

from mnist_edge.trainer.digit_folders import to_mnist_layout, write_digit_folders

DEFAULT_USPS = Path("../shared/data/usps/zip.train.gz")
USPS_SIDE = 16


class UspsError(Exception):
    """A problem with the USPS file; one line naming it."""


def load_usps(path: str | Path = DEFAULT_USPS) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 16, 16] white on black, uint8 labels [N]) from the gzipped text file."""
    path = Path(path)
    try:
        text = gzip.decompress(path.read_bytes()).decode("ascii")
        rows = np.array([line.split() for line in text.splitlines() if line.strip()], np.float64)
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as error:
        raise UspsError(f"{path}: not a readable USPS file ({error})") from None
    if rows.ndim != 2 or rows.shape[1] != 1 + USPS_SIDE**2:
        raise UspsError(f"{path}: expected a label and 256 grey values per line")
    labels = rows[:, 0].astype(np.uint8)
    # -1 is background, +1 full ink (the data set's README)
    images = np.rint((rows[:, 1:] + 1.0) / 2.0 * 255.0).clip(0, 255).astype(np.uint8)
    return images.reshape(-1, USPS_SIDE, USPS_SIDE), labels


def usps_in_mnist_layout(path: str | Path = DEFAULT_USPS) -> tuple[np.ndarray, np.ndarray]:
    """USPS as uint8 [N, 28, 28] in MNIST's layout, exactly as its digit folders are read."""
    images, labels = load_usps(path)
    return np.stack([to_mnist_layout(image) for image in images]), labels


@click.command()
@click.option(
    "--usps",
    "usps_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_USPS,
    show_default=True,
    help="The USPS training split (zip.train.gz).",
)
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
def main(usps_path: Path, out: Path) -> None:
    """Write USPS's digits as OUT/0 ... OUT/9 of 16x16 PNGs."""
    try:
        images, labels = load_usps(usps_path)
    except UspsError as error:
        raise click.ClickException(str(error)) from None
    write_digit_folders(images, labels, out, prefix="usps")
    click.echo(f"wrote {len(labels)} USPS digits into {out}/0 ... {out}/9")


if __name__ == "__main__":
    main()
