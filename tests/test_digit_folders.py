"""Digit folders DIR/0 ... DIR/9: read in MNIST's layout, bad folders refused by path, and
`mnist-edge train --extra-data` mixing them in."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mnist_edge.trainer.digit_folders import (
    DigitFolderError,
    load_digit_folders,
    to_mnist_layout,
    write_digit_folders,
)
from tests.test_trainer_cli import assert_one_line_error, mnist_edge


@pytest.fixture(scope="module")
def folder(mnist, tmp_path_factory):
    """40 MNIST test digits as 28x28 PNGs (the `predict --save-crops` form), and the same
    digits drawn large, black on white paper, as JPEGs."""
    out = tmp_path_factory.mktemp("digits")
    images, labels = mnist.x_test[:40], mnist.y_test[:40]
    write_digit_folders(images, labels, out, prefix="crop")
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        paper = 255 - cv2.resize(image, (90, 120), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / str(label) / f"scan_{i:03d}.jpg"), paper)
    return out


def test_reads_the_layout_in_mnist_form(folder, mnist):
    digits = load_digit_folders(folder)
    assert digits.images.shape == (80, 28, 28) and digits.images.dtype == np.uint8
    assert digits.counts == (2 * np.bincount(mnist.y_test[:40], minlength=10)).tolist()
    assert sum(digits.counts) == len(digits.files) == 80
    by_file = dict(zip(digits.files, digits.images, strict=True))
    for i in range(40):  # 28x28 white-on-black crops are taken as they are
        label = mnist.y_test[i]
        assert np.array_equal(by_file[f"{label}/crop_{i:05d}.png"], mnist.x_test[i])
        scan = by_file[f"{label}/scan_{i:03d}.jpg"]  # inverted, fitted, centred
        assert scan[:2].max() < 30 and scan.max() > 200
    assert len(digits.checksum) == 64 and load_digit_folders(folder).checksum == digits.checksum


def test_checksum_follows_the_files(folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    before = load_digit_folders(copy).checksum
    first = sorted((copy / "7").iterdir())[0]
    first.rename(first.with_name("renamed.png" if first.suffix == ".png" else "renamed.jpg"))
    assert load_digit_folders(copy).checksum != before


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: (d / "seven").mkdir(), "seven: not a digit folder"),
        (lambda d: (d / "notes.txt").write_text("x"), "notes.txt: not a digit folder"),
        (lambda d: (d / "4").mkdir(), "4: empty digit folder"),
        (lambda d: (d / "3" / "bad.png").write_bytes(b"not a png"), "bad.png: not an image"),
        (lambda d: (d / "3" / "list.csv").write_text("1,2"), "list.csv: not an image file"),
    ],
)
def test_bad_folders_are_refused_naming_the_path(tmp_path, mnist, make, fragment):
    root = tmp_path / "mine"
    write_digit_folders(mnist.x_test[:5], np.full(5, 3), root)  # a good folder 3/ ...
    make(root)  # ... and one problem
    with pytest.raises(DigitFolderError) as error:
        load_digit_folders(root)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DigitFolderError, match="no such folder"):
        load_digit_folders(tmp_path / "nope")
    with pytest.raises(DigitFolderError, match="no digit folders"):
        load_digit_folders(tmp_path)


def test_usps_digits_keep_their_polarity():
    """A bold 16x16 digit covering most of its box is still white ink on black."""
    bold = np.zeros((16, 16), np.uint8)
    bold[1:15, 2:14] = 255
    bold[5:11, 6:10] = 0  # a fat 0 whose ink is most of the image
    out = to_mnist_layout(bold)
    assert out[0].max() == 0 and out.max() == 255


def test_train_refuses_a_bad_extra_data_folder(tmp_path):
    (tmp_path / "x" / "12").mkdir(parents=True)
    done = mnist_edge("train", "--extra-data", str(tmp_path / "x"), "--out", str(tmp_path / "m"))
    assert_one_line_error(done, str(tmp_path / "x" / "12"), "not a digit folder")


def test_train_mixes_in_extra_data_and_reports_it(folder, mnist_data_dir, tmp_path):
    done = mnist_edge(
        "train", "--extra-data", str(folder), "--extra-weight", "3", "--limit", "2000",
        "--epochs", "1", "--out", str(tmp_path), env_data_dir=mnist_data_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "extra data held out" in done.stdout
    metrics = json.loads((tmp_path / "mnist_dense.train.json").read_text())
    extra = metrics["extra_data"]
    assert extra["images"] == 80 and extra["weight"] == 3 and extra["name"] == folder.name
    assert sum(extra["train_counts"]) + sum(extra["holdout_counts"]) == 80
    assert [
        t + h for t, h in zip(extra["train_counts"], extra["holdout_counts"], strict=True)
    ] == extra["counts"]
    assert 0 <= extra["holdout_accuracy"] <= 1 and len(extra["files_sha256"]) == 64
    held_out = sum(extra["holdout_counts"])
    assert metrics["train_size"] == 1800 + 80 - held_out
    steps = -(-(1800 + 3 * (80 - held_out)) // 32)  # each extra image drawn 3 times
    assert metrics["optimizer_steps"] == steps
    assert str(folder.parent) not in json.dumps(metrics)  # no absolute paths
