"""`mnist-edge serve` as a real process on a free port, for the tests and the benchmark.

with ServeProcess(["--source", "video.mp4"]) as served:
    health = served.get_json("/healthz")
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

START_TIMEOUT_S = 60.0  # imports and the model on a loaded 2-core machine
STOP_TIMEOUT_S = 20.0


class ServeProcess:
    def __init__(self, args: list[str], env: dict | None = None, host: str | None = None) -> None:
        self.args = args
        self.env = env
        self._host = host  # where to connect, if not the printed URL's host
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.stdout_lines: list[str] = []
        self.stderr = ""
        self.returncode: int | None = None

    def __enter__(self) -> ServeProcess:
        command = [sys.executable, "-m", "mnist_edge", "serve", "--port", "0", *self.args]
        self._stderr_file = tempfile.TemporaryFile("w+")  # a file: never fills up like a pipe
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr_file, text=True, env=self.env
        )
        started = threading.Event()

        def read_stdout() -> None:  # in a thread: the server runs until told to stop
            for line in self.process.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                found = re.search(r"open (http://\S+?/)", line)
                if found and not self.url:
                    self.url = found.group(1)
                    started.set()

        self._reader = threading.Thread(target=read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not started.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start: {self.stdout_lines} {self.stderr}")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._host or urlsplit(self.url).hostname

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def stop(self) -> int:
        """SIGTERM, as systemd stops a service; the exit status."""
        if self.returncode is None and self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=5)
            self._stderr_file.seek(0)
            self.stderr = self._stderr_file.read()
            self._stderr_file.close()
            self.process.stdout.close()
            self.returncode = self.process.returncode
        return self.returncode

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict, bytes]:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def get_json(self, path: str, headers: dict | None = None) -> tuple[int, dict]:
        status, _, body = self.request("GET", path, headers=headers)
        return status, json.loads(body)

    def raw_socket(self, timeout: float = 30.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)


def read_mjpeg_frames(response, count: int, limit: int = 50_000_000) -> list[bytes]:
    """The next `count` JPEGs of a multipart/x-mixed-replace response (boundary 'frame')."""
    buffer, frames = b"", []
    boundary = b"--frame\r\n"
    while len(frames) < count:
        chunk = response.read1(1 << 16) if hasattr(response, "read1") else response.recv(1 << 16)
        if not chunk:
            raise EOFError(f"the stream ended after {len(frames)} frames")
        buffer += chunk
        if len(buffer) > limit:
            raise ValueError("no frame boundary in a long stream")
        while True:
            start = buffer.find(boundary)
            head_end = buffer.find(b"\r\n\r\n", start)
            end = buffer.find(b"\r\n" + boundary, head_end)
            if start < 0 or head_end < 0 or end < 0:
                break
            frames.append(buffer[head_end + 4 : end])
            buffer = buffer[end + 2 :]
    return frames[:count]


def read_events(response, count: int) -> list[tuple[str, dict]]:
    """The next `count` Server-Sent Events of a response: (event type, JSON data)."""
    events: list[tuple[str, dict]] = []
    kind, data = "message", []
    while len(events) < count:
        line = response.readline()
        if not line:
            raise EOFError(f"the event stream ended after {len(events)} events")
        line = line.decode().rstrip("\r\n")
        if not line:
            if data:
                events.append((kind, json.loads("\n".join(data))))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events
