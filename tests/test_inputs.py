"""runtime/inputs.py: PATH arguments expanded; only regular files opened, within a size limit."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from mnist_edge.runtime.inputs import (
    ImageReadError,
    expand_inputs,
    open_regular_file,
    shown_path,
)


def read(path, limit=1 << 20) -> bytes:
    with open_regular_file(path, limit) as file:
        return file.read_all()


def test_regular_file_read_whole_and_by_offset(tmp_path):
    (tmp_path / "a.png").write_bytes(b"0123456789")
    with open_regular_file(tmp_path / "a.png", 10) as file:
        assert file.size == 10 and file.pread(3, 7) == b"789"
        assert file.read_all() == b"0123456789"
        assert file.fd_path is None or os.path.samefile(file.fd_path, tmp_path / "a.png")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    done = []
    reader = threading.Thread(target=lambda: done.append(_reason(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)  # opening a FIFO for reading would block until a writer came
    assert done == ["is a FIFO (named pipe), not a regular file: not read"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_refused_given_directly_or_by_symlink(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"{device} missing")
    link = tmp_path / "photo.jpg"
    link.symlink_to(device)
    for path in (device, link):
        assert _reason(path) == "is a character device, not a regular file: not read"


def test_socket_and_directory_refused(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "s.png"))
        assert "a socket" in _reason(tmp_path / "s.png")
    finally:
        server.close()
    assert _reason(tmp_path) == "is a directory, not an image file"


def test_size_limit_empty_and_missing(tmp_path):
    (tmp_path / "big.png").write_bytes(b"x" * 5000)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "5,000 bytes, over the limit of 4,999" in _reason(tmp_path / "big.png", 4999)
    assert read(tmp_path / "big.png", 5000) == b"x" * 5000
    assert _reason(tmp_path / "empty.png") == "the file is empty"
    assert _reason(tmp_path / "nope.png") == "no such file"
    broken = tmp_path / "broken.png"
    broken.symlink_to(tmp_path / "gone.png")
    assert _reason(broken) == "no such file"


def test_error_names_the_file_in_one_line(tmp_path):
    with pytest.raises(ImageReadError) as caught:
        read(tmp_path / "nope.png")
    assert str(caught.value) == f"{tmp_path / 'nope.png'}: no such file"


def test_non_utf8_names_shown_as_escaped_bytes():
    name = os.fsdecode(b"caf\xe9/\xff.png")
    assert shown_path(name) == "caf\\xe9/\\xff.png"
    assert shown_path("café.png") == "café.png"  # valid UTF-8 stays as it is


def test_expand_inputs_files_folders_globs_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans" / "deeper").mkdir(parents=True)
    (tmp_path / "scans" / ".hidden").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ["scans/b.PNG", "scans/deeper/a.jpg", "scans/notes.txt", "scans/.hidden/x.png",
                 "one.gif", "two.webp"]:  # fmt: skip
        (tmp_path / name).write_bytes(b"x")
    os.mkfifo(tmp_path / "scans" / "pipe.png")  # listed by its name; refused when read

    inputs = expand_inputs(["scans", "*.webp", "one.gif", "missing.png", "empty", "*.tiff"])
    shown = [(item.shown, item.error is None) for item in inputs]
    assert shown == [
        ("scans/b.PNG", True),
        ("scans/pipe.png", True),
        ("scans/deeper/a.jpg", True),
        ("two.webp", True),
        ("one.gif", True),
        ("missing.png", False),
        ("empty", False),
        ("*.tiff", False),
    ]
    errors = {item.shown: item.error for item in inputs if item.error}
    assert "no such file" in errors["missing.png"]
    assert "no images" in errors["empty"]
    assert "matches" in errors["*.tiff"]
    assert inputs[2].path == Path("scans/deeper/a.jpg")
    assert inputs[2].inside == "deeper/a.jpg" and inputs[3].inside is None


def _reason(path, limit=1 << 20) -> str:
    with pytest.raises(ImageReadError) as caught:
        read(path, limit)
    assert "\n" not in str(caught.value)
    return caught.value.reason
