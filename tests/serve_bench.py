"""What serving costs: CPU per frame of `serve` with 0, 1 and 10 viewers against `live --headless`
on the same video, and the time to the first frame in a real browser.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.serve_bench [--rounds 3] [--seconds 10]

CPU time, not wall time (the machine may be shared). Two ways to feed the same 640x480 frames:
- a video file: `live --headless` reads it as fast as it can (its start-up, imports and the
  model, is taken out by subtracting a run of one frame); `serve` plays it at its own 30 fps,
  as it always plays files;
- a camera: the frames as a 30 fps MJPEG stream over HTTP (an IP camera, emulated here), which
  both commands read at the camera's pace.
`serve`'s and the camera-fed `live`'s CPU is read from /proc between two moments of a steady
run, with the frames processed between them. A viewer is what the page opens: the MJPEG
stream and the event stream, both read as they come. All runs take turns, `--rounds` times;
the table gives medians.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.trainer.data import load_mnist
from tests.conftest import REPO_ROOT, mnist_dir
from tests.serve_process import ServeProcess
from tests.synthetic import camera_frame, sample_numbers, write_video

FPS = 30.0
DISTINCT_FRAMES = 150
LONG_REPEATS = 10  # live's video: the same frames ten times (1500 frames)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, threads included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def child_cpu(command: list[str]) -> float:
    """CPU seconds of a command run to its end (its threads and children included)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()}")
    process.stderr.close()
    return usage.ru_utime + usage.ru_stime


def live_cpu_per_frame(video: Path, frames: int, model: Path) -> float:
    live = [sys.executable, "-m", "mnist_edge", "live", "--headless", "--source", str(video)]
    live += ["--model", str(model)]
    whole = child_cpu(live)
    start_up = child_cpu([*live, "--max-frames", "1"])
    return (whole - start_up) / (frames - 1)


class MjpegCamera(BaseHTTPRequestHandler):
    """An IP camera: the frames as JPEGs, FPS a second, round and round, to each client."""

    jpegs: list[bytes] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        due = time.perf_counter()
        try:
            for jpeg in itertools.cycle(self.jpegs):
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                due += 1.0 / FPS
                time.sleep(max(0.0, due - time.perf_counter()))
        except OSError:
            pass


def start_camera(frames: list[np.ndarray]) -> tuple[ThreadingHTTPServer, str]:
    MjpegCamera.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                         for f in frames]  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), MjpegCamera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/camera.mjpg"


def steady_cpu_per_frame(pid: int, frames_so_far, seconds: float) -> tuple[float, float]:
    """(CPU seconds per frame, frames per second) between two moments `seconds` apart."""
    frames0, cpu0, t0 = frames_so_far(), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    frames1, cpu1, t1 = frames_so_far(), cpu_seconds(pid), time.monotonic()
    return (cpu1 - cpu0) / max(frames1 - frames0, 1), (frames1 - frames0) / (t1 - t0)


def live_on_camera(url: str, seconds: float, model: Path) -> tuple[float, float]:
    command = [sys.executable, "-m", "mnist_edge", "live", "--headless", "--json"]
    command += ["--source", url, "--model", str(model)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines = [0]

    def count() -> None:
        for _ in process.stdout:
            lines[0] += 1

    threading.Thread(target=count, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while lines[0] < 30 and time.monotonic() < deadline:  # started, interpreter set up
            time.sleep(0.1)
        return steady_cpu_per_frame(process.pid, lambda: lines[0], seconds)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


class Viewer:
    """One browser's worth of reading: the stream and the events, each in a thread."""

    def __init__(self, served: ServeProcess) -> None:
        self.connections = []
        for path in ("/stream.mjpg", "/api/events"):
            raw = served.raw_socket()
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            self.connections.append(raw)
            threading.Thread(target=self._drain, args=(raw,), daemon=True).start()

    @staticmethod
    def _drain(raw) -> None:
        try:
            while raw.recv(1 << 16):
                pass
        except OSError:
            pass

    def close(self) -> None:
        for raw in self.connections:
            raw.close()


def serve_cpu_per_frame(
    source: str, viewers: int, seconds: float, model: Path, max_fps: float
) -> tuple[float, float]:
    """(CPU seconds per processed frame, frames per second) in a steady run."""
    args = ["--source", source, "--model", str(model), "--max-fps", str(max_fps)]
    with ServeProcess([*args, "--always-on"]) as served:
        watching = [Viewer(served) for _ in range(viewers)]
        time.sleep(2.0)  # the first frames set up the interpreter; viewers connected
        result = steady_cpu_per_frame(
            served.process.pid, lambda: served.get_json("/healthz")[1]["frames"], seconds
        )
        for viewer in watching:
            viewer.close()
    return result


def first_frame_seconds(video: Path, model: Path, tries: int) -> tuple[list[float], list[float]]:
    """Page opened -> the stream's <img> has a frame, with the camera closed and running."""
    from tests.test_serve_browser import CHROMEDRIVER, chromium_options, stream_width

    if CHROMEDRIVER is None:
        return [], []
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    cold, warm = [], []
    args = ["--source", str(video), "--model", str(model), "--release-after", "1"]
    with tempfile.TemporaryDirectory() as profile, ServeProcess(args) as served:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chromium_options(profile))
        try:
            for attempt in range(tries * 2 + 1):
                closed = served.get_json("/healthz")[1]["source"]["state"] == "closed"
                opened = time.perf_counter()
                driver.get(served.url)
                while stream_width(driver) == 0:
                    time.sleep(0.005)
                if attempt:  # the first page load also warms the browser's cache of the page
                    (cold if closed else warm).append(time.perf_counter() - opened)
                if attempt % 2:  # every other time: away, until the camera is released
                    driver.get("about:blank")
                    while served.get_json("/healthz")[1]["source"]["state"] != "closed":
                        time.sleep(0.05)
        finally:
            driver.quit()
    return cold, warm


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1.0), default=10.0, show_default=True)
@click.option("--max-fps", type=float, default=15.0, show_default=True)
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=REPO_ROOT / "models" / "mnist_int8.tflite",
    show_default=True,
)
def main(rounds: int, seconds: float, max_fps: float, model: Path) -> None:
    folder = mnist_dir()
    if folder is None:
        raise click.ClickException("set MNIST_DATA_DIR to the MNIST folder")
    mnist = load_mnist(folder)
    rng = np.random.default_rng(2024)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, DISTINCT_FRAMES, rng, lengths=(3, 5))
    frames = [camera_frame(digits, rng) for digits, _ in numbers]
    camera, url = start_camera(frames)
    with tempfile.TemporaryDirectory() as tmp:
        short = write_video(Path(tmp) / "serve.mp4", frames, fps=FPS)
        long = write_video(Path(tmp) / "live.mp4", frames * LONG_REPEATS, fps=FPS)
        runs: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for feed in ("video file", "camera (MJPEG stream)"):
            for run in (
                "live --headless",
                "serve, 0 viewers",
                "serve, 1 viewer",
                "serve, 10 viewers",
            ):
                runs[feed, run] = ([], [])
        for round_ in range(rounds):
            for (feed, run), (cpus, rates) in runs.items():
                source = str(short) if feed == "video file" else url
                if run == "live --headless" and feed == "video file":
                    cpu = live_cpu_per_frame(long, len(frames) * LONG_REPEATS, model)
                    rate = float("nan")
                elif run == "live --headless":
                    cpu, rate = live_on_camera(url, seconds, model)
                else:
                    viewers = int(run.split(", ")[1].split()[0])
                    cpu, rate = serve_cpu_per_frame(source, viewers, seconds, model, max_fps)
                cpus.append(cpu)
                rates.append(rate)
                click.echo(f"round {round_ + 1}: {feed}, {run}: {cpu * 1000:.3f} ms", err=True)
        cold, warm = first_frame_seconds(short, model, tries=3)
    camera.shutdown()

    load = os.getloadavg()[0]
    click.echo(f"\n{os.cpu_count()} cores, load average {load:.1f} at the end; 640x480 frames at ")
    click.echo(f"{FPS:g} fps, serve --max-fps {max_fps:g}; medians of {rounds} rounds\n")
    click.echo("| frames from | run | CPU per frame | vs live --headless | frames/s |")
    click.echo("| --- | --- | --- | --- | --- |")
    for (feed, run), (cpus, rates) in runs.items():
        cpu, rate = statistics.median(cpus), statistics.median(rates)
        base = statistics.median(runs[feed, "live --headless"][0])
        shown_rate = "as fast as it can" if np.isnan(rate) else f"{rate:.1f}"
        click.echo(f"| {feed} | {run} | {cpu * 1000:.3f} ms | {cpu / base:.2f}x | {shown_rate} |")
    if cold:
        click.echo(
            f"\nfirst frame in Chromium after opening the page: camera closed "
            f"{statistics.median(cold):.2f} s (median of {len(cold)}, max {max(cold):.2f}), "
            f"camera running {statistics.median(warm):.2f} s (max {max(warm):.2f})"
        )


if __name__ == "__main__":
    main()
