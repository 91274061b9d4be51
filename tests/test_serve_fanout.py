"""The writer of `serve`'s streams (runtime/fanout.py) in-process: a real capture loop on a real
video file (through cv2.VideoCapture) with the real int8 model, viewers on real sockets."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnist_edge.runtime.broadcast import CaptureHub
from mnist_edge.runtime.camera import open_source
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.fanout import PART_START, FanOut
from tests.serve_process import read_events, read_mjpeg_frames
from tests.synthetic import camera_frame, sample_numbers, write_video

LIVENESS_S = 30.0  # a bound on waits for things that must happen, not a timing check


@pytest.fixture(scope="module")
def video(mnist, tmp_path_factory) -> Path:
    rng = np.random.default_rng(8)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, 8, rng, lengths=(3, 4))
    frames = [camera_frame(digits, rng) for digits, _ in numbers]
    return write_video(tmp_path_factory.mktemp("fanout") / "numbers.mp4", frames, fps=20.0)


@pytest.fixture
def hub(video, int8_model):
    hub = CaptureHub(lambda: open_source(str(video)), DigitClassifier(int8_model), max_fps=10)
    yield hub
    hub.close()


class Viewer:
    """A client of the fan-out over a real TCP connection, served as serve's handler does."""

    def __init__(self, fanout: FanOut, kind: str = "stream", send_buffer: int | None = None):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.sock = socket.create_connection(listener.getsockname())
            served, _ = listener.accept()
        if send_buffer is not None:
            served.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
        self.sock.settimeout(LIVENESS_S)
        if kind == "stream":
            served.sendall(PART_START)
        self.served = served
        self.thread = threading.Thread(target=self._serve, args=(fanout, kind), daemon=True)
        self.thread.start()

    def _serve(self, fanout: FanOut, kind: str) -> None:
        with fanout.hub.watch(kind):
            fanout.serve(self.served, kind)
        self.served.close()

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(LIVENESS_S)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + LIVENESS_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_every_viewer_gets_the_same_jpegs_encoded_once(hub):
    fanout = FanOut(hub, stall_after=LIVENESS_S, keepalive=10.0)
    viewers = [Viewer(fanout) for _ in range(5)]  # the first one starts the loop
    try:
        parts = [read_mjpeg_frames(v, 6) for v in viewers]
        # 30 parts delivered from one encoding per streamed frame, not one per viewer (a few
        # more were encoded for the viewers' sockets while the others were read).
        assert hub.jpegs <= 6 + 4, hub.jpegs
        assert len({p for got in parts for p in got}) <= hub.jpegs
        for got in parts:
            image = cv2.imdecode(np.frombuffer(got[-1], np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (480, 640, 3)
    finally:
        for viewer in viewers:
            viewer.close()


def test_a_stalled_viewer_costs_no_encoding_and_is_dropped(hub):
    fanout = FanOut(hub, stall_after=3.0, keepalive=10.0)
    stalled = Viewer(fanout, send_buffer=4096)  # never reads: its socket fills at once
    try:
        wait_until(lambda: hub.jpegs and hub.viewers_ready == 0, "the viewer falls behind")
        # Behind with a part, it gets no new one: the loop goes on without encoding.
        jpegs, frames = hub.jpegs, hub.frames
        wait_until(lambda: hub.frames >= frames + 5, "frames go on")
        assert hub.jpegs == jpegs and stalled.thread.is_alive()
        # It takes nothing for stall_after seconds: dropped, its thread ends.
        stalled.thread.join(LIVENESS_S)
        assert not stalled.thread.is_alive()
        # A new viewer gets fresh frames meanwhile.
        fresh = Viewer(fanout)
        assert len(read_mjpeg_frames(fresh, 3)) == 3
        assert hub.jpegs > jpegs
        fresh.close()
    finally:
        stalled.close()


def test_a_viewer_that_hangs_up_leaves_the_others_streaming(hub):
    fanout = FanOut(hub, stall_after=LIVENESS_S, keepalive=10.0)
    staying, leaving = Viewer(fanout), Viewer(fanout)
    try:
        read_mjpeg_frames(leaving, 1)
        leaving.close()  # its thread notices at once (the socket reads end-of-file)
        assert not leaving.thread.is_alive()
        assert len(read_mjpeg_frames(staying, 4)) == 4
    finally:
        staying.close()


class EventReader:
    """readline() over a viewer's socket, for read_events."""

    def __init__(self, viewer: Viewer) -> None:
        self.file = viewer.sock.makefile("rb")

    def readline(self) -> bytes:
        return self.file.readline()


def test_event_clients_get_the_state_then_every_result_in_order(hub):
    fanout = FanOut(hub, stall_after=LIVENESS_S, keepalive=10.0)
    viewers = [Viewer(fanout, "events") for _ in range(3)]
    try:
        for viewer in viewers:
            events = read_events(EventReader(viewer), 20)
            kinds = [kind for kind, _ in events]
            assert kinds[0] == "state" and "message" in kinds
            frames = [data["frame"] for kind, data in events if kind == "message"]
            assert frames == list(range(frames[0], frames[0] + len(frames)))  # none skipped
    finally:
        for viewer in viewers:
            viewer.close()
