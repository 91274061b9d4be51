"""`mnist-edge live` against signals, kills, damaged videos, FIFOs and unwritable outputs.

Real processes on real video files: SIGTERM and SIGHUP are sent to a running command, and a
SIGKILL leaves what a power cut would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.cli import main
from mnist_edge.runtime.live import VideoRecorder
from tests.synthetic import camera_frame, sample_numbers, write_video

LONG_VIDEO_FRAMES = 400


@pytest.fixture(scope="module")
def long_video(mnist, tmp_path_factory) -> Path:
    """400 frames (20 numbers, each held for 20 frames): long enough to signal mid-way."""
    rng = np.random.default_rng(7)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, 20, rng, lengths=(2, 3))
    frames = [camera_frame(digits, rng, size=(240, 320)) for digits, _ in numbers]
    held = [frame for frame in frames for _ in range(LONG_VIDEO_FRAMES // len(frames))]
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", held, fps=25.0)


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def start_live(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_edge", "live", "--headless", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp*"))


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("Error: "), line
    return line


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=str)
def test_sigterm_and_sighup_finish_the_recording_like_ctrl_c(
    long_video, int8_model, tmp_path, stop
):
    out = tmp_path / "rec.mp4"
    process = start_live(
        "--source", str(long_video), "--model", str(int8_model), "--output", str(out)
    )
    first = [process.stdout.readline() for _ in range(5)]  # the loop is running
    process.send_signal(stop)
    rest, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    records = [json.loads(line) for line in [*first, *rest.splitlines()]]
    assert 5 <= len(records) < LONG_VIDEO_FRAMES  # stopped mid-way
    recorded = frame_count(out)  # finished: playable
    # The signal may land between a frame's JSON line and its recording.
    assert recorded in (len(records), len(records) - 1)
    assert stderr.strip() == f"recorded {recorded} frames to {out}"
    assert temporaries(tmp_path) == []


def test_after_a_sigkill_the_next_recording_removes_the_temporary_file(
    long_video, int8_model, tmp_path
):
    out = tmp_path / "rec.mp4"
    process = start_live(
        "--source", str(long_video), "--model", str(int8_model), "--output", str(out)
    )
    process.stdout.readline()
    process.kill()
    process.wait()
    assert not out.exists() and len(temporaries(tmp_path)) == 1  # what a kill leaves

    running = VideoRecorder(tmp_path / "other.mp4", 10.0)  # a recording still in progress
    args = ["live", "--source", str(long_video), "--headless", "--max-frames", "3",
            "--output", str(out), "--model", str(int8_model)]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    assert frame_count(out) == 3
    assert temporaries(tmp_path) == [running._tmp]  # the dead one's is gone, the live one kept
    running.close()
    assert temporaries(tmp_path) == []


def test_a_damaged_video_says_how_many_frames_it_lost(long_video, int8_model, tmp_path):
    data = bytearray(long_video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20_000] = bytes(20_000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    args = ["live", "--source", str(damaged), "--headless", "--json", "--model", str(int8_model)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    processed = len(result.stdout.splitlines())
    assert 0 < processed < LONG_VIDEO_FRAMES
    assert one_error_line(result.stderr) == (
        f"Error: {damaged}: the video ends after {processed} of the {LONG_VIDEO_FRAMES} "
        "frames in its header (damaged file?)"
    )


def test_a_file_url_is_a_video_file(long_video, int8_model, tmp_path):
    spaced = tmp_path / "my video.mp4"
    spaced.write_bytes(long_video.read_bytes())
    url = "file://" + str(spaced).replace(" ", "%20")
    args = ["live", "--source", url, "--headless", "--json", "--model", str(int8_model)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == LONG_VIDEO_FRAMES  # every frame: a file, not a stream


def test_a_fifo_source_is_refused_without_blocking(int8_model, tmp_path):
    fifo = tmp_path / "camera.mp4"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "live", "--source", str(fifo), "--headless",
         "--model", str(int8_model)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert one_error_line(done.stderr) == (
        f"Error: {fifo}: is not a regular file (a FIFO, socket or device)"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_an_unwritable_output_is_one_line(long_video, int8_model):
    args = ["live", "--source", str(long_video), "--headless", "--output", "/proc/x.mp4",
            "--model", str(int8_model)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert one_error_line(result.stderr).startswith("Error: /proc/x.mp4: cannot record there (")


def test_a_model_that_gives_nan_ends_the_loop_with_one_line(long_video, mutants):
    args = ["live", "--source", str(long_video), "--headless", "--json",
            "--model", str(mutants["nan_output"])]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.stdout == ""
    assert "the model's output is not a probability (nan" in one_error_line(result.stderr)
