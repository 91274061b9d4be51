"""Frame sources for `mnist-edge live`: a camera, a stream URL, a video file or Picamera2.

Two kinds of source, two different promises:
- a live camera or stream is read in a background thread that keeps only the newest frame, so
  a slow loop skips frames instead of falling behind (no lag building up);
- a video file is read frame by frame, every frame, in order. A background thread decodes
  ahead into a small bounded queue (it waits when the queue is full, it never drops), so
  decoding the next frame overlaps with recognizing this one.

Every source has `read() -> frame | None` (None: the stream ended normally) and `close()`; a
camera that cannot be opened or goes away raises CameraError with a one-line message.

A source opened with grey=True delivers grey frames, converted where the frame is read: in
the reader thread, beside decoding, for files and cameras. A loop that draws nothing never
needs the colours, and the conversion is one of the costliest steps on a whole frame.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import urllib.parse
from pathlib import Path

import cv2
import numpy as np

from mnist_edge.runtime.preprocess import to_gray

CAMERA_SIZE = (640, 480)  # asked of cameras; enough for digits on paper, cheap on a Pi
OPEN_TIMEOUT_MS = 10_000  # a stream URL that does not answer
FIRST_FRAME_TIMEOUT_S = 10.0  # cameras take a moment to start
FRAME_TIMEOUT_S = 5.0  # no new frame for this long: the camera went away
READ_AHEAD_FRAMES = 4  # decoded video frames waiting for the loop


class CameraError(Exception):
    """A source that cannot be opened or stopped delivering frames; one line, names it."""


class FrameSource:
    """Common interface: `name`, `fps` (0 if unknown), `live`, `read()`, `close()`."""

    name: str = "?"
    fps: float = 0.0
    live: bool = False
    grey: bool = False

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_source(spec: str, grey: bool = False) -> FrameSource:
    """'0' (camera index), 'picamera2', a URL (rtsp://, http://...), a camera device
    (/dev/video0) or a video file (a path or a file:// URL)."""
    spec = spec.strip()
    if spec.isdigit():
        return LatestFrameSource(int(spec), f"camera {spec}", grey)
    if spec.lower() == "picamera2":
        return Picamera2Source(grey)
    if spec.lower().startswith("file://"):
        return VideoFileSource(file_url_path(spec), grey)
    if "://" in spec:
        return LatestFrameSource(spec, spec, grey)
    with contextlib.suppress(OSError):
        if stat.S_ISCHR(os.stat(spec).st_mode):  # a V4L2 camera: live, newest frame only
            return LatestFrameSource(spec, spec, grey)
    return VideoFileSource(spec, grey)


def file_url_path(url: str) -> str:
    """The local path of a file:// URL (file:///home/me/a%20b.mp4 -> /home/me/a b.mp4)."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise CameraError(f"{url}: a file:// URL on another host ({parts.netloc}) cannot be read")
    return urllib.parse.unquote(parts.path)


def _fps_of(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps < 1000 else 0.0


class VideoFileSource(FrameSource):
    """Every frame of a video file, in order, decoded one step ahead in a thread."""

    def __init__(self, path: str | Path, grey: bool = False) -> None:
        self.name = str(path)
        self.grey = grey
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise CameraError(
                f"{path}: no such file (and not a camera index, URL or picamera2)"
            ) from None
        except OSError as error:
            raise CameraError(f"{path}: cannot read ({error.strerror})") from None
        if stat.S_ISDIR(mode):
            raise CameraError(f"{path}: is a folder, not a video file")
        if not stat.S_ISREG(mode):  # a FIFO would block the open for ever
            raise CameraError(f"{path}: is not a regular file (a FIFO, socket or device)")
        # The decoder gets every core but one: the loop's own work takes that one. (FFmpeg
        # would use them all; a decoder thread on the loop's core slows the loop: 2 cores, a
        # 640x480 video, 0.98 ms per frame with one decoder thread, 1.02 ms with two.)
        threads = max(1, (os.cpu_count() or 2) - 1)
        capture = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads])
        if not capture.isOpened():  # a backend that refuses the setting: open it plainly
            capture.release()
            capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{path}: cannot open as a video (not a video or unknown codec)")
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise CameraError(f"{path}: no frame could be decoded (empty or damaged video)")
        self.fps = _fps_of(capture)
        self.frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # from the header
        self.frames_decoded = 1
        self._frames: queue.Queue = queue.Queue(maxsize=READ_AHEAD_FRAMES)
        self._frames.put(to_gray(first) if grey else first)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._decode, args=(capture,), daemon=True)
        self._thread.start()

    def _decode(self, capture: cv2.VideoCapture) -> None:
        end = None
        try:
            while not self._stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    end = self._ended_early()
                    break
                self.frames_decoded += 1
                if self.grey:
                    frame = to_gray(frame)
                if not self._put(frame):
                    break
        finally:
            capture.release()
            self._put(end)  # the end of the video (or a crash here) reaches the reader

    def _ended_early(self) -> CameraError | None:
        """A damaged file stops decoding before the frame count in its header; a frame or 1 %
        short is allowed for containers whose count is an estimate from the duration."""
        missing = self.frame_count - self.frames_decoded
        if self.frame_count <= 0 or missing <= max(1, self.frame_count // 100):
            return None
        return CameraError(
            f"{self.name}: the video ends after {self.frames_decoded} of the "
            f"{self.frame_count} frames in its header (damaged file?)"
        )

    def _put(self, item: np.ndarray | None) -> bool:
        """Wait for room in the queue (never drop a frame); False when asked to stop."""
        while not self._stop.is_set():
            try:
                self._frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self) -> np.ndarray | None:
        if self._finished:
            return None
        frame = self._frames.get()
        if frame is None or isinstance(frame, CameraError):
            self._finished = True
        if isinstance(frame, CameraError):
            raise frame
        return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class LatestFrameSource(FrameSource):
    """A camera or stream read continuously in a thread; `read()` returns the newest frame."""

    live = True

    def __init__(self, device: int | str, name: str, grey: bool = False) -> None:
        self.name = name
        self.grey = grey
        camera = isinstance(device, int) or "://" not in device  # an index or /dev/video0
        if camera:
            capture = cv2.VideoCapture(device)
        else:
            # Timeouts for a stream that does not answer. Only for URLs: some camera backends
            # refuse to open with parameters they do not know.
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(FRAME_TIMEOUT_S * 1000)]
            capture = cv2.VideoCapture(device, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            what = "no such camera or no permission" if camera else "no answer"
            raise CameraError(f"{name}: cannot open ({what})")
        if camera:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, CAMERA_SIZE[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, CAMERA_SIZE[1])
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # do not let the driver queue old frames
        self.fps = _fps_of(capture)
        self._capture = capture
        self._newest: np.ndarray | None = None
        self._number = 0  # frames received so far; read() returns each number at most once
        self._returned = 0
        self._failed = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._grab, daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        while not self._stop.is_set():
            ok, frame = self._capture.read()
            if ok and frame is not None and self.grey:
                frame = to_gray(frame)
            with self._changed:
                if ok and frame is not None:
                    self._newest, self._number = frame, self._number + 1
                else:
                    self._failed = True
                self._changed.notify_all()
            if not ok:
                return

    def read(self) -> np.ndarray | None:
        timeout = FIRST_FRAME_TIMEOUT_S if self._returned == 0 else FRAME_TIMEOUT_S
        with self._changed:
            fresh = self._changed.wait_for(
                lambda: self._number > self._returned or self._failed, timeout=timeout
            )
            if self._number > self._returned:
                self._returned = self._number
                return self._newest
        if not fresh:
            raise CameraError(f"{self.name}: no frame for {timeout:.0f} s (camera gone?)")
        if self._returned == 0:
            raise CameraError(f"{self.name}: opened, but it delivers no frames")
        raise CameraError(f"{self.name}: stopped delivering frames (disconnected?)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=FRAME_TIMEOUT_S + 1)
        self._capture.release()


class Picamera2Source(FrameSource):
    """The Raspberry Pi CSI camera through libcamera's Picamera2 (not a V4L2 device there)."""

    live = True
    name = "picamera2"

    def __init__(self, grey: bool = False) -> None:
        self.grey = grey
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(
                "picamera2: the Picamera2 library is not installed (Raspberry Pi OS: "
                "sudo apt install python3-picamera2, and a venv made with --system-site-packages)"
            ) from None
        try:
            self._camera = Picamera2()
            # "RGB888" is B, G, R byte order in memory: what OpenCV calls BGR.
            main = {"size": CAMERA_SIZE, "format": "RGB888"}
            self._camera.configure(self._camera.create_video_configuration(main=main))
            self._camera.start()
        except Exception as error:  # libcamera raises many kinds; all mean "no camera"
            raise CameraError(f"picamera2: cannot open the camera ({_one_line(error)})") from None
        self.fps = 30.0

    def read(self) -> np.ndarray | None:
        # capture_array waits for the next completed frame: always a fresh one, no backlog.
        try:
            frame = self._camera.capture_array("main")
        except Exception as error:
            raise CameraError(
                f"picamera2: stopped delivering frames ({_one_line(error)})"
            ) from None
        return to_gray(frame) if self.grey else frame

    def close(self) -> None:
        try:
            self._camera.stop()
            self._camera.close()
        except Exception:
            pass  # closing a camera that already went away


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
