"""The HTTP side of `mnist-edge serve`: the routes, the token, the client bound, uploads.

The standard library's threading HTTP server, one thread per connection (what picamera2's
MJPEG example uses): no dependency for the Pi, and a thread per viewer is what a long-lived
MJPEG or event stream needs anyway. Every response closes its connection, so an idle
keep-alive never holds one of the `max_clients` slots. Only the routes below exist: no files
are served, any other path is 404.

    GET  /              the page (serve_page.html, self-contained)
    GET  /stream.mjpg   annotated frames, multipart/x-mixed-replace JPEG
    GET  /api/latest    the latest frame's result
    GET  /api/events    Server-Sent Events: every processed frame's result, and state changes
    POST /api/predict   an image (the body, or multipart field `image`): predict's JSON record
    GET  /healthz       uptime, frames processed, the source's state
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from mnist_edge.runtime.broadcast import CaptureHub
from mnist_edge.runtime.fanout import PART_START, FanOut
from mnist_edge.runtime.uploads import UploadReader, image_from_multipart

MAX_CLIENTS = 32  # connections at once: viewers, event streams, API calls
CLIENT_TIMEOUT_S = 20.0  # a client that sends or reads nothing for this long is dropped
KEEPALIVE_S = 10.0  # an idle event stream gets a comment this often
UPLOAD_SLOTS = 2  # uploads read into memory at once (each up to --max-upload-mb)
DRAIN_S = 2.0  # after refusing a body: how long it is read and thrown away, so the client
# gets the answer instead of a reset connection
PAGE = resources.files("mnist_edge.runtime").joinpath("serve_page.html")
# The page loads nothing from elsewhere; the token in its URL goes to no other site.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class DigitServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(
        self,
        host: str,
        port: int,
        hub: CaptureHub,
        uploads: UploadReader,
        token: str | None = None,
        max_clients: int = MAX_CLIENTS,
        max_upload_bytes: int = 10 * 2**20,
        verbose: bool = False,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.hub, self.uploads, self.token = hub, uploads, token
        self.fanout = FanOut(hub, stall_after=CLIENT_TIMEOUT_S, keepalive=KEEPALIVE_S)
        self.max_clients, self.max_upload_bytes = max_clients, max_upload_bytes
        self.verbose = verbose
        self.page = PAGE.read_bytes()
        self.upload_slots = threading.Semaphore(UPLOAD_SLOTS)
        self._slots = threading.BoundedSemaphore(max_clients)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), ServeHandler)

    @property
    def clients(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            refuse_busy(request)
            self.shutdown_request(request)
            return
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            self._slots.release()

    def close_connections(self, timeout: float = 3.0) -> None:
        """Shut every open connection (a stream blocked on a stalled client too), wait a little."""
        with self._connections_lock:
            open_now = list(self._connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while self.clients and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self, line: str) -> None:
        if self.verbose:
            print(line, file=sys.stderr, flush=True)


def refuse_busy(request: socket.socket) -> None:
    """503 to a connection over the bound, from the accepting thread: never blocks long."""
    body = json.dumps({"error": "too many clients at once; try again in a few seconds"})
    answer = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 5\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    try:
        request.settimeout(0.5)
        request.sendall(answer.encode())
    except OSError:
        pass


class ServeHandler(BaseHTTPRequestHandler):
    server: DigitServer
    protocol_version = "HTTP/1.1"  # for Expect: 100-continue; every answer still closes
    server_version = "mnist-edge"
    sys_version = ""
    timeout = CLIENT_TIMEOUT_S

    # -- dispatch ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        problem = self._precheck()
        if problem is not None:
            self._refuse(*problem)
            return
        route = ROUTES[(self.command, urlsplit(self.path).path)]
        try:
            route(self)
        except OSError:  # the client went away or stalled (or we shut it at exit)
            self.close_connection = True

    def _precheck(self) -> tuple[int, str, dict] | None:
        """What is wrong with this request before its body is read: (status, error, headers)."""
        url = urlsplit(self.path)
        if not self._authorized(url.query):
            return (
                401,
                "this server needs its token: add ?token=... to the URL "
                "or send the header Authorization: Bearer ...",
                {"WWW-Authenticate": 'Bearer realm="mnist-edge"'},
            )
        if (self.command, url.path) not in ROUTES:
            allowed = [method for method, path in ROUTES if path == url.path]
            if allowed:
                return 405, f"{url.path} takes {', '.join(allowed)}", {"Allow": ", ".join(allowed)}
            return 404, f"no such page: {url.path}", {}
        if self.command == "POST":
            length = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding") or length is None:
                return 411, "send the image with a Content-Length (no chunked uploads)", {}
            if not length.isdigit():
                return 400, f"bad Content-Length: {length!r}", {}
            limit = self.server.max_upload_bytes
            if int(length) > limit:
                return (
                    413,
                    f"the upload is {int(length):,} bytes, over the limit of {limit:,} "
                    f"(--max-upload-mb {limit / 2**20:g})",
                    {},
                )
        return None

    def handle_expect_100(self) -> bool:
        # curl and other clients ask before sending a large body: refuse before it is sent.
        problem = self._precheck()
        if problem is not None:
            self._refuse(*problem)
            return False
        return super().handle_expect_100()

    def _authorized(self, query: str) -> bool:
        token = self.server.token
        if not token:
            return True
        given = parse_qs(query).get("token", [])
        scheme, _, bearer = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given.append(bearer.strip())
        return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)

    def _refuse(self, status: int, error: str, headers: dict) -> None:
        self._send_json(status, {"error": error}, headers)
        if self.command == "POST" and self.headers.get("Content-Length", "0") != "0":
            self._drain()

    def _drain(self) -> None:
        """Throw away a body we refused, for a moment, then close: the client reads our answer
        instead of a reset (it may have sent the whole body before reading)."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + DRAIN_S
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    # -- responses --------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, record: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(record).encode(), "application/json", headers)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")  # a reverse proxy must not buffer it
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        # The query is left out: it may hold the token.
        line = format % args
        path = getattr(self, "path", "")  # not there for a request line too long to read
        if path:
            line = line.replace(path, urlsplit(path).path)
        self.server.log(f"{self.address_string()} {line}")

    # -- routes -----------------------------------------------------------------------------

    def page(self) -> None:
        self._send(200, self.server.page, "text/html; charset=utf-8", PAGE_HEADERS)

    def stream(self) -> None:
        self._start_stream("multipart/x-mixed-replace; boundary=frame")
        # Each JPEG is followed at once by the next part's boundary and headers: Chromium shows
        # a part only once the next one has begun (else the picture lags one frame behind).
        self.wfile.write(PART_START)
        with self.server.hub.watch("stream"):
            self.server.fanout.serve(self.connection, "stream")

    def events(self) -> None:
        self._start_stream("text/event-stream; charset=utf-8")
        self.wfile.write(b"retry: 2000\n\n")
        # The results come at most --max-fps times a second, every result since the last in
        # one write: a client woken for each frame of a fast camera costs more than the frame.
        with self.server.hub.watch("events"):
            self.server.fanout.serve(self.connection, "events")

    def latest(self) -> None:
        record = self.server.hub.latest
        if record is None:
            error = (
                "no frame processed yet: the camera runs while someone watches /stream.mjpg "
                "or /api/events (or with --always-on)"
            )
            self._send_json(503, {"error": error, "source": self.server.hub.health()["source"]})
            return
        self._send_json(200, record)

    def healthz(self) -> None:
        server = self.server
        health = server.hub.health()
        self._send_json(
            200,
            {
                "status": "ok",
                **health,
                "clients": server.clients,
                "max_clients": server.max_clients,
                "max_upload_bytes": server.max_upload_bytes,
            },
        )

    def predict(self) -> None:
        if not self.server.upload_slots.acquire(timeout=CLIENT_TIMEOUT_S):
            self._refuse(503, "too many uploads at once; try again", {"Retry-After": "5"})
            return
        try:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if len(body) < int(self.headers["Content-Length"]):
                self._send_json(400, {"error": "the upload ended before its Content-Length"})
                return
            content_type = self.headers.get("Content-Type", "")
            name, data = "upload", body
            if content_type.lower().startswith("multipart/form-data"):
                field = image_from_multipart(content_type, body)
                if field is None:
                    self._send_json(400, {"error": "the form has no file field named 'image'"})
                    return
                name, data = field
                del body  # the field's copy is all that is needed
            status, record = self.server.uploads.read(name, data)
        finally:
            self.server.upload_slots.release()
        self._send_json(status, record)


ROUTES = {
    ("GET", "/"): ServeHandler.page,
    ("GET", "/stream.mjpg"): ServeHandler.stream,
    ("GET", "/api/latest"): ServeHandler.latest,
    ("GET", "/api/events"): ServeHandler.events,
    ("GET", "/healthz"): ServeHandler.healthz,
    ("POST", "/api/predict"): ServeHandler.predict,
}
