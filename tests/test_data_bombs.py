"""Hostile datasets: gzip bombs, lying headers, broken .npz files, too little data.

Every file is generated here. Loading runs in a subprocess under an address-space limit, so a
loader that trusted a header would fail with MemoryError there instead of taking the machine.
"""

from __future__ import annotations

import gzip
import io
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.trainer.data import MAX_IMAGES, DataError, load_mnist, load_npz, to_idx_bytes
from tests.test_trainer_cli import assert_one_line_error, mnist_edge
from tests.test_trainer_data import LECUN, write_small_idx

MEMORY_CEILING = 1024 * 2**20
LOAD = """
import sys
from mnist_edge.trainer.data import DataError, load_mnist
try:
    load_mnist(sys.argv[1], allow_custom=True)
except DataError as error:
    sys.exit(f"Error: {error}")
print("loaded")
"""


def load_with_ceiling(folder: Path) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CEILING, MEMORY_CEILING))

    return subprocess.run(
        [sys.executable, "-c", LOAD, str(folder)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )


def gzip_bomb(header: bytes, gigabytes: int) -> bytes:
    """The header, then `gigabytes` GB of zeros: a few MB on disk. gzip members concatenate,
    so one compressed 64 MB block repeated makes the bomb at once."""
    block = gzip.compress(bytes(64 * 2**20), compresslevel=9)
    return gzip.compress(header) + block * (gigabytes * 16)


def idx_header(count: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (2051, count, 28, 28))


@pytest.mark.parametrize(
    "count, message",
    [
        (60000, "decompresses to more than the 47040016 bytes its header says"),
        (4_000_000_000, f"header claims 4,000,000,000 items, over {MAX_IMAGES:,}"),
    ],
    ids=["bomb-behind-a-true-header", "header-claims-4-billion"],
)
def test_gzip_bombs_are_stopped_by_the_header(mnist, tmp_path, count, message):
    write_small_idx(tmp_path, mnist, gz=True)
    bomb = tmp_path / f"{LECUN[0]}.gz"
    bomb.write_bytes(gzip_bomb(idx_header(count), gigabytes=6))
    assert bomb.stat().st_size < 10 * 2**20
    done = load_with_ceiling(tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == f"Error: {bomb}: {message}"


def npz_bytes(arrays: dict[str, np.ndarray], fake_shape: tuple | None = None) -> bytes:
    """An .npz of the arrays; with `fake_shape`, x_train's header claims that shape instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            if key == "x_train" and fake_shape is not None:
                header = {"descr": "|u1", "fortran_order": False, "shape": fake_shape}
                np.lib.format.write_array_header_1_0(member, header)
                member.write(array.tobytes())
            else:
                np.lib.format.write_array(member, array)
            archive.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


@pytest.fixture
def small_arrays(mnist) -> dict[str, np.ndarray]:
    return {
        "x_train": mnist.x_train[:300],
        "y_train": mnist.y_train[:300],
        "x_test": mnist.x_test[:50],
        "y_test": mnist.y_test[:50],
    }


def test_npz_members_are_checked_before_loading(small_arrays, tmp_path):
    path = tmp_path / "mnist.npz"
    cases = {
        (100_000_000, 28, 28): f"header claims 100,000,000 items, over {MAX_IMAGES:,}",
        (60_000, 28, 28): "header says (60000, 28, 28) (47040000 bytes) but the zip holds 235200",
        (300, 32, 32): "images are 32x32, expected 28x28",
    }
    for shape, message in cases.items():
        path.write_bytes(npz_bytes(small_arrays, fake_shape=shape))
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_npz(path, allow_custom=True)
    path.write_bytes(npz_bytes({**small_arrays, "y_test": small_arrays["y_test"].astype(float)}))
    with pytest.raises(DataError, match="y_test: expected uint8 with 1 dimensions"):
        load_npz(path, allow_custom=True)
    path.write_bytes(npz_bytes(small_arrays))
    assert len(load_npz(path, allow_custom=True).x_train) == 300


def test_a_73_gib_npz_claim_stays_within_the_memory_ceiling(small_arrays, tmp_path):
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(small_arrays, fake_shape=(MAX_IMAGES, 28, 28)))
    done = load_with_ceiling(tmp_path)  # 784 MB claimed, 235 KB present: refused unread
    assert done.returncode == 1 and "but the zip holds 235200 bytes" in done.stderr, done.stderr


def test_broken_npz_files_are_one_line(small_arrays, tmp_path):
    good = npz_bytes(small_arrays)
    directory = good.rfind(b"PK\x01\x02")  # the zip's central directory
    broken = {
        "truncated": good[: len(good) // 2],
        "broken-directory": good[:directory] + b"\xff" * 40 + good[directory + 40 :],
        "damaged-data": good[:200] + bytes(500) + good[700:],
        "empty": b"",
    }
    for name, content in broken.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        with pytest.raises(DataError) as caught:
            load_npz(path, allow_custom=True)
        message = str(caught.value)
        assert message.startswith(f"{path}: cannot read as .npz (") and "\n" not in message, name


def test_bad_datasets_through_train_are_one_line_and_write_nothing(mnist, tmp_path):
    out = tmp_path / "models"
    write_small_idx(tmp_path / "three", mnist)
    (tmp_path / "three" / LECUN[3]).unlink()
    (tmp_path / "file").write_text("not a folder")
    write_small_idx(tmp_path / "five", mnist, n=5)
    write_small_idx(tmp_path / "empty", mnist, n=0)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    cases = {
        "three": "t10k-labels-idx1-ubyte[.gz] missing (found the other 3 of the four",
        "file": "is a file; --data-dir expects a folder holding the four MNIST IDX files",
        "five": "5 training images, training needs at least 300",
        "empty": "0 training images, training needs at least 300",
        "broken": "mnist.npz: cannot read as .npz (",
    }
    for folder, fragment in cases.items():
        done = mnist_edge(
            "train", "--data-dir", str(tmp_path / folder), "--out", str(out),
            "--allow-custom-data", "--epochs", "1",
        )  # fmt: skip
        assert_one_line_error(done, str(tmp_path / folder), fragment)
        assert not out.exists(), folder


def test_a_dataset_without_some_digit_trains_with_a_warning(mnist, tmp_path):
    keep = mnist.y_train[:2000] != 7
    folder = tmp_path / "no_sevens"
    folder.mkdir()
    arrays = [mnist.x_train[:2000][keep][:400], mnist.y_train[:2000][keep][:400],
              mnist.x_test[:100], mnist.y_test[:100]]  # fmt: skip
    for name, array in zip(LECUN, arrays, strict=True):
        (folder / name).write_bytes(to_idx_bytes(array))
    out = tmp_path / "models"
    done = mnist_edge(
        "train", "--data-dir", str(folder), "--out", str(out), "--allow-custom-data",
        "--epochs", "1", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"warning: IDX files in {folder}: no training images of digit 7" in done.stderr
    assert (out / "mnist_dense.keras").is_file()


def test_the_real_dataset_passes_the_checks(mnist_data_dir):
    from mnist_edge.trainer.data import check_enough_data

    assert check_enough_data(load_mnist(mnist_data_dir)) == []
