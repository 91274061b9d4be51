"""`mnist-edge live` on real video files through cv2.VideoCapture, and the frame sources."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.cli import main
from mnist_edge.runtime.camera import CameraError, LatestFrameSource, VideoFileSource
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from tests.synthetic import camera_frame, sample_numbers, write_video

FRAMES = 12


@pytest.fixture(scope="session")
def video(mnist, tmp_path_factory) -> Path:
    """An mp4 of FRAMES camera-like frames, each with a different 3-4 digit number."""
    rng = np.random.default_rng(4)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, FRAMES, rng, lengths=(3, 4))
    frames = [camera_frame(digits, rng, jpeg_quality=90) for digits, _ in numbers]
    return write_video(tmp_path_factory.mktemp("video") / "numbers.mp4", frames, fps=10.0)


def decoded_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_every_frame_in_order_json_and_recording(tmp_path, video, int8_model):
    out = tmp_path / "annotated.mp4"
    result = run(
        "live", "--source", str(video), "--headless", "--json", "--output", str(out),
        "--model", str(int8_model),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert all(set(r) == {"frame", "text", "digits", "latency_ms"} for r in records)

    # Frame i of the output is what recognize() says about frame i of the file.
    classifier = DigitClassifier(int8_model)
    expected = [recognize(frame, classifier).text for frame in decoded_frames(video)]
    assert [r["text"] for r in records] == expected
    assert len(set(expected)) > FRAMES // 2  # different numbers: the order is really checked

    recorded = decoded_frames(out)
    assert len(recorded) == FRAMES
    assert recorded[0].shape == decoded_frames(video)[0].shape
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed into place


def test_max_frames_stops_and_closes_recording(tmp_path, video, int8_model):
    out = tmp_path / "first.avi"
    result = run(
        "live", "--source", str(video), "--headless", "--json", "--max-frames", "5",
        "--output", str(out), "--mirror", "--model", str(int8_model),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5
    assert len(decoded_frames(out)) == 5


@pytest.mark.parametrize("kind", ["missing", "not_video", "folder", "camera", "picamera2"])
def test_source_that_cannot_be_opened(tmp_path, int8_model, kind):
    source = {
        "missing": str(tmp_path / "missing.mp4"),
        "not_video": str(tmp_path / "notes.mp4"),
        "folder": str(tmp_path),
        "camera": "97",
        "picamera2": "picamera2",
    }[kind]
    (tmp_path / "notes.mp4").write_text("not a video\n")
    if kind == "picamera2":
        try:
            import picamera2  # noqa: F401

            pytest.skip("Picamera2 is installed here; the error is for machines without it")
        except ImportError:
            pass

    result = run("live", "--source", source, "--headless", "--model", str(int8_model))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and source in line
    assert result.stdout == ""


class MjpegCamera(BaseHTTPRequestHandler):
    """An IP camera (MJPEG over HTTP) that sends `frames` frames and then goes away."""

    frames: list[bytes] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpeg in self.frames:
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            self.wfile.write(head.encode() + jpeg + b"\r\n")
            self.wfile.flush()
            time.sleep(0.02)
        # ...and the connection drops, like a camera unplugged mid-stream.


@pytest.fixture
def mjpeg_url(video):
    MjpegCamera.frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in decoded_frames(video)]
    server = ThreadingHTTPServer(("127.0.0.1", 0), MjpegCamera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/camera.mjpg"
    server.shutdown()
    server.server_close()


def test_stream_that_goes_away_ends_cleanly_with_recording(tmp_path, mjpeg_url, int8_model):
    out = tmp_path / "partial.mp4"
    result = run(
        "live", "--source", mjpeg_url, "--headless", "--json", "--output", str(out),
        "--model", str(int8_model),
    )  # fmt: skip
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error == f"Error: {mjpeg_url}: stopped delivering frames (disconnected?)"
    processed = len(result.stdout.splitlines())
    assert 1 <= processed <= FRAMES
    assert len(decoded_frames(out)) == processed  # the recording was closed properly


def test_newest_frame_source_skips_instead_of_lagging(video):
    frames = decoded_frames(video)
    source = LatestFrameSource(str(video), "test stream")
    seen = []
    try:
        while True:
            frame = source.read()
            seen.append(int(np.argmin([np.abs(frame.astype(int) - f).mean() for f in frames])))
            time.sleep(0.05)  # a slow consumer; the file decodes in a few ms per frame
    except CameraError:
        pass
    finally:
        source.close()
    assert seen == sorted(set(seen))  # newer frames only, never one twice
    assert len(seen) < len(frames)  # old frames were dropped, not queued


def test_video_file_source_reads_every_frame_once(video):
    frames = decoded_frames(video)
    with VideoFileSource(video) as source:
        read = []
        while (frame := source.read()) is not None:
            read.append(frame)
        assert source.read() is None
    assert len(read) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(read, frames, strict=True))


def test_grey_video_source_gives_the_grey_of_every_frame(video):
    frames = decoded_frames(video)
    with VideoFileSource(video, grey=True) as source:
        read = []
        while (frame := source.read()) is not None:
            read.append(frame)
    assert len(read) == len(frames)
    grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in frames]
    assert all(np.array_equal(a, b) for a, b in zip(read, grey, strict=True))


def test_headless_json_without_recording_reads_the_same_digits(video, int8_model):
    # Nothing drawn or recorded: the source hands over grey frames; the digits must not change.
    result = run("live", "--source", str(video), "--headless", "--json", "--model", str(int8_model))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    classifier = DigitClassifier(int8_model)
    expected = [recognize(frame, classifier).to_json() for frame in decoded_frames(video)]
    assert [{"text": r["text"], "digits": r["digits"]} for r in records] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is an X11/Wayland thing")
def test_window_without_display_suggests_headless(video, int8_model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run("live", "--source", str(video), "--model", str(int8_model))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: no display to open a window on (DISPLAY is not set); use --headless"
    ]
