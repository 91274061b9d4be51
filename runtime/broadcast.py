"""One capture loop for every client of `mnist-edge serve`.

The loop is `run_live`, the same one `live` runs, in a thread of its own. Each processed frame
is published once: its result as JSON bytes (kept with the last few, for event streams) and,
at most `max_fps` times a second and only while a viewer of the stream is ready for a new
one, its annotated JPEG. One writer (`mnist_edge.runtime.fanout`) is told when there is news
(a JPEG, results due for the event streams, a new source state) and hands it to every client,
so ten viewers cost one recognition and one JPEG per frame, a slow viewer skips frames instead
of building a backlog, and a viewer that goes away never stops or slows the loop.

The camera is opened when the first client starts watching (the stream or the events) and
released `release_after` seconds after the last one left, unless `always_on`. A camera that
fails is tried again every few seconds while someone watches. A video file stands in for a
camera: it plays at its own frame rate and starts again at its end.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from mnist_edge.runtime.camera import CameraError, FrameSource
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import FrameResult
from mnist_edge.runtime.drawing import draw_results
from mnist_edge.runtime.live import run_live

RETRY_AFTER_S = 3.0  # a camera that failed, tried again while someone watches
RECENT_RESULTS = 32  # results kept for an event client that fell a little behind
WATCH_KINDS = ("stream", "events")


class Published:
    """A frame's result record, serialized once for all event clients, only if there are any
    (0.03 ms a frame)."""

    __slots__ = ("number", "record", "_json")

    def __init__(self, number: int, record: dict) -> None:
        self.number = number  # frames processed since the server started, 0 first
        self.record = record
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.record).encode()
        return self._json


@dataclass(frozen=True)
class News:
    """What the writer of the streams gets when woken."""

    count: int  # how many times there was news so far
    closing: bool
    jpeg: tuple[int, bytes] | None  # the newest annotated JPEG and its frame number
    results: list[Published]  # the results still held, oldest first
    state: dict  # the source's state, with its "version"


class ServedSource(FrameSource):
    """The source as the serving loop reads it: a video file paced at its own frame rate and
    started again at its end; `read()` ends the loop (None) when `keep_going()` says so."""

    def __init__(
        self,
        open_frames: Callable[[], FrameSource],
        keep_going: Callable[[], bool],
        fallback_fps: float,
    ) -> None:
        self._open = open_frames
        self._keep_going = keep_going
        self._frames = open_frames()
        self.name, self.live, self.fps = self._frames.name, self._frames.live, self._frames.fps
        self._interval = 0.0 if self.live else 1.0 / (self.fps or fallback_fps)
        self._due = time.perf_counter()
        self.position = -1  # the index in the video file of the frame read last

    def read(self) -> np.ndarray | None:
        if self._interval:
            while (wait := self._due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.05))  # a slow video still stops at once
                if not self._keep_going():
                    return None
            self._due = max(self._due + self._interval, time.perf_counter() - self._interval)
        if not self._keep_going():
            return None
        frame = self._frames.read()
        self.position += 1
        if frame is None and not self.live:  # the end of the video: from the start again
            self._frames.close()
            self._frames = self._open()
            self.position = 0
            frame = self._frames.read()
        return frame

    def close(self) -> None:
        self._frames.close()


class CaptureHub:
    """The single capture loop and what it last published; every method is thread-safe."""

    def __init__(
        self,
        open_frames: Callable[[], FrameSource],
        classifier: DigitClassifier,
        *,
        name: str = "source",
        min_confidence: float = 0.0,
        drop_weak: bool = False,
        max_fps: float = 15.0,
        jpeg_quality: int = 80,
        always_on: bool = False,
        release_after: float = 5.0,
    ) -> None:
        self._open_frames = open_frames
        self.classifier = classifier
        self.name = name  # the source as the user named it
        self.min_confidence = min_confidence
        self.drop_weak = drop_weak
        self.max_fps = max_fps
        self.jpeg_quality = jpeg_quality
        self.always_on = always_on
        self.release_after = release_after
        self.started = time.monotonic()

        self._lock = threading.Lock()
        # News for the writer of the streams: a JPEG, results due, a new state, a new client.
        self._news = threading.Condition(self._lock)
        self._news_count = 0
        self._watchers = dict.fromkeys(WATCH_KINDS, 0)
        self._idle_since = time.monotonic()
        self._running = False  # the loop thread runs and has not been told to stop
        self._closing = False
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: ServedSource | None = None
        self.state, self.error, self.state_version = "closed", None, 0
        self.opened = 0  # how many times the source was opened
        self.frames = 0
        self.jpegs = 0  # annotated JPEGs encoded: one per streamed frame, whatever the viewers
        self.fps = 0.0
        self._last_frame_at = 0.0
        self.latest: dict | None = None
        self._recent: deque[Published] = deque(maxlen=RECENT_RESULTS)
        self._jpeg: tuple[int, bytes] | None = None
        self._jpeg_due = 0.0
        self._events_due = 0.0
        # Event streams get the results at most this often, all since the last in one write.
        self._events_gap = min(1.0 / max_fps, 0.25)
        self.viewers_ready = 0  # stream clients ready for a new JPEG (the writer keeps it)

    # -- clients ----------------------------------------------------------------------------

    @contextmanager
    def watch(self, kind: str) -> Iterator[None]:
        """While a client watches the stream or the events, the camera runs."""
        with self._lock:
            self._watchers[kind] += 1
            self._start_locked()
        try:
            yield
        finally:
            with self._lock:
                self._watchers[kind] -= 1
                if not any(self._watchers.values()):
                    self._idle_since = time.monotonic()

    def start(self) -> None:
        """Start the loop now (`--always-on`)."""
        with self._lock:
            self._start_locked()

    @property
    def closing(self) -> bool:
        return self._closing

    def newest_number(self) -> int:
        """The number of the newest result still held (-1: none): where a new client starts."""
        with self._lock:
            return self._recent[-1].number if self._recent else -1

    def poke(self) -> None:
        """Wake the writer of the streams (a new client is there)."""
        with self._lock:
            self._tell_locked()

    def wait_news(self, seen: int, timeout: float) -> News:
        """What is held now, once there was news since `seen` (or after `timeout` seconds)."""
        with self._lock:
            self._news.wait_for(lambda: self._news_count != seen or self._closing, timeout)
            return News(
                self._news_count, self._closing, self._jpeg, list(self._recent),
                self._state_locked(),
            )  # fmt: skip

    def health(self) -> dict:
        with self._lock:
            return {
                "uptime_s": round(time.monotonic() - self.started, 1),
                "frames": self.frames,
                "jpegs": self.jpegs,
                "model": self.classifier.name,
                "source": self._state_locked(),
                "watchers": dict(self._watchers),
            }

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop, release the camera, wake every waiting client."""
        with self._lock:
            self._closing = True
            self._closed.set()
            self._running = False
            self._tell_locked()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- the loop ---------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._running or self._closing:
            return
        self._running = True
        previous = self._thread  # may still be releasing the camera: the new loop waits
        self._thread = threading.Thread(
            target=self._run, args=(previous,), name="capture", daemon=True
        )
        self._thread.start()

    def _keep_going(self) -> bool:
        """Asked before every frame: False once nobody watched for `release_after` seconds."""
        with self._lock:
            if self._closing:
                self._running = False
            elif not (self.always_on or any(self._watchers.values())):
                if time.monotonic() - self._idle_since >= self.release_after:
                    self._running = False
            return self._running

    def _run(self, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()
        try:
            while self._keep_going():
                error = self._run_once()
                if error is None:
                    break  # told to stop
                self._set_state("error", error)
                self._closed.wait(RETRY_AFTER_S)  # then again, if someone still watches
        finally:
            with self._lock:
                self._running = self._running and self._thread is not threading.current_thread()
                last_error = self.error if self.state == "error" else None
            self._set_state("closed", last_error)

    def _run_once(self) -> str | None:
        """Open the source and run the loop until told to stop (None) or it fails (why)."""
        self._set_state("opening")
        try:
            source = ServedSource(self._open_frames, self._keep_going, self.max_fps)
        except CameraError as error:
            return str(error)
        with self._lock:
            self._source, self.opened = source, self.opened + 1
        self._set_state("running")
        try:
            stats = run_live(
                source,
                self.classifier,
                min_confidence=self.min_confidence,
                drop_weak=self.drop_weak,
                on_frame=self._publish,
            )
            return stats.error
        except Exception as error:  # a bug or an odd frame must not leave viewers hanging
            return f"the capture loop failed: {type(error).__name__}: {error}"
        finally:
            source.close()
            with self._lock:  # nothing stale for the next viewer
                self._source, self._jpeg = None, None
                self._recent.clear()

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state, self.error = state, error
            self.state_version += 1
            self._tell_locked()

    def _tell_locked(self) -> None:
        self._news_count += 1
        self._news.notify_all()

    def _state_locked(self) -> dict:
        return {
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "opened": self.opened,
            "version": self.state_version,
        }

    def _publish(self, frame: np.ndarray, index: int, result: FrameResult, ms: float) -> None:
        """Called by the loop for every frame: the record for all, a JPEG for the viewers."""
        now = time.perf_counter()
        if index == 0:
            self.fps = 0.0
        else:  # the rate frames are processed at, smoothed like live's banner
            rate = 1.0 / max(now - self._last_frame_at, 1e-6)
            self.fps = rate if self.fps == 0.0 else 0.9 * self.fps + 0.1 * rate
        self._last_frame_at = now
        record = {
            "frame": self.frames,
            **result.to_json(),
            "latency_ms": round(ms, 3),
            "time": round(time.time(), 3),
            "fps": round(self.fps, 2),
        }
        source = self._source
        if source is not None and not source.live:
            record["video_frame"] = source.position
        jpeg = None
        # Only for a viewer that is ready for it: a viewer still sending the last frame over a
        # slow network costs no encoding.
        interval = 1.0 / self.max_fps
        # A quarter interval early is on time: a camera at twice --max-fps, its frames a
        # little irregular, still gets every other frame encoded, not every third. The due
        # time moves on by whole intervals, so on average it is never more than --max-fps.
        if self.viewers_ready and now >= self._jpeg_due - interval / 4:
            self._jpeg_due = max(self._jpeg_due + interval, now - interval / 2)
            jpeg = self._encode(frame, result, ms)
        published = Published(self.frames, record)
        if self._watchers["events"]:
            published.json  # noqa: B018  in this thread: ~1 % less CPU than in the writer
        with self._lock:
            self.latest = record
            self._recent.append(published)
            if jpeg is not None:
                self._jpeg = (self.frames, jpeg)
                self.jpegs += 1
            # The writer wakes for a JPEG (and sends the results with it, so the page's number
            # is the picture's), or when the event streams are due: not for every frame.
            gap = self._events_gap
            if jpeg is not None or (self._watchers["events"] and now >= self._events_due - gap / 4):
                self._events_due = now + gap
                self._tell_locked()
            self.frames += 1

    def _encode(self, frame: np.ndarray, result: FrameResult, ms: float) -> bytes | None:
        banner = f"{self.classifier.name}  {self.fps:4.1f} FPS  {ms:4.1f} ms  {result.text or '-'}"
        annotated = draw_results(frame, result, banner)
        ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        return jpeg.tobytes() if ok else None
