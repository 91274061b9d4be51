"""Where `serve`'s CPU per frame goes, thread by thread and step by step, against `live --headless`.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.serve_profile [--seconds 8] [--rounds 2]

The run under study is a child process that builds what the command builds (serve: the hub
and the HTTP server; live: `run_live` on a grey source with a JSON line per frame) and, when
asked on its stdin, reports the CPU of each of its threads (/proc/self/task) and the thread
CPU spent in each step of the loop (read, recognize, publish, draw, encode, ...). The camera
(a 30 fps MJPEG stream over HTTP) and the viewers run in this, the parent, process.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

from tests.conftest import REPO_ROOT, mnist_dir
from tests.serve_bench import DISTINCT_FRAMES, FPS, Viewer, start_camera

TICKS = os.sysconf("SC_CLK_TCK")


# -- the child: the run under study ----------------------------------------------------------


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process (its CPU clock, in ns), by Python thread name
    (else the thread's comm)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = collections.defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        tid = int(task.name)
        try:
            comm = (task / "comm").read_text().strip()
            minflt = int((task / "stat").read_text().rsplit(")", 1)[1].split()[7])
            # Linux's CPU clock of one thread: CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED, by tid.
            seconds = time.clock_gettime((~tid << 3) | 6)
        except OSError:
            continue  # ended meanwhile
        name = _group(names.get(tid, f"native {comm}"))
        out[name] += seconds
        out[name + " [page faults x 1000]"] += minflt / 1000  # shown per frame as 'ms'
    return out


def _group(name: str) -> str:
    if "(process_request_thread)" in name:
        return "connections"
    if "(_grab)" in name or "(_decode)" in name:
        return "reader"
    return name


STEPS: dict[tuple[str, str], float] = collections.defaultdict(float)
CALLS: dict[tuple[str, str], int] = collections.defaultdict(int)


def timed(owner, attribute: str, step: str) -> None:
    """Wrap owner.attribute to add its thread CPU time to STEPS[thread, step]."""
    inner = getattr(owner, attribute)

    def wrapper(*args, **kwargs):
        t0 = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            key = (_group(threading.current_thread().name), step)
            STEPS[key] += time.thread_time() - t0
            CALLS[key] += 1

    setattr(owner, attribute, wrapper)


def child(mode: str, source: str, model: str, max_fps: float, frames_out: list[int]) -> None:
    import cv2

    from mnist_edge.runtime import broadcast, camera, live, preprocess, serve
    from mnist_edge.runtime.classifier import DigitClassifier

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    classifier = DigitClassifier(model)
    timed(live, "recognize", "recognize")
    timed(preprocess, "to_gray", "to_gray (in recognize)")
    timed(camera.LatestFrameSource, "read", "source.read")
    timed(camera.VideoFileSource, "read", "source.read")
    timed(broadcast, "draw_results", "draw")
    timed(cv2, "imencode", "imencode")
    timed(json, "dumps", "json.dumps")
    if mode == "live":
        sink = open(os.devnull, "w")  # noqa: SIM115

        def on_result(index, result, ms):
            line = {"frame": index, **result.to_json(), "latency_ms": round(ms, 3)}
            print(json.dumps(line), file=sink, flush=True)
            frames_out[0] += 1

        def run() -> None:  # a video file again at its end, as fast as it can
            while True:
                with camera.open_source(source, grey=True) as frames:
                    if not live.run_live(frames, classifier, on_result=on_result).frames:
                        return

        threading.Thread(target=run, name="capture", daemon=True).start()
        return None
    timed(broadcast.CaptureHub, "_publish", "publish (all)")
    timed(broadcast.CaptureHub, "_encode", "encode (draw+imencode)")
    timed(broadcast.ServedSource, "read", "served.read")
    hub = broadcast.CaptureHub(
        lambda: camera.open_source(source), classifier, name=source, max_fps=max_fps,
        always_on=True,
    )  # fmt: skip
    uploads = serve.UploadReader(classifier.path, None, 0.0, False, 10**8)
    server = serve.DigitServer("127.0.0.1", 0, hub, uploads)
    threading.Thread(target=server.serve_forever, name="http accept", daemon=True).start()
    hub.start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    return hub


def child_main(mode: str, source: str, model: str, max_fps: float) -> None:
    frames_out = [0]
    hub = child(mode, source, model, max_fps, frames_out)
    if mode == "live":
        print(json.dumps({"port": 0}), flush=True)
    for _ in sys.stdin:  # each line: a report
        frames = hub.frames if hub is not None else frames_out[0]
        steps = {f"{t}|{s}": [v, CALLS[t, s]] for (t, s), v in STEPS.items()}
        report = {"frames": frames, "threads": thread_cpu(), "steps": steps}
        print(json.dumps(report), flush=True)


# -- the parent --------------------------------------------------------------------------------


def profile_run(mode: str, source: str, viewers: int, seconds: float, model: Path, max_fps):
    command = [sys.executable, "-m", "tests.serve_profile", "--child", mode, "--source", source]
    command += ["--model", str(model), "--max-fps", str(max_fps)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(process.stdout.readline())["port"]
        watching = [Viewer(port) for _ in range(viewers)]
        time.sleep(3.0)  # the interpreter set up, viewers connected

        def report():
            process.stdin.write("\n")
            process.stdin.flush()
            return json.loads(process.stdout.readline())

        a = report()
        time.sleep(seconds)
        b = report()
        for viewer in watching:
            viewer.close()
    finally:
        process.kill()
        process.wait()
    frames = max(b["frames"] - a["frames"], 1)
    threads = {k: (v - a["threads"].get(k, 0.0)) / frames for k, v in b["threads"].items()}
    steps = {}
    for k, (v, n) in b["steps"].items():
        v0, n0 = a["steps"].get(k, [0.0, 0])
        steps[k] = ((v - v0) / frames, (n - n0) / frames)
    return frames / seconds, threads, steps


@click.command()
@click.option("--child", "child_mode", type=click.Choice(["live", "serve"]), default=None)
@click.option("--source", default=None)
@click.option("--seconds", type=float, default=8.0, show_default=True)
@click.option("--rounds", type=int, default=2, show_default=True)
@click.option("--max-fps", type=float, default=15.0, show_default=True)
@click.option("--viewers", default="0,1,10", show_default=True)
@click.option("--feed", type=click.Choice(["camera", "file"]), default="camera", show_default=True)
@click.option(
    "--model", type=click.Path(path_type=Path), default=REPO_ROOT / "models" / "mnist_int8.tflite"
)
def main(child_mode, source, seconds, rounds, max_fps, viewers, feed, model) -> None:
    if child_mode is not None:
        child_main(child_mode, source, str(model), max_fps)
        return
    from mnist_edge.trainer.data import load_mnist
    from tests.synthetic import camera_frame, sample_numbers, write_video

    mnist = load_mnist(mnist_dir())
    rng = np.random.default_rng(2024)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, DISTINCT_FRAMES, rng, lengths=(3, 5))
    frames = [camera_frame(digits, rng) for digits, _ in numbers]
    camera, url = start_camera(frames)
    if feed == "file":
        url = str(write_video(Path(tempfile.mkdtemp()) / "profile.mp4", frames, fps=FPS))
    runs = [("live", 0)] + [("serve", int(v)) for v in viewers.split(",")]
    results = collections.defaultdict(list)
    for round_ in range(rounds):
        for mode, n in runs:
            rate, threads, steps = profile_run(mode, url, n, seconds, model, max_fps)
            results[mode, n].append((rate, threads, steps))
            total = sum(threads.values()) * 1000
            click.echo(f"round {round_ + 1}: {mode} {n} viewers {total:.3f} ms/frame", err=True)
    camera.shutdown()
    click.echo(f"load average {os.getloadavg()[0]:.1f}; ms of CPU per processed frame, medians\n")
    for (mode, n), got in results.items():
        rate = statistics.median(r for r, _, _ in got)
        total = statistics.median(sum(t.values()) for _, t, _ in got) * 1000
        click.echo(f"## {mode}, {n} viewers: {total:.3f} ms/frame, {rate:.1f} frames/s")
        keys = sorted({k for _, t, _ in got for k in t}, key=lambda k: -got[0][1].get(k, 0))
        for k in keys:
            ms = statistics.median(t.get(k, 0.0) for _, t, _ in got) * 1000
            if ms >= 0.0005:
                click.echo(f"  thread {k:40s} {ms:7.3f}")
        for k in sorted({k for _, _, s in got for k in s}):
            ms = statistics.median(s.get(k, (0, 0))[0] for _, _, s in got) * 1000
            calls = statistics.median(s.get(k, (0, 0))[1] for _, _, s in got)
            click.echo(f"  step   {k:40s} {ms:7.3f}  ({calls:.2f} calls/frame)")


if __name__ == "__main__":
    main()
