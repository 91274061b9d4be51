"""Shared fixtures: real MNIST and a small model really trained on a subset of it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path | None:
    """Where the tests read MNIST: $MNIST_DATA_DIR, else ../shared/data/mnist beside the repo."""
    if os.environ.get("MNIST_DATA_DIR"):
        return Path(os.environ["MNIST_DATA_DIR"])
    return SHARED_MNIST if SHARED_MNIST.is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def int8_model(repo_root: Path) -> Path:
    """The committed int8 model: the runtime's default, what a user runs from a fresh clone."""
    path = repo_root / "models" / "mnist_int8.tflite"
    if not path.is_file():
        pytest.skip(f"{path} missing: run `mnist-edge all` first")
    return path


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    folder = mnist_dir()
    if folder is None:
        pytest.skip("MNIST not available: set MNIST_DATA_DIR to the folder with the IDX files")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_data_dir: Path):
    from mnist_edge.trainer.data import load_mnist

    return load_mnist(mnist_data_dir)


@pytest.fixture(scope="session")
def small_keras_model(mnist, tmp_path_factory) -> Path:
    """A .keras model trained here on 6,000 training images for 2 epochs, augmented as by
    default (~92-94 % test)."""
    from mnist_edge.trainer.train import MODEL_FILENAME, train_and_save

    out = tmp_path_factory.mktemp("small_model")
    train_and_save(mnist, out, epochs=2, seed=0, quiet=True, limit=6000)
    return out / MODEL_FILENAME


@pytest.fixture(scope="session")
def mutants(tmp_path_factory) -> dict[str, Path]:
    """Bad TFLite models (tests/model_mutants.py), converted once per session."""
    pytest.importorskip("tensorflow")
    from tests.model_mutants import build_mutants

    return build_mutants(tmp_path_factory.mktemp("mutants"))


@pytest.fixture(scope="session")
def sure_digits(mnist, int8_model) -> list[tuple[np.ndarray, int]]:
    """Three MNIST test digits of different classes that the model gets right, clean."""
    from mnist_edge.runtime.classifier import DigitClassifier

    probabilities = DigitClassifier(int8_model).predict(mnist.x_test[:300] / 255.0)
    chosen: dict[int, int] = {}
    for index, (p, label) in enumerate(zip(probabilities, mnist.y_test[:300], strict=True)):
        if p.argmax() == label and p.max() > 0.99 and int(label) not in chosen:
            chosen[int(label)] = index
        if len(chosen) == 3:
            break
    return [(mnist.x_test[i], label) for label, i in chosen.items()]
