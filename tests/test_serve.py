"""`mnist-edge serve` as a real process on a real video file (through cv2.VideoCapture)."""

from __future__ import annotations

import getpass
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mnist_edge.cli import main
from tests.serve_process import ServeProcess, read_events, read_mjpeg_frames
from tests.synthetic import camera_frame, sample_numbers, write_video
from tests.test_images import bomb_png

FRAMES = 12
FPS = 20.0  # the video loops every 0.6 s
MAX_UPLOAD_MB = 1.0


@pytest.fixture(scope="module")
def video(mnist, tmp_path_factory) -> Path:
    """FRAMES camera-like frames, each with a different 3-4 digit number."""
    rng = np.random.default_rng(15)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, FRAMES, rng, lengths=(3, 4))
    frames = [camera_frame(digits, rng, jpeg_quality=90) for digits, _ in numbers]
    return write_video(tmp_path_factory.mktemp("serve") / "numbers.mp4", frames, fps=FPS)


@pytest.fixture(scope="module")
def live_records(video, int8_model) -> list[dict]:
    """What `live --headless --json` says about each frame of the video."""
    done = CliRunner().invoke(
        main, ["live", "--source", str(video), "--headless", "--json", "--model", str(int8_model)]
    )
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == FRAMES and len({r["text"] for r in records}) > FRAMES // 2
    return records


@pytest.fixture(scope="module")
def served(video, int8_model):
    args = ["--source", str(video), "--model", str(int8_model), "--release-after", "1"]
    args += ["--max-upload-mb", str(MAX_UPLOAD_MB)]
    with ServeProcess(args) as server:
        yield server
    assert server.returncode == 0, server.stderr  # SIGTERM is a clean way out
    assert "stopped after" in server.stderr


@pytest.fixture
def photo(mnist, tmp_path) -> Path:
    rng = np.random.default_rng(3)
    ((digits, _),) = sample_numbers(mnist.x_test, mnist.y_test, 1, rng, lengths=(4, 4))
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), camera_frame(digits, rng, size=(600, 800)))
    return path


def predict_json(path: Path, model: Path, *options: str) -> dict:
    done = CliRunner().invoke(
        main, ["predict", "--json", "--model", str(model), *options, str(path)]
    )
    return json.loads(done.stdout.splitlines()[0])


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----mnistedgetest7d3f"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def wait_for_state(served: ServeProcess, state: str, timeout: float = 20.0) -> dict:
    """Poll /healthz until the source is in `state` (a liveness bound, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        _, health = served.get_json("/healthz")
        if health["source"]["state"] == state or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def open_stream(served: ServeProcess, path: str = "/stream.mjpg", headers: dict | None = None):
    connection = served.connection()
    connection.request("GET", path, headers=headers or {})
    return connection, connection.getresponse()


def hang_up(connection: http.client.HTTPConnection, response) -> None:
    response.close()  # the response holds the socket open too
    connection.close()


# -- the stream, the results ----------------------------------------------------------------


def test_stream_yields_annotated_jpeg_frames(served, video):
    connection, response = open_stream(served)
    try:
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        jpegs = read_mjpeg_frames(response, 6)
    finally:
        hang_up(connection, response)
    images = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    assert all(image is not None and image.shape == (480, 640, 3) for image in images)
    # The video moves on between frames, and what is streamed is the video (drawn over).
    assert len({j for j in jpegs}) > 1
    first = cv2.VideoCapture(str(video)).read()[1]
    differences = [np.abs(image.astype(int) - first).mean() for image in images]
    assert min(differences) < 12  # a JPEG of that frame with boxes and a banner drawn on it


def test_opencv_reads_the_stream_as_a_camera(served):
    # Parts without Content-Length (see serve.py): OpenCV's MJPEG reader takes them too.
    done = CliRunner().invoke(
        main, ["live", "--source", served.url + "stream.mjpg", "--headless", "--json",
               "--max-frames", "3"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert len(done.stdout.splitlines()) == 3


def test_events_and_latest_give_the_digits_live_gives(served, live_records):
    connection, response = open_stream(served, "/api/events")
    try:
        assert response.getheader("Content-Type").startswith("text/event-stream")
        events = read_events(response, FRAMES + 8)
        status, latest = served.get_json("/api/latest")
    finally:
        hang_up(connection, response)
    states = [data for kind, data in events if kind == "state"]
    results = [data for kind, data in events if kind == "message"]
    assert states and states[0]["state"] in ("closed", "opening", "running")
    assert len(results) >= FRAMES + 8 - len(states)
    for record in results + [latest]:
        expected = live_records[record["video_frame"]]
        assert {"text": record["text"], "digits": record["digits"]} == {
            "text": expected["text"],
            "digits": expected["digits"],
        }
    assert status == 200
    assert set(latest) >= set(live_records[0]) | {"time", "video_frame"}
    assert abs(latest["time"] - time.time()) < 60
    # Every frame in order, and the video started again at its end.
    positions = [r["video_frame"] for r in results]
    assert set(positions) == set(range(FRAMES))
    assert any(b == 0 and a == FRAMES - 1 for a, b in zip(positions, positions[1:], strict=False))
    numbers = [r["frame"] for r in results]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_healthz_reports_uptime_frames_and_source(served):
    status, health = served.get_json("/healthz")
    assert status == 200 and health["status"] == "ok"
    assert health["uptime_s"] > 0 and health["frames"] >= 0
    assert health["source"]["state"] in ("closed", "opening", "running")
    assert health["model"] == "mnist_int8" and health["max_clients"] == 32


# -- uploads --------------------------------------------------------------------------------


def test_predict_reads_an_upload_like_predict_reads_the_file(served, photo, int8_model):
    expected = predict_json(photo, int8_model)
    assert expected["digits"]
    status, _, body = served.request("POST", "/api/predict", photo.read_bytes())
    assert status == 200
    assert json.loads(body) == {**expected, "path": "upload"}

    form, content_type = multipart("image", "desk photo.jpg", photo.read_bytes())
    status, _, body = served.request("POST", "/api/predict", form, {"Content-Type": content_type})
    assert status == 200
    assert json.loads(body) == {**expected, "path": "desk photo.jpg"}


def test_form_without_image_field_is_400(served, photo):
    form, content_type = multipart("picture", "p.jpg", photo.read_bytes())
    status, _, body = served.request("POST", "/api/predict", form, {"Content-Type": content_type})
    assert status == 400 and json.loads(body)["error"] == "the form has no file field named 'image'"


def test_corrupt_image_is_400_with_predicts_message(served, tmp_path, int8_model):
    for name, data in [("notes.jpg", b"not an image at all\n"), ("cut.jpg", b"")]:
        path = tmp_path / name
        path.write_bytes(data)
        status, _, body = served.request("POST", "/api/predict", data)
        assert status == 400
        record = json.loads(body)
        assert record["path"] == "upload" and record["error"]
        if data:  # the same words as predict for the same bytes
            assert record["error"] == predict_json(path, int8_model)["error"]
        else:
            assert record["error"] == "the upload is empty"


def test_image_over_the_pixel_limit_is_400_from_its_header(served, tmp_path, int8_model):
    # 80000 x 80000 pixels claimed, a few hundred bytes sent: decoding it would take 6.4 GP.
    bomb = bomb_png(tmp_path / "bomb.png", 80_000, 80_000)
    status, _, body = served.request("POST", "/api/predict", bomb.read_bytes())
    assert status == 400
    error = json.loads(body)["error"]
    assert "over the pixel limit" in error and error == predict_json(bomb, int8_model)["error"]


def test_oversize_upload_is_413_before_the_body_is_read(served):
    limit = int(MAX_UPLOAD_MB * 2**20)
    # A client that sends everything before reading still gets the answer.
    status, _, body = served.request("POST", "/api/predict", b"\0" * (limit + 1))
    assert status == 413 and f"{limit:,}" in json.loads(body)["error"]
    # Only the headers are sent, no body at all: the answer comes anyway.
    with served.raw_socket() as raw:
        head = f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {50 * limit}\r\n\r\n"
        raw.sendall(head.encode())
        answer = raw.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 ")
    # A client that asks first (Expect: 100-continue, as curl does) is refused before sending.
    with served.raw_socket() as raw:
        raw.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {2 * limit}\r\n\r\n".encode()
        )
        answer = raw.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 ") and "100 Continue" not in answer


def test_upload_without_length_is_411(served):
    with served.raw_socket() as raw:
        raw.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
        assert raw.recv(4096).decode().startswith("HTTP/1.1 411 ")


# -- only the routes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/index.html", "/api/", "/../etc/passwd", "/%2e%2e/etc/passwd", "/runtime/"]
)
def test_unknown_path_is_404(served, path):
    status, headers, body = served.request("GET", path)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"].startswith("no such page")


def test_wrong_method_is_405_and_the_page_is_self_contained(served):
    status, headers, _ = served.request("POST", "/healthz", b"")
    assert status == 405 and headers["Allow"] == "GET"
    status, headers, page = served.request("GET", "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<script" in page and b"<style" in page
    assert b"http://" not in page and b"https://" not in page  # no CDN, nothing from elsewhere
    assert "default-src 'self'" in headers["Content-Security-Policy"]


# -- many clients, the camera on demand -----------------------------------------------------


def test_twenty_stream_clients_and_a_hang_up_do_not_stall_the_loop(served):
    viewers = []
    try:
        for _ in range(20):
            raw = served.raw_socket()
            raw.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            viewers.append(raw)
        for raw in viewers:  # each gets a frame; then none of them reads any more
            assert raw.recv(1 << 16).startswith(b"HTTP/1.1 200")
        # One viewer reads part of a frame and hangs up hard (a reset, not a clean close).
        quitter = served.raw_socket()
        quitter.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        quitter.recv(5000)
        quitter.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        quitter.close()

        _, health = served.get_json("/healthz")
        assert health["watchers"]["stream"] >= 20 and health["clients"] >= 21
        first = served.get_json("/api/latest")[1]["frame"]
        time.sleep(1.0)
        status, latest = served.get_json("/api/latest")
        assert status == 200 and latest["frame"] > first  # the loop goes on
        # A new viewer still gets fresh frames, not a backlog.
        connection, response = open_stream(served)
        read_mjpeg_frames(response, 2)
        hang_up(connection, response)
    finally:
        for raw in viewers:
            raw.close()


def test_camera_runs_only_while_watched(served):
    health = wait_for_state(served, "closed")  # nobody watches: released
    assert health["source"]["state"] == "closed"
    opened, frames = health["source"]["opened"], health["frames"]
    time.sleep(0.5)
    assert served.get_json("/healthz")[1]["frames"] == frames  # no frames without viewers

    connection, response = open_stream(served)
    read_mjpeg_frames(response, 2)
    _, health = served.get_json("/healthz")
    assert health["source"]["state"] == "running" and health["source"]["opened"] == opened + 1
    hang_up(connection, response)

    health = wait_for_state(served, "closed")  # released a little after the viewer left
    assert health["source"]["state"] == "closed" and health["watchers"]["stream"] == 0


def test_stream_keeps_to_max_fps_and_a_lost_source_is_retried(tmp_path, video, int8_model):
    copy = tmp_path / "clip.mp4"
    shutil.copy(video, copy)
    args = ["--source", str(copy), "--model", str(int8_model), "--max-fps", "5"]
    with ServeProcess(args) as s:
        connection, response = open_stream(s)
        read_mjpeg_frames(response, 1)
        frames0 = s.get_json("/healthz")[1]["frames"]
        jpegs = len(read_mjpeg_frames(response, 6))
        frames = s.get_json("/healthz")[1]["frames"] - frames0
        # 20 frames a second recognized, at most 5 of them encoded and sent (one in flight).
        assert frames >= (jpegs - 1) * FPS / 5 - 2

        # The video goes away: at its end it cannot be opened again; the viewer is told why,
        # the server goes on, and the source is tried again until it is back.
        events_connection, events = open_stream(s, "/api/events")
        copy.rename(tmp_path / "gone.mp4")
        for kind, data in iter(lambda: read_events(events, 1)[0], None):
            if kind == "state" and data["state"] == "error":
                break
        assert data["error"] == f"{copy}: no such file (and not a camera index, URL or picamera2)"
        assert s.get_json("/healthz")[1]["source"]["state"] in ("error", "opening")
        (tmp_path / "gone.mp4").rename(copy)
        for kind, _ in iter(lambda: read_events(events, 1)[0], None):
            if kind == "message":
                break  # results again
        assert s.get_json("/healthz")[1]["source"]["state"] == "running"
        hang_up(events_connection, events)
        hang_up(connection, response)
    assert s.returncode == 0


# -- safety ---------------------------------------------------------------------------------


def test_token_is_needed_on_every_request(video, int8_model):
    token = "s3cret-Token_1"
    with ServeProcess(["--source", str(video), "--model", str(int8_model), "--token", token]) as s:
        for method, path in [("GET", "/"), ("GET", "/healthz"), ("GET", "/api/latest"),
                             ("GET", "/stream.mjpg"), ("GET", "/api/events"),
                             ("POST", "/api/predict"), ("GET", "/nope")]:  # fmt: skip
            status, headers, body = s.request(method, path, b"x" if method == "POST" else None)
            assert status == 401, path
            assert "token" in json.loads(body)["error"] and "Bearer" in headers["WWW-Authenticate"]
        assert s.request("GET", "/healthz?token=wrong")[0] == 401
        assert s.request("GET", "/healthz", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("GET", f"/healthz?token={token}")[0] == 200
        assert s.request("GET", "/", headers={"Authorization": f"Bearer {token}"})[0] == 200
        connection, response = open_stream(s, f"/stream.mjpg?token={token}")
        assert len(read_mjpeg_frames(response, 1)) == 1
        hang_up(connection, response)
    assert s.returncode == 0


def test_clients_over_the_bound_get_503(video, int8_model):
    with ServeProcess(
        ["--source", str(video), "--model", str(int8_model), "--max-clients", "3"]
    ) as s:
        streams = [open_stream(s) for _ in range(3)]
        for _, response in streams:
            read_mjpeg_frames(response, 1)
        status, headers, body = s.request("GET", "/healthz")
        assert status == 503 and "too many clients" in json.loads(body)["error"]
        hang_up(*streams.pop())
        deadline = time.monotonic() + 20
        while (status := s.request("GET", "/healthz")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.1)  # the closed stream's thread notices at its next frame
        assert status == 200
        for stream in streams:
            hang_up(*stream)


def test_sigterm_closes_streams_and_the_camera(video, int8_model):
    s = ServeProcess(["--source", str(video), "--model", str(int8_model), "--always-on"])
    with s:
        connection, response = open_stream(s)
        read_mjpeg_frames(response, 1)
        assert s.stop() == 0
        with pytest.raises((EOFError, OSError, http.client.HTTPException)):
            read_mjpeg_frames(response, 1000)  # the stream ends, it does not hang
        hang_up(connection, response)
    assert "stopped after" in s.stderr


def test_listening_on_all_addresses_prints_urls_and_warns_without_token(video, int8_model):
    with ServeProcess(
        ["--source", str(video), "--model", str(int8_model), "--host", "0.0.0.0"],
        host="127.0.0.1",
    ) as s:
        assert s.get_json("/healthz")[0] == 200
    assert any(line.strip().startswith("open http://") for line in s.stdout_lines)
    assert "warning: no --token" in s.stderr


def test_source_that_cannot_be_opened_is_a_one_line_error(tmp_path, int8_model):
    missing = tmp_path / "missing.mp4"
    done = CliRunner().invoke(
        main, ["serve", "--source", str(missing), "--model", str(int8_model), "--port", "0"]
    )
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: {missing}: no such file (and not a camera index, URL or picamera2)"
    ]


# -- the Pi bundle's serving unit -----------------------------------------------------------


def test_systemd_serving_unit_verifies_and_serves_with_its_token(tmp_path, video, int8_model):
    from mnist_edge.export.rpi.package import TEMPLATE_FILES, TEMPLATES

    assert "mnist-edge-serve.service" in TEMPLATE_FILES
    unit = (TEMPLATES / "mnist-edge-serve.service").read_text().replace("@MODEL@", int8_model.name)
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    command = exec_start.removeprefix("ExecStart=").split()
    assert command[:2] == ["/home/pi/mnist-edge-rpi/venv/bin/mnist-edge", "serve"]
    assert "--host 0.0.0.0" in exec_start and "--source picamera2" in exec_start
    assert "EnvironmentFile=/home/pi/mnist-edge-rpi/serve.env" in unit.splitlines()

    token = "from-the-env-file"
    (tmp_path / "serve.env").write_text(f"MNIST_EDGE_TOKEN={token}\n")
    if shutil.which("systemd-analyze"):  # adapted as README-rpi.md says, then verified
        here = unit.replace("/home/pi/mnist-edge-rpi/venv/bin/mnist-edge", sys.executable)
        here = here.replace("/home/pi/mnist-edge-rpi", str(tmp_path))
        here = here.replace("\nUser=pi\n", f"\nUser={getpass.getuser()}\n")
        (tmp_path / "mnist-edge-serve.service").write_text(here)
        done = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "mnist-edge-serve.service")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and "mnist-edge-serve.service:" not in done.stderr, done.stderr

    # Its command, on the test video and a free port, with the token from the environment.
    args = command[2:]
    args[args.index("--source") + 1] = str(video)
    args[args.index("--model") + 1] = str(int8_model)
    del args[args.index("--port") : args.index("--port") + 2]
    env = {**os.environ, "MNIST_EDGE_TOKEN": token}
    with ServeProcess(args, env=env, host="127.0.0.1") as s:
        assert s.request("GET", "/healthz")[0] == 401
        assert s.request("GET", f"/healthz?token={token}")[0] == 200
    assert s.returncode == 0 and "warning: no --token" not in s.stderr
