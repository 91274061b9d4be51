"""The live loop: frames in, digits drawn (`mnist_edge.runtime.drawing`), JSON lines, a recording.

It knows frames and windows; what a digit is comes from `mnist_edge.runtime.digits.recognize`,
tensors and quantization stay inside `mnist_edge.runtime.classifier`. `mnist-edge live` and
`mnist-edge bench` run the same `run_live` loop, so the benchmark measures what users run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no flock; a killed recorder's temporary file stays
    fcntl = None

from mnist_edge.runtime.camera import CameraError, FrameSource
from mnist_edge.runtime.classifier import DigitClassifier, ModelError
from mnist_edge.runtime.digits import FrameResult, recognize
from mnist_edge.runtime.drawing import draw_results, to_bgr

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
KEY_ESC = 27


class VideoRecorder:
    """An annotated video written to a temporary file, renamed into place when closed.

    Closing always finishes the file (the container index is written), whatever ended the
    loop: the end of the video, q, Ctrl+C, SIGTERM or SIGHUP, or a camera that went away. The
    temporary file is locked (flock) while it is written, so a recorder that was killed
    (SIGKILL, a power cut) is told from one still running: the next recorder for the same
    output removes the dead one's temporary file.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC_BY_SUFFIX:
            raise CameraError(
                f"{path}: unsupported video type {suffix or '(none)'}; "
                f"use one of {', '.join(FOURCC_BY_SUFFIX)}"
            )
        if not self.path.parent.is_dir():
            raise CameraError(f"{path}: folder {self.path.parent} does not exist")
        self.fourcc = cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[suffix])
        self.fps = fps if fps > 0 else 10.0
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        pattern = f".{self.path.name}.*.tmp{suffix}"
        for stale in self.path.parent.glob(pattern):
            _remove_if_unlocked(stale)
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=f".tmp{suffix}", dir=self.path.parent
            )
        except OSError as error:
            raise CameraError(f"{path}: cannot record there ({error.strerror})") from None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until close()
        self._lock_fd = fd
        self._tmp = Path(tmp)

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:  # the size is known at the first frame
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), self.fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise CameraError(f"{self.path}: OpenCV cannot open a video writer for it")
        self._writer.write(to_bgr(frame))
        self.frames += 1

    def close(self) -> None:
        with signals_held():  # a second Ctrl+C or SIGTERM must not cut the finishing short
            if self._writer is not None:
                self._writer.release()
            if self.frames:
                os.chmod(self._tmp, 0o644)
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _remove_if_unlocked(path: Path) -> None:
    """Remove a recorder's temporary file if no running recorder holds its lock."""
    if fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except OSError:
        pass  # locked: another live command is recording into it
    finally:
        os.close(fd)


STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_signals_as_ctrl_c(command: Callable) -> Callable:
    """A command during which SIGTERM (`systemctl stop`, `kill`) and SIGHUP (the terminal or
    SSH session closed) do what Ctrl+C does: the loop ends and the recording is finished."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            previous = {s: signal.signal(s, _raise_keyboard_interrupt) for s in STOP_SIGNALS}
        except ValueError:  # not the main thread: signals are not ours to handle
            return command(*args, **kwargs)
        try:
            return command(*args, **kwargs)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    return run


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl+C, SIGTERM and SIGHUP back for a moment; they arrive when it is over."""
    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    held = {signal.SIGINT, *STOP_SIGNALS}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class LiveStats:
    frames: int = 0
    seconds: float = 0.0  # wall time of the whole loop, reading included
    error: str | None = None  # a camera that went away mid-stream; the loop ended cleanly


class Window:
    """An OpenCV window with the keys of `live`: q/Esc quit, s snapshot, p pause."""

    def __init__(self, title: str, snapshot_dir: Path) -> None:
        self.title = title
        self.snapshot_dir = snapshot_dir
        # Without a display, Qt aborts the whole process instead of raising: check first.
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise CameraError("no display to open a window on (DISPLAY is not set); use --headless")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise CameraError(
                "cannot open a window (no display?); use --headless for servers"
            ) from None

    def show(self, image: np.ndarray, until: float = 0.0) -> bool:
        """Show the image and handle keys until time.perf_counter() reaches `until` (a video
        file plays at its own speed) and while paused; False when the user asked to quit."""
        cv2.imshow(self.title, image)
        paused = False
        while True:
            wait_ms = 30 if paused else max(1, round((until - time.perf_counter()) * 1000))
            key = cv2.waitKey(min(wait_ms, 30)) & 0xFF
            if key in (ord("q"), KEY_ESC) or not self._visible():
                return False
            if key == ord("s"):
                self._snapshot(image)
            if key == ord("p"):
                paused = not paused
            if not paused and time.perf_counter() >= until:
                return True

    def _visible(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def _snapshot(self, image: np.ndarray) -> None:
        millis = int(time.time() * 1000) % 1000
        path = self.snapshot_dir / f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{millis:03d}.png"
        cv2.imwrite(str(path), image)
        print(f"saved {path}", file=sys.stderr)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def run_live(
    source: FrameSource,
    classifier: DigitClassifier,
    min_confidence: float = 0.0,
    drop_weak: bool = False,
    window: Window | None = None,
    recorder: VideoRecorder | None = None,
    on_result: Callable[[int, FrameResult, float], None] | None = None,
    on_frame: Callable[[np.ndarray, int, FrameResult, float], None] | None = None,
    max_frames: int | None = None,
    mirror: bool = False,
) -> LiveStats:
    """Read, recognize, report and show/record until the source ends, the user quits or
    `max_frames` frames were processed. A camera that fails mid-stream ends the loop with
    `stats.error` set; the caller closes the source, window and recorder. `on_frame` gets the
    frame with its result (`serve` draws and encodes it for its viewers)."""
    stats = LiveStats()
    fps = 0.0
    start = last = time.perf_counter()
    # In a window a video file plays at its own frame rate; everywhere else, as fast as it can.
    interval = 1.0 / source.fps if window is not None and not source.live and source.fps else 0.0
    due = start
    # One OpenCV thread while the loop runs: the reader thread (a decoder, a camera) keeps
    # another core busy, and OpenCV's calls here are small ones split across threads, so a
    # split call waits for its part on the busy core. (2 cores, a 640x480 video: 0.98 ms per
    # frame with one thread, 1.03 ms with two.)
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        while max_frames is None or stats.frames < max_frames:
            frame = source.read()
            if frame is None:
                break
            if mirror:
                frame = cv2.flip(frame, 1)
            t0 = time.perf_counter()
            result = recognize(
                frame, classifier, min_confidence=min_confidence, drop_weak=drop_weak
            )
            latency_ms = (time.perf_counter() - t0) * 1000.0
            if on_result is not None:
                on_result(stats.frames, result, latency_ms)
            if on_frame is not None:
                on_frame(frame, stats.frames, result, latency_ms)
            stats.frames += 1
            now = time.perf_counter()
            # A smoothed frame rate of the whole loop (reading and drawing included).
            rate = 1.0 / max(now - last, 1e-6)
            fps = rate if fps == 0.0 else 0.9 * fps + 0.1 * rate
            last = now
            if window is not None or recorder is not None:
                banner = (
                    f"{classifier.name}  {fps:4.1f} FPS  {latency_ms:4.1f} ms  {result.text or '-'}"
                )
                annotated = draw_results(frame, result, banner)
                if recorder is not None:
                    recorder.write(annotated)
                due = max(due + interval, time.perf_counter() - interval)  # no catch-up bursts
                if window is not None and not window.show(annotated, until=due):
                    break
    except (CameraError, ModelError) as error:
        stats.error = str(error)
    except KeyboardInterrupt:
        pass  # Ctrl+C is a way to quit: finish the recording like q does
    finally:
        cv2.setNumThreads(opencv_threads)
    stats.seconds = time.perf_counter() - start
    return stats


def print_json_line(index: int, result: FrameResult, latency_ms: float) -> None:
    line = {"frame": index, **result.to_json(), "latency_ms": round(latency_ms, 3)}
    print(json.dumps(line), flush=True)
