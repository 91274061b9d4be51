"""The training distortions keep the input contract and the labels, and are reproducible."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mnist_edge.trainer.augment import DEFAULT_DISTORTION, Distortion, distort

OFF = Distortion(0, 0, 0, 0, 0, 0, 0)


def centres_of_mass(images: np.ndarray) -> np.ndarray:
    """[n, 2] (row, column) centre of mass of each image."""
    grid = np.arange(images.shape[1])
    ink = images.astype(np.float64)
    mass = ink.sum(axis=(1, 2))
    rows = (ink.sum(axis=2) * grid).sum(axis=1) / mass
    cols = (ink.sum(axis=1) * grid).sum(axis=1) / mass
    return np.stack([rows, cols], axis=1)


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_train[:1000], mnist.y_train[:1000]


@pytest.mark.parametrize("distortion", [DEFAULT_DISTORTION, replace(DEFAULT_DISTORTION, pen=0.5)])
def test_distorted_digits_keep_the_input_contract(digits, distortion):
    images, _ = digits
    out = distort(images, np.random.default_rng(0), distortion)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert out.max() >= 250 and out.min() == 0  # still saturated strokes on black
    assert np.mean(out != images) > 0.05  # really changed
    com = centres_of_mass(out)
    # MNIST's centre of mass is (14, 14); shifts are at most 1.5 pixels a side.
    assert np.abs(com - 14.0).max() < 3.0
    assert np.abs(com.mean(axis=0) - 14.0).max() < 0.2
    ink_ratio = out.astype(float).sum() / images.astype(float).sum()
    assert 0.8 < ink_ratio < 1.25  # no digit swallowed or smeared over


def test_no_distortion_is_the_identity(digits):
    images, _ = digits
    assert np.array_equal(distort(images, np.random.default_rng(0), OFF), images)


def test_pen_width_grows_and_shrinks_the_ink(digits):
    from mnist_edge.trainer.augment import TILES_PER_ROW, _tile, change_pen_width

    images, _ = digits

    n = TILES_PER_ROW
    mosaic = _tile(images[:n])
    ink = mosaic.astype(float).sum()
    assert change_pen_width(mosaic, np.full(n, 0.5)).astype(float).sum() > 1.2 * ink
    assert change_pen_width(mosaic, np.full(n, -0.5)).astype(float).sum() < 0.8 * ink


def test_same_seed_same_distortions_each_image_its_own(digits):
    images, _ = digits
    a = distort(images[:200], np.random.default_rng(5), DEFAULT_DISTORTION)
    b = distort(images[:200], np.random.default_rng(5), DEFAULT_DISTORTION)
    c = distort(images[:200], np.random.default_rng(6), DEFAULT_DISTORTION)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    same_twice = distort(
        np.repeat(images[:1], 8, axis=0), np.random.default_rng(0), DEFAULT_DISTORTION
    )
    assert len({d.tobytes() for d in same_twice}) == 8


@pytest.mark.parametrize("count", [1000, 37])
def test_bands_on_threads_give_the_same_pixels(digits, count):
    """The training distorts a chunk in bands on several threads: bit for bit the one-band
    result, for any band count (the released weights depend on it)."""
    images = digits[0][:count]
    whole = distort(images, np.random.default_rng(3), DEFAULT_DISTORTION)
    for parts in (2, 3, 7):
        banded = distort(images, np.random.default_rng(3), DEFAULT_DISTORTION, parts=parts)
        assert np.array_equal(banded, whole)


def test_chunk_seeds_differ_between_chunks_and_epochs():
    from mnist_edge.trainer.chunked_fit import chunk_seed

    rng = np.random.default_rng(0)
    first, second = rng.permutation(1000).reshape(10, 100), rng.permutation(1000).reshape(10, 100)
    seeds = {tuple(chunk_seed(0, c)) for c in [*first, *second]}
    assert len(seeds) == 20
    assert chunk_seed(0, first[0]) == chunk_seed(0, first[0].copy())
    assert chunk_seed(0, first[0]) != chunk_seed(1, first[0])


def test_distortions_keep_the_labels(digits, int8_model):
    """A model reads the distorted digits nearly as well as the originals: no 6 became a 9."""
    from mnist_edge.runtime.classifier import DigitClassifier

    images, labels = digits
    classifier = DigitClassifier(int8_model)
    clean = np.mean(classifier.predict(images).argmax(axis=1) == labels)
    out = distort(images, np.random.default_rng(1), DEFAULT_DISTORTION)
    distorted = np.mean(classifier.predict(out).argmax(axis=1) == labels)
    assert clean > 0.97 and distorted > clean - 0.04, (clean, distorted)
