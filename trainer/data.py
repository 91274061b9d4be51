"""Load MNIST from IDX files, a Keras `mnist.npz`, Keras's cache, or Keras's own download.

Where it looks, in order:
1. the folder given as `data_dir` (the `--data-dir` option), else the `MNIST_DATA_DIR` variable:
   the four IDX files (LeCun or Kaggle names, gzip-compressed or not) or a Keras `mnist.npz`;
2. Keras's cached `~/.keras/datasets/mnist.npz` (or under `$KERAS_HOME`);
3. Keras's own download, which needs the internet.

Every source is checked against the canonical MD5 sums of the four decompressed IDX files. An
`.npz` holds arrays, not files, so its arrays are turned back into IDX bytes first: the same
four sums then cover every source.

Nothing is decompressed or loaded on trust: an IDX file's header is read first and checked,
and only the bytes it implies are decompressed (a gzip bomb stops there); an `.npz` member's
shape and dtype are read from its header and checked against the zip directory before it is
loaded. MAX_IMAGES bounds what any header may claim.

The input contract every later stage relies on lives here: pixels are scaled to [0, 1] by
`scale_pixels` (divide by 255) in the data pipeline, not by a layer inside the model, so the
TFLite files take float pixels in [0, 1] and the int8 input quantization maps 0..255 exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

# MD5 of the decompressed canonical files (the well-known sums, also in MD5SUMS.uncompressed).
CANONICAL_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}

# Each part's file names without the optional ".gz": the LeCun names, then Kaggle's.
IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
NPZ_KEYS = {
    "train_images": "x_train",
    "train_labels": "y_train",
    "test_images": "x_test",
    "test_labels": "y_test",
}
MAX_IMAGES = 1_000_000  # per file: 784 MB of images; MNIST has 60,000, EMNIST digits 240,000
# Less than this cannot train anything meaningful; `--allow-custom-data` checks it up front.
MIN_TRAIN_IMAGES = 300
MIN_TEST_IMAGES = 10
NPY_HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
}
HOW_TO_FIX = (
    "pass --data-dir DIR or set MNIST_DATA_DIR to a folder with the four MNIST IDX files "
    "(train-images-idx3-ubyte[.gz], ...) or a Keras mnist.npz"
)


class DataError(Exception):
    """A problem with the dataset; the message is one line meant for the user."""


@dataclass
class Mnist:
    x_train: np.ndarray  # uint8 [N, 28, 28], white digit on black
    y_train: np.ndarray  # uint8 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the data came from, for reports
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> md5 of its IDX bytes


def scale_pixels(x: np.ndarray) -> np.ndarray:
    """The model's input contract: uint8 pixels to float32 in [0, 1]."""
    return x.astype(np.float32) / np.float32(255.0)


def parse_idx(raw: bytes, name: str, images: bool) -> np.ndarray:
    """Parse one IDX file's bytes strictly; `name` appears in every error message."""
    expected = check_idx_header(raw, name, images)
    items = int.from_bytes(raw[4:8], "big")
    if len(raw) != expected:
        raise DataError(
            f"{name}: header says {items} items ({expected} bytes) but the file has "
            f"{len(raw)} bytes"
        )
    shape = (items, 28, 28) if images else (items,)
    array = np.frombuffer(raw, dtype=np.uint8, offset=16 if images else 8).reshape(shape)
    if not images and array.size and array.max() > 9:
        raise DataError(f"{name}: label {int(array.max())} is out of range 0-9")
    return array


def to_idx_bytes(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array: how an `.npz` is checked against the canonical MD5."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def check_idx_header(header: bytes, name: str, images: bool) -> int:
    """The size in bytes of the whole file the IDX header describes, or DataError."""
    want_magic, ndim = (IMAGES_MAGIC, 3) if images else (LABELS_MAGIC, 1)
    header_size = 4 + 4 * ndim
    if len(header) < header_size:
        raise DataError(
            f"{name}: truncated IDX file ({len(header)} bytes, header needs {header_size})"
        )
    magic = int.from_bytes(header[0:4], "big")
    if magic != want_magic:
        kind = "images" if images else "labels"
        raise DataError(f"{name}: bad magic number {magic}, expected {want_magic} for IDX {kind}")
    dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if images and dims[1:] != [28, 28]:
        raise DataError(f"{name}: images are {dims[1]}x{dims[2]}, expected 28x28")
    if dims[0] > MAX_IMAGES:
        raise DataError(f"{name}: header claims {dims[0]:,} items, over {MAX_IMAGES:,}")
    return header_size + int(np.prod(dims))


def _read_bytes(path: Path, images: bool) -> bytes:
    """An IDX file's bytes, decompressed if `.gz`: the header first, then only the bytes it
    implies (one more tells a file longer than its header says)."""
    gzipped = path.suffix == ".gz"
    try:
        with (gzip.open if gzipped else open)(path, "rb") as handle:
            header = handle.read(16 if images else 8)
            expected = check_idx_header(header, str(path), images)
            size = path.stat().st_size
            if not gzipped and size != expected:
                items = int.from_bytes(header[4:8], "big")
                raise DataError(
                    f"{path}: header says {items} items ({expected} bytes) but the file has "
                    f"{size} bytes"
                )
            raw = header + handle.read(expected - len(header) + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if len(raw) > expected:
        raise DataError(f"{path}: decompresses to more than the {expected} bytes its header says")
    return raw


def _check_md5(part: str, name: str, raw: bytes, allow_custom: bool) -> str:
    digest = hashlib.md5(raw).hexdigest()
    if digest != CANONICAL_MD5[part] and not allow_custom:
        raise DataError(
            f"{name}: MD5 {digest} is not the canonical MNIST {CANONICAL_MD5[part]} "
            "(pass --allow-custom-data to use your own dataset)"
        )
    return digest


def _find_idx_files(folder: Path) -> dict[str, Path]:
    """The IDX files found in the folder, by part (regular files only: a FIFO would block)."""
    found = {}
    for part, names in IDX_NAMES.items():
        candidates = [folder / (n + ext) for n in names for ext in ("", ".gz")]
        existing = [p for p in candidates if p.is_file()]
        if existing:
            found[part] = existing[0]
    return found


def _check_pairs(arrays: dict[str, np.ndarray], where: str) -> None:
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise DataError(f"{where}: {n_images} {split} images but {n_labels} {split} labels")


def load_idx_folder(folder: Path, allow_custom: bool = False) -> Mnist:
    """Load the four IDX files from a folder (names as in IDX_NAMES, `.gz` or not)."""
    paths = _find_idx_files(folder)
    if not paths:
        raise DataError(f"{folder}: no MNIST IDX files or mnist.npz here; {HOW_TO_FIX}")
    missing = [f"{IDX_NAMES[part][0]}[.gz]" for part in IDX_NAMES if part not in paths]
    if missing:
        raise DataError(
            f"{folder}: {', '.join(missing)} missing (found the other "
            f"{len(paths)} of the four MNIST IDX files)"
        )
    arrays, checksums = {}, {}
    for part, path in paths.items():
        raw = _read_bytes(path, images=part.endswith("images"))
        arrays[part] = parse_idx(raw, str(path), images=part.endswith("images"))
        checksums[path.name.removesuffix(".gz")] = _check_md5(part, str(path), raw, allow_custom)
    _check_pairs(arrays, str(folder))
    return _to_mnist(arrays, f"IDX files in {folder}", checksums)


def load_npz(path: Path, allow_custom: bool = False) -> Mnist:
    """Load a Keras-style `mnist.npz` (x_train, y_train, x_test, y_test); never unpickles.

    Each member's header is checked first (check_npz_members), so nothing is loaded that
    the header and the zip directory do not agree on.
    """
    try:
        check_npz_members(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {part: npz[key] for part, key in NPZ_KEYS.items()}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{path}: cannot read as .npz ({reason})") from None
    checksums = {}
    for part, array in arrays.items():
        name = f"{path}:{NPZ_KEYS[part]}"
        want_ndim = 3 if part.endswith("images") else 1
        if array.dtype != np.uint8 or array.ndim != want_ndim:
            raise DataError(f"{name}: expected uint8 with {want_ndim} dimensions")
        raw = to_idx_bytes(array)
        parse_idx(raw, name, images=want_ndim == 3)  # the same checks as for IDX files
        checksums[IDX_NAMES[part][0]] = _check_md5(part, name, raw, allow_custom)
    _check_pairs(arrays, str(path))
    return _to_mnist(arrays, f"npz file {path}", checksums)


def check_npz_members(path: Path) -> None:
    """Each MNIST member of the .npz: present, uint8 of the right shape, at most MAX_IMAGES,
    and exactly the size the zip directory gives it, all read from headers alone."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = [k for k in NPZ_KEYS.values() if f"{k}.npy" not in names]
        if missing:
            raise DataError(f"{path}: not an MNIST npz, missing {', '.join(missing)}")
        for part, key in NPZ_KEYS.items():
            info = archive.getinfo(f"{key}.npy")
            with archive.open(info) as member:
                version = npy_format.read_magic(member)
                read_header = NPY_HEADER_READERS.get(version)
                if read_header is None:
                    raise ValueError(f"{key}: .npy format version {version} is not supported")
                shape, _, dtype = read_header(member)
                header_size = member.tell()
            name = f"{path}:{key}"
            if dtype.hasobject:
                raise ValueError(f"{key} holds Python objects, which are never unpickled")
            want_ndim = 3 if part.endswith("images") else 1
            if dtype != np.uint8 or len(shape) != want_ndim:
                raise DataError(f"{name}: expected uint8 with {want_ndim} dimensions")
            if want_ndim == 3 and tuple(shape[1:]) != (28, 28):
                raise DataError(f"{name}: images are {shape[1]}x{shape[2]}, expected 28x28")
            if shape[0] > MAX_IMAGES:
                raise DataError(f"{name}: header claims {shape[0]:,} items, over {MAX_IMAGES:,}")
            if info.file_size != header_size + int(np.prod(shape)):
                raise DataError(
                    f"{name}: header says {shape} ({int(np.prod(shape))} bytes) but the zip "
                    f"holds {info.file_size - header_size} bytes"
                )


def check_enough_data(data: Mnist) -> list[str]:
    """Refuse a dataset too small to train on (DataError); warnings for digits it lacks."""
    if len(data.x_train) < MIN_TRAIN_IMAGES:
        raise DataError(
            f"{data.source}: {len(data.x_train)} training images, training needs at least "
            f"{MIN_TRAIN_IMAGES}"
        )
    if len(data.x_test) < MIN_TEST_IMAGES:
        raise DataError(
            f"{data.source}: {len(data.x_test)} test images, the evaluation needs at least "
            f"{MIN_TEST_IMAGES}"
        )
    warnings = []
    for split, labels in (("training", data.y_train), ("test", data.y_test)):
        absent = sorted(set(range(10)) - set(np.unique(labels).tolist()))
        if absent:
            digits = ", ".join(str(d) for d in absent)
            warnings.append(f"{data.source}: no {split} images of digit {digits}")
    return warnings


def _to_mnist(arrays: dict[str, np.ndarray], source: str, checksums: dict[str, str]) -> Mnist:
    return Mnist(
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
        source=source,
        checksums=checksums,
    )


def keras_cache_path() -> Path:
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / "mnist.npz"


def load_folder(folder: Path, allow_custom: bool = False) -> Mnist:
    if folder.exists() and not folder.is_dir():
        raise DataError(
            f"{folder}: is a file; --data-dir expects a folder holding the four MNIST IDX files "
            "(train-images-idx3-ubyte[.gz], ...) or a Keras mnist.npz"
        )
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; {HOW_TO_FIX}")
    if not _find_idx_files(folder) and (folder / "mnist.npz").is_file():
        return load_npz(folder / "mnist.npz", allow_custom)
    return load_idx_folder(folder, allow_custom)


def load_mnist(data_dir: str | Path | None = None, allow_custom: bool = False) -> Mnist:
    """Find and load MNIST (see the module docstring for where it looks)."""
    if data_dir is None and os.environ.get("MNIST_DATA_DIR"):
        data_dir = os.environ["MNIST_DATA_DIR"]
    if data_dir is not None:
        return load_folder(Path(data_dir).expanduser(), allow_custom)

    cached = keras_cache_path()
    if cached.is_file():
        return load_npz(cached, allow_custom)

    try:
        import keras  # lazily: loading from files must not need TensorFlow

        keras.datasets.mnist.load_data()  # downloads into Keras's cache
    except Exception as error:  # no internet, proxy, disk: all mean the same to the user
        raise DataError(
            f"MNIST not found: no --data-dir or MNIST_DATA_DIR, no Keras cache at {cached}, and "
            f"Keras's download failed ({type(error).__name__}); {HOW_TO_FIX}"
        ) from None
    return load_npz(cached, allow_custom)
