"""The MNIST loader: strict IDX parsing, checksums and where it looks."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.trainer.data import (
    CANONICAL_MD5,
    DataError,
    load_mnist,
    load_npz,
    parse_idx,
    scale_pixels,
    to_idx_bytes,
)

LECUN = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
KAGGLE = [
    "train-images.idx3-ubyte",
    "train-labels.idx1-ubyte",
    "t10k-images.idx3-ubyte",
    "t10k-labels.idx1-ubyte",
]


def write_small_idx(folder: Path, mnist, names=LECUN, n: int = 200, gz: bool = False) -> None:
    """A real but small IDX dataset: the first n train and test images of MNIST."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [mnist.x_train[:n], mnist.y_train[:n], mnist.x_test[:n], mnist.y_test[:n]]
    for name, array in zip(names, arrays, strict=True):
        raw = to_idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def test_real_mnist_matches_canonical_checksums_and_counts(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # data README
    assert np.bincount(mnist.y_test).tolist() == test_counts
    assert sorted(mnist.checksums.values()) == sorted(CANONICAL_MD5.values())


def test_scale_pixels_is_the_input_contract():
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    scaled = scale_pixels(x)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[0.0, 128 / 255, 1.0]])


def test_idx_round_trip(mnist):
    raw = to_idx_bytes(mnist.x_test[:5])
    np.testing.assert_array_equal(parse_idx(raw, "x", images=True), mnist.x_test[:5])


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "bad magic number 2049"),
        (lambda raw: raw[:-7], "header says 3 items"),
        (lambda raw: raw[:10], "truncated IDX file"),
        (lambda raw: raw[:4] + (4).to_bytes(4, "big") + raw[8:], "header says 4 items"),
    ],
    ids=["bad-magic", "truncated-data", "truncated-header", "count-mismatch"],
)
def test_broken_image_files_are_refused(mnist, mangle, message):
    raw = to_idx_bytes(mnist.x_test[:3])
    with pytest.raises(DataError, match=message) as caught:
        parse_idx(mangle(raw), "t10k-images-idx3-ubyte", images=True)
    assert str(caught.value).startswith("t10k-images-idx3-ubyte: ")


def test_labels_out_of_range_are_refused():
    raw = to_idx_bytes(np.array([1, 2, 12], dtype=np.uint8))
    with pytest.raises(DataError, match="label 12 is out of range 0-9"):
        parse_idx(raw, "labels", images=False)


def test_wrong_image_size_is_refused():
    raw = to_idx_bytes(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match="32x32, expected 28x28"):
        parse_idx(raw, "images", images=True)


@pytest.mark.parametrize(
    "names, gz",
    [(LECUN, True), (LECUN, False), (KAGGLE, False)],
    ids=["lecun-gz", "lecun-raw", "kaggle-raw"],
)
def test_small_folder_loads_only_with_allow_custom(mnist, tmp_path, names, gz):
    write_small_idx(tmp_path, mnist, names=names, gz=gz)
    with pytest.raises(DataError, match="is not the canonical MNIST") as caught:
        load_mnist(tmp_path)
    assert str(tmp_path) in str(caught.value)
    data = load_mnist(tmp_path, allow_custom=True)
    np.testing.assert_array_equal(data.x_test, mnist.x_test[:200])
    np.testing.assert_array_equal(data.y_train, mnist.y_train[:200])


def test_image_and_label_counts_must_agree(mnist, tmp_path):
    write_small_idx(tmp_path, mnist)
    (tmp_path / LECUN[3]).write_bytes(to_idx_bytes(mnist.y_test[:150]))
    with pytest.raises(DataError, match="200 test images but 150 test labels"):
        load_mnist(tmp_path, allow_custom=True)


def test_corrupt_gzip_names_the_file(mnist, tmp_path):
    write_small_idx(tmp_path, mnist, gz=True)
    (tmp_path / f"{LECUN[0]}.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match=f"{LECUN[0]}.gz: cannot read"):
        load_mnist(tmp_path, allow_custom=True)


def test_full_npz_is_checked_like_idx(mnist, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test
    )
    data = load_mnist(tmp_path)  # a folder holding only mnist.npz
    assert data.checksums == mnist.checksums
    tampered = mnist.x_test.copy()
    tampered[0, 0, 0] ^= 1
    np.savez(
        path, x_train=mnist.x_train, y_train=mnist.y_train, x_test=tampered, y_test=mnist.y_test
    )
    with pytest.raises(DataError, match="mnist.npz:x_test: MD5"):
        load_npz(path)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "mnist.npz"
    objects = np.array([{"evil": 1}], dtype=object)
    np.savez(path, x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(DataError, match="cannot read as .npz"):
        load_npz(path)


def test_data_dir_wins_over_environment(mnist, mnist_data_dir, tmp_path, monkeypatch):
    write_small_idx(tmp_path, mnist)
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_data_dir))
    assert len(load_mnist(tmp_path, allow_custom=True).x_train) == 200
    assert len(load_mnist().x_train) == 60000  # the environment variable when no folder


def test_missing_or_empty_folder_says_how_to_fix(tmp_path):
    for folder in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(DataError, match="--data-dir DIR or set MNIST_DATA_DIR"):
            load_mnist(folder)


def test_keras_cache_is_used_when_no_folder_is_given(mnist, mnist_data_dir, tmp_path, monkeypatch):
    cache = tmp_path / "datasets"
    cache.mkdir()
    np.savez(
        cache / "mnist.npz",
        x_train=mnist.x_train,
        y_train=mnist.y_train,
        x_test=mnist.x_test,
        y_test=mnist.y_test,
    )
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    data = load_mnist()
    assert data.source == f"npz file {cache / 'mnist.npz'}"
