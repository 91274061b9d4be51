"""What serving costs: CPU per frame of `serve` with 0, 1 and 10 viewers against `live --headless`
on the same video, and the time to the first frame in a real browser.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.serve_bench [--rounds 3] [--seconds 10]
        [--max-fps 15 [--max-fps 10 ...]] [--feed both|file|camera] [--paired] [--no-browser]

CPU time, not wall time (the machine may be shared). Two ways to feed the same 640x480 frames:
- a video file: `live --headless` reads it as fast as it can (its start-up, imports and the
  model, is taken out by subtracting a run of one frame); `serve` plays it at its own 30 fps,
  as it always plays files;
- a camera: the frames as a 30 fps MJPEG stream over HTTP (an IP camera, emulated here), which
  both commands read at the camera's pace.
`serve`'s and the camera-fed `live`'s CPU is read from the process's CPU clock between two
moments of a steady run, with the frames processed between them. A viewer is what the page
opens: the MJPEG stream and the event stream, both read as they come. All runs take turns,
`--rounds` times; the table gives medians. With `--paired`, each camera-fed `serve` run has a
`live` run of its own beside it, the two taking turns a second at a time (one stopped while
the other is measured), and its ratio is the median of those pairs' ratios: steadier on a
machine that others use.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
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
SETTLE_S = 0.5  # after a paused process is continued, before its CPU is counted


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, threads included: its CPU clock (nanoseconds;
    Linux lets any process read another's), else /proc/PID/stat (clock ticks: 10 ms, 0.04 ms
    a frame over 8 s at 30 fps)."""
    try:
        return time.clock_gettime((~pid << 3) | 2)  # CPUCLOCK_SCHED of the whole process
    except OSError:
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
                # No catch-up burst after a client that stopped reading (a paused process).
                due = max(due + 1.0 / FPS, time.perf_counter())
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


def steady_cpu_and_frames(pid: int, frames_so_far, seconds: float) -> tuple[float, int, float]:
    """(CPU seconds, frames processed, wall seconds) between two moments `seconds` apart."""
    # The CPU is read inside the two frame counts: a /healthz request is not counted.
    frames0, cpu0, t0 = frames_so_far(), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1, frames1 = cpu_seconds(pid), time.monotonic(), frames_so_far()
    return cpu1 - cpu0, frames1 - frames0, t1 - t0


def steady_cpu_per_frame(pid: int, frames_so_far, seconds: float) -> tuple[float, float]:
    """(CPU seconds per frame, frames per second) between two moments `seconds` apart."""
    cpu, frames, wall = steady_cpu_and_frames(pid, frames_so_far, seconds)
    return cpu / max(frames, 1), frames / wall


class LiveOnCamera:
    """`live --headless --json` on the camera, its frames counted by its JSON lines."""

    def __init__(self, url: str, model: Path) -> None:
        command = [sys.executable, "-m", "mnist_edge", "live", "--headless", "--json"]
        command += ["--source", url, "--model", str(model)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines = 0
        threading.Thread(target=self._count, daemon=True).start()
        deadline = time.monotonic() + 60
        while self.lines < 30 and time.monotonic() < deadline:  # started, interpreter set up
            time.sleep(0.1)

    def _count(self) -> None:
        for _ in self.process.stdout:
            self.lines += 1

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def live_on_camera(url: str, seconds: float, model: Path) -> tuple[float, float]:
    live = LiveOnCamera(url, model)
    try:
        return steady_cpu_per_frame(live.process.pid, lambda: live.lines, seconds)
    finally:
        live.close()


class Viewer:
    """One browser's worth of reading: the stream and the events, each in a thread."""

    def __init__(self, port: int) -> None:
        self.connections = []
        for path in ("/stream.mjpg", "/api/events"):
            raw = socket.create_connection(("127.0.0.1", port), timeout=30.0)
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
        watching = [Viewer(served.port) for _ in range(viewers)]
        time.sleep(2.0)  # the first frames set up the interpreter; viewers connected
        result = steady_cpu_per_frame(
            served.process.pid, lambda: served.get_json("/healthz")[1]["frames"], seconds
        )
        for viewer in watching:
            viewer.close()
    return result


def paired_on_camera(
    url: str, viewers: int, seconds: float, model: Path, max_fps: float, turn: float = 1.0
) -> tuple[float, float]:
    """(live's, serve's) CPU seconds per frame on the camera, the two processes running in
    turns: one is stopped (SIGSTOP) while the other is measured, `turn` seconds at a time,
    until each was measured `seconds`. Both then see the same machine, whatever the others on
    it do meanwhile: their ratio is steadier than that of two runs one after the other."""
    args = ["--source", url, "--model", str(model), "--max-fps", str(max_fps), "--always-on"]
    live = LiveOnCamera(url, model)
    try:
        with ServeProcess(args) as served:
            watching = [Viewer(served.port) for _ in range(viewers)]
            time.sleep(2.0)
            runs = [
                (live.process.pid, lambda: live.lines),
                (served.process.pid, lambda: served.get_json("/healthz")[1]["frames"]),
            ]
            totals = [[0.0, 0], [0.0, 0]]
            try:
                for _ in range(max(1, round(seconds / turn))):
                    for k, (pid, frames_so_far) in enumerate(runs):
                        os.kill(runs[1 - k][0], signal.SIGSTOP)
                        os.kill(pid, signal.SIGCONT)
                        time.sleep(SETTLE_S)  # the frames that waited in the socket: read
                        cpu, frames, _ = steady_cpu_and_frames(pid, frames_so_far, turn)
                        totals[k][0] += cpu
                        totals[k][1] += frames
            finally:
                for pid, _ in runs:
                    os.kill(pid, signal.SIGCONT)
            for viewer in watching:
                viewer.close()
    finally:
        live.close()
    return tuple(cpu / max(frames, 1) for cpu, frames in totals)


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


FEEDS = {"file": "video file", "camera": "camera (MJPEG stream)"}


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1.0), default=10.0, show_default=True)
@click.option(
    "--max-fps",
    type=click.FloatRange(min=0.1),
    multiple=True,
    help="serve's --max-fps (default 15); several: the serve rows for each, taking turns.",
)
@click.option("--feed", type=click.Choice(["both", *FEEDS]), default="both", show_default=True)
@click.option(
    "--paired",
    is_flag=True,
    help="On the camera, each serve run beside its own live run, the two taking turns "
    "(one stopped while the other is measured): ratios steadier on a busy machine.",
)
@click.option("--no-browser", is_flag=True, help="Leave out the first-frame timing in Chromium.")
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=REPO_ROOT / "models" / "mnist_int8.tflite",
    show_default=True,
)
def main(
    rounds: int,
    seconds: float,
    max_fps: tuple[float, ...],
    feed: str,
    paired: bool,
    no_browser: bool,
    model: Path,
) -> None:
    folder = mnist_dir()
    if folder is None:
        raise click.ClickException("set MNIST_DATA_DIR to the MNIST folder")
    max_fps = max_fps or (15.0,)
    mnist = load_mnist(folder)
    rng = np.random.default_rng(2024)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, DISTINCT_FRAMES, rng, lengths=(3, 5))
    frames = [camera_frame(digits, rng) for digits, _ in numbers]
    camera, url = start_camera(frames)
    feeds = list(FEEDS.values()) if feed == "both" else [FEEDS[feed]]
    cold = warm = []
    with tempfile.TemporaryDirectory() as tmp:
        short = write_video(Path(tmp) / "serve.mp4", frames, fps=FPS)
        long = write_video(Path(tmp) / "live.mp4", frames * LONG_REPEATS, fps=FPS)
        # (feed, run, --max-fps) -> CPU per frame, frames per second, ratios to a paired live
        runs: dict[tuple[str, str, float], tuple[list[float], list[float], list[float]]] = {}
        for fed in feeds:
            runs[fed, "live --headless", 0.0] = ([], [], [])
            runs[fed, "serve, 0 viewers", max_fps[0]] = ([], [], [])  # nothing encoded: once
            for fps in max_fps:
                for run in ("serve, 1 viewer", "serve, 10 viewers"):
                    runs[fed, run, fps] = ([], [], [])
        for round_ in range(rounds):
            for (fed, run, fps), (cpus, rates, ratios) in runs.items():
                source = str(short) if fed == "video file" else url
                viewers = int(run.split(", ")[1].split()[0]) if run.startswith("serve") else 0
                if run == "live --headless" and fed == "video file":
                    cpu = live_cpu_per_frame(long, len(frames) * LONG_REPEATS, model)
                    rate = float("nan")
                elif run == "live --headless":
                    if paired:
                        continue  # measured beside each serve run
                    cpu, rate = live_on_camera(url, seconds, model)
                elif paired and fed != "video file":
                    live_cpu, cpu = paired_on_camera(url, viewers, seconds, model, fps)
                    rate = FPS
                    ratios.append(cpu / live_cpu)
                    runs[fed, "live --headless", 0.0][0].append(live_cpu)
                    runs[fed, "live --headless", 0.0][1].append(FPS)
                else:
                    cpu, rate = serve_cpu_per_frame(source, viewers, seconds, model, fps)
                cpus.append(cpu)
                rates.append(rate)
                shown = f" --max-fps {fps:g}" if fps else ""
                line = f"round {round_ + 1}: {fed}, {run}{shown}: {cpu * 1000:.3f} ms"
                if ratios:
                    line += f" ({ratios[-1]:.2f}x its live)"
                click.echo(line, err=True)
        if not no_browser:
            cold, warm = first_frame_seconds(short, model, tries=3)
    camera.shutdown()

    load = os.getloadavg()[0]
    click.echo(f"\n{os.cpu_count()} cores, load average {load:.1f} at the end; 640x480 frames")
    how = "; camera rows: serve and live in turns, ratios of pairs" if paired else ""
    click.echo(f"at {FPS:g} fps; medians of {rounds} rounds{how}\n")
    click.echo("| frames from | run | CPU per frame | vs live --headless | frames/s |")
    click.echo("| --- | --- | --- | --- | --- |")
    for (fed, run, fps), (cpus, rates, ratios) in runs.items():
        cpu, rate = statistics.median(cpus), statistics.median(rates)
        base = statistics.median(runs[fed, "live --headless", 0.0][0])
        ratio = statistics.median(ratios) if ratios else cpu / base
        shown_rate = "as fast as it can" if np.isnan(rate) else f"{rate:.1f}"
        several = len(max_fps) > 1 and run not in ("live --headless", "serve, 0 viewers")
        shown = f" (--max-fps {fps:g})" if several else ""
        click.echo(f"| {fed} | {run}{shown} | {cpu * 1000:.3f} ms | {ratio:.2f}x | {shown_rate} |")
    if cold:
        click.echo(
            f"\nfirst frame in Chromium after opening the page: camera closed "
            f"{statistics.median(cold):.2f} s (median of {len(cold)}, max {max(cold):.2f}), "
            f"camera running {statistics.median(warm):.2f} s (max {max(warm):.2f})"
        )


if __name__ == "__main__":
    main()
