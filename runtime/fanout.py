"""Every stream and event client of `mnist-edge serve` written to from one thread.

A thread per client that wakes for each frame costs more than the frame's bytes: ten viewers
(each the MJPEG stream and the event stream, as the page opens them) were twenty thread
wake-ups per streamed frame, each some 20 us of Python and lock hand-offs on top of its
socket write. Here one thread wakes once per published JPEG, or when results are due for the
event streams, and hands the bytes to every client with a non-blocking send: the part is
built once, and each client costs one system call.

A client whose socket has no room keeps the rest of its part and gets nothing new until it
has taken it, so a slow viewer skips frames instead of building a backlog (and while every
viewer is busy, the loop encodes no JPEG); one that takes nothing for `stall_after` seconds is
dropped. The connection's own thread only waits for its client to hang up.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from mnist_edge.runtime.broadcast import CaptureHub, News

PART_START = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"  # an MJPEG part, before its JPEG
RETRY_WRITE_S = 0.02  # a client with a part still to send is tried again this often
STILL_HERE = b": still here\n\n"  # an event-stream comment, so proxies keep the line open


@dataclass(eq=False)
class Client:
    sock: socket.socket
    kind: str  # "stream" or "events"
    sent: int  # the frame number of the last JPEG or result handed to the socket
    state_seen: int = -1  # events: the version of the source's state last sent
    rest: memoryview | None = None  # what the socket had no room for yet
    progress_at: float = field(default_factory=time.monotonic)  # the last byte taken
    done: threading.Event = field(default_factory=threading.Event)


class FanOut:
    """`serve(sock, kind)` streams to a client until it hangs up; one thread writes to all."""

    def __init__(self, hub: CaptureHub, stall_after: float, keepalive: float) -> None:
        self.hub = hub
        self.stall_after = stall_after
        self.keepalive = keepalive
        self._clients: list[Client] = []
        # Held while writing: once a client is removed, its socket is never touched again
        # (its thread closes it, and the number may be reused by a new connection).
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def serve(self, sock: socket.socket, kind: str) -> None:
        """Stream to this client (its headers already sent) until it hangs up or is dropped."""
        hub = self.hub
        after = hub.newest_number() - 1 if kind == "events" else -1  # the newest result at once
        client = Client(sock, kind, after)
        sock.setblocking(False)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fan-out", daemon=True)
                self._thread.start()
            self._clients.append(client)
            self._count_ready()
        hub.poke()  # its first part now, not at the next frame
        try:
            while not client.done.is_set() and not hub.closing:
                # Readable: the client closed (a streaming client sends nothing else).
                if select.select([sock], [], [], self.keepalive)[0]:
                    break
        finally:
            self._remove(client)

    # -- the writing thread -----------------------------------------------------------------

    def _run(self) -> None:
        seen = -1
        while True:
            with self._lock:
                behind = any(c.rest is not None for c in self._clients)
            news = self.hub.wait_news(seen, RETRY_WRITE_S if behind else self.keepalive)
            fresh, seen = news.count != seen, news.count
            with self._lock:
                if news.closing:
                    for client in list(self._clients):
                        self._drop(client)
                    return
                self._write_all(news, fresh)
                self._count_ready()

    def _write_all(self, news: News, fresh: bool) -> None:
        """Each client's next part; event streams only on news (not when only a slow client
        was tried again), so they get at most --max-fps writes a second."""
        now = time.monotonic()
        part = None
        events: dict[tuple[int, int], tuple[bytes, int]] = {}  # shared by clients alike
        for client in list(self._clients):
            if client.rest is not None and not self._send(client, client.rest, now):
                continue  # still busy with what it had
            if client.kind == "stream":
                if news.jpeg is not None and news.jpeg[0] > client.sent:
                    if part is None:
                        part = news.jpeg[1] + b"\r\n" + PART_START
                    client.sent = news.jpeg[0]
                    self._send(client, part, now)
                continue
            data = b""
            if fresh:
                key = (client.sent, client.state_seen)
                if key not in events:
                    events[key] = event_chunks(news, client.sent, client.state_seen)
                data, client.sent = events[key]
                client.state_seen = news.state["version"]
            if not data and now - client.progress_at >= self.keepalive:
                data = STILL_HERE
            if data:
                self._send(client, data, now)

    def _send(self, client: Client, data: bytes | memoryview, now: float) -> bool:
        """Hand data to the socket, keeping what did not fit; True when all of it went."""
        try:
            taken = client.sock.send(data)
        except BlockingIOError:
            taken = 0
        except OSError:  # reset, broken pipe: gone
            self._drop(client)
            return False
        if taken:
            client.progress_at = now
        if taken == len(data):
            client.rest = None
            return True
        client.rest = memoryview(data)[taken:]
        if now - client.progress_at >= self.stall_after:
            self._drop(client)
        return False

    def _drop(self, client: Client) -> None:
        """Stop writing to a client and wake its thread (lock held)."""
        if client in self._clients:
            self._clients.remove(client)
        client.done.set()
        try:
            client.sock.shutdown(socket.SHUT_RDWR)  # its thread's select() returns
        except OSError:
            pass

    def _remove(self, client: Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            self._count_ready()

    def _count_ready(self) -> None:
        """Tell the loop how many viewers would take a new JPEG now (lock held)."""
        self.hub.viewers_ready = sum(
            1 for c in self._clients if c.kind == "stream" and c.rest is None
        )


def event_chunks(news: News, after: int, state_seen: int) -> tuple[bytes, int]:
    """The Server-Sent Events for the results after `after` (the state first, if it changed
    since `state_seen`), and the number of the last result in them."""
    chunks = []
    if news.state["version"] != state_seen:
        chunks.append(b"event: state\ndata: " + json.dumps(news.state).encode() + b"\n\n")
    for published in news.results:
        if published.number > after:
            chunks.append(b"id: %d\ndata: %s\n\n" % (published.number, published.json))
            after = published.number
    return b"".join(chunks), after
