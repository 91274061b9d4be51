"""The inputs of `mnist-edge predict`: PATH arguments expanded, each file opened safely.

`expand_inputs` turns files, folders and glob patterns into a list of inputs, in order, with a
one-line error for a path that gives nothing. `open_regular_file` opens one of them: only a
regular file (a FIFO, a device or a socket is refused from its stat, before anything is read;
a symlink counts as what it points to, so one to /dev/zero is a device), and only up to a size
limit, so neither a pipe nor an endless device can hang the batch or fill the memory. It
stays open while it is decoded: decoders read this very file, never the path again.
`shown_path` is how a path is printed: file names that are not UTF-8 come out as their bytes
in backslash escapes (b'caf\\xe9.png' -> 'caf\\xe9.png'), not as lone surrogates.
"""

from __future__ import annotations

import glob
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageReadError(Exception):
    """A file that cannot be used as an image; `reason` is one line, str() names the file too."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{shown_path(str(path))}: {reason}")
        self.path = str(path)
        self.reason = reason


class RegularFile:
    """An open regular file of a known size, read only as far as asked (at most its size)."""

    def __init__(self, path: str | Path, fd: int, size: int) -> None:
        self.path, self.fd, self.size = path, fd, size
        self.handle = open(fd, "rb", closefd=True)  # noqa: SIM115 (closed by close())

    def read_all(self) -> bytes:
        try:
            self.handle.seek(0)
            data = self.handle.read(self.size)  # read(n) allocates n: the size, not the limit
            grew = self.handle.read(1)
        except OSError as error:
            raise _unreadable(self.path, error) from None
        if grew:
            reason = "the file grew while it was read (still being written?)"
            raise ImageReadError(self.path, reason)
        return data

    def pread(self, size: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, size, max(0, offset))
        except OSError as error:
            raise _unreadable(self.path, error) from None

    @property
    def fd_path(self) -> str | None:
        """A name for this very open file (not its path, which may have been swapped since)."""
        return f"/dev/fd/{self.fd}" if os.path.isdir("/dev/fd") else None

    def close(self) -> None:
        self.handle.close()


class MemoryFile:
    """An image's bytes already in memory (an upload), read as a RegularFile is."""

    fd_path = None  # no descriptor: decoders take the bytes

    def __init__(self, path: str | Path, data: bytes) -> None:
        self.path, self.data, self.size = path, data, len(data)
        self.handle = io.BytesIO(data)

    def read_all(self) -> bytes:
        return self.data

    def pread(self, size: int, offset: int) -> bytes:
        return self.data[max(0, offset) : max(0, offset) + size]


@contextmanager
def open_regular_file(path: str | Path, limit: int) -> Iterator[RegularFile]:
    """A regular file of at most `limit` bytes, open; or raise ImageReadError.

    Checked from stat before opening (a FIFO would block the open), then again on the open
    descriptor (opened non-blocking, so a path swapped for a FIFO in between cannot block).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as error:
        raise _unreadable(path, error) from None
    _check_kind(path, info)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise _unreadable(path, error) from None
    try:
        info = os.fstat(fd)
        _check_kind(path, info)
        if info.st_size == 0:
            raise ImageReadError(path, "the file is empty")
        if info.st_size > limit:
            raise ImageReadError(path, too_big(info.st_size, limit))
        file = RegularFile(path, fd, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield file
    finally:
        file.close()


def _unreadable(path: str | Path, error: OSError) -> ImageReadError:
    return ImageReadError(path, f"cannot read the file ({error.strerror or error})")


def _check_kind(path: str | Path, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ImageReadError(path, "is a directory, not an image file")
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise ImageReadError(path, f"is {kind}, not a regular file: not read")


def too_big(size: int, limit: int) -> str:
    return (
        f"the file is {size:,} bytes, over the limit of {limit:,} bytes that --max-pixels "
        "sets (raise it if the image is genuine)"
    )


def shown_path(path: str) -> str:
    """The path as printed: undecodable bytes of a file name as backslash escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


# -- PATH arguments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """One input of `predict`: `shown` is the path as given (inside a folder: folder/relative);
    `inside` is, for a file found in a folder, its path relative to that folder."""

    shown: str
    path: Path | None
    error: str | None = None
    inside: str | None = None


def expand_inputs(arguments: list[str] | tuple[str, ...]) -> list[ImageInput]:
    """Files as given, folders searched recursively for images, globs expanded; in order.

    A missing path, a folder without images or a glob matching no image becomes an ImageInput
    with an error, so the caller reports it and goes on with the others. Only names are
    looked at here (stat, never open): what a file is, is checked when it is read.
    """
    inputs: list[ImageInput] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            inputs.extend(_folder_images(argument))
        elif path.exists() or path.is_symlink():
            inputs.append(ImageInput(argument, path))
        elif glob.has_magic(argument):
            inputs.extend(_glob_images(argument))
        else:
            inputs.append(ImageInput(argument, None, "no such file or directory"))
    return inputs


def _folder_images(folder: str) -> list[ImageInput]:
    root = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_image_name(name):
                relative = os.path.relpath(os.path.join(dirpath, name), root)
                shown = os.path.join(folder, relative)
                found.append(ImageInput(shown, Path(dirpath) / name, inside=relative))
    if not found:
        return [ImageInput(folder, None, f"folder has no images ({', '.join(IMAGE_SUFFIXES)})")]
    return found


def _glob_images(pattern: str) -> list[ImageInput]:
    found = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        if os.path.isdir(match):
            found.extend(_folder_images(match))
        elif _is_image_name(match):
            found.append(ImageInput(match, Path(match)))
    if not found:
        return [ImageInput(pattern, None, "no image file matches this pattern")]
    return found


def _is_image_name(name: str) -> bool:
    return not os.path.basename(name).startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
