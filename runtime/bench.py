"""`mnist-edge bench`: how fast the runtime is on this machine, as medians.

Four numbers: one digit at batch 1, batched throughput, one 640x480 frame with 3-5 digits
through preprocessing plus inference, and the live loop on a video file against decoding that
file alone. The frames are drawn here with OpenCV's script font (no MNIST needed, so it runs on
a Raspberry Pi with only the runtime installed); `--frame` and `--video` take your own.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from mnist_edge.runtime.batch import ReadOptions, Task, process
from mnist_edge.runtime.camera import VideoFileSource
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import MAX_PIXELS, ImageReadError, decode_file
from mnist_edge.runtime.live import run_live

FRAME_SIZE = (480, 640)  # (h, w)
BATCH = 256


def synthetic_frame(
    text: str = "4293", size: tuple[int, int] = FRAME_SIZE, seed: int = 0
) -> np.ndarray:
    """A camera-like BGR frame with `text` handwritten-ish: dark ink on lit, noisy paper."""
    rng = np.random.default_rng(seed)
    h, w = size
    ink = np.zeros((h, w), np.uint8)  # putText draws into 8-bit images only
    digit_h = rng.uniform(0.18, 0.3) * h
    font = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX
    scale = cv2.getFontScaleFromHeight(font, int(digit_h))
    widths = [cv2.getTextSize(c, font, scale, 1)[0][0] for c in text]
    gaps = rng.uniform(0.2, 0.5, len(text)) * digit_h
    # A long number is written smaller, so that it fits: the slant moves the tops of the
    # digits sideways by up to a quarter of their height.
    room = 0.9 * w - 0.3 * digit_h
    if sum(widths) + sum(gaps) > room:
        shrink = room / (sum(widths) + sum(gaps))
        digit_h, gaps = digit_h * shrink, gaps * shrink
        scale = cv2.getFontScaleFromHeight(font, int(digit_h))
        widths = [cv2.getTextSize(c, font, scale, 1)[0][0] for c in text]
    x = rng.uniform(0.05 * w, max(0.05 * w, w - sum(widths) - sum(gaps) - 0.05 * w))
    baseline = rng.uniform(digit_h + 0.05 * h, 0.95 * h)
    for char, width, gap in zip(text, widths, gaps, strict=True):
        y = baseline + rng.uniform(-0.08, 0.08) * digit_h  # handwriting wobbles
        thickness = int(rng.integers(max(2, int(digit_h / 25)), max(3, int(digit_h / 12))))
        cv2.putText(ink, char, (int(x), int(y)), font, scale, 255, thickness, cv2.LINE_AA)
        x += width + gap
    shear = np.float32([[1, rng.uniform(-0.25, 0.1), 0], [0, 1, 0]])  # a slant
    shear[0, 2] = -shear[0, 1] * baseline
    ink = cv2.warpAffine(ink, shear, (w, h)).astype(np.float32) / 255.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.2 * (xs / w - 0.5) * rng.choice([-1, 1]) - 0.15 * (ys / h - 0.5) ** 2
    paper = rng.uniform(200, 235) * light
    image = paper * (1.0 - 0.85 * ink) + 30.0 * 0.85 * ink
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    frame = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def synthetic_video(
    path: Path, frames: int = 150, seed: int = 0, size: tuple[int, int] = FRAME_SIZE
) -> Path:
    """An mp4 of `frames` synthetic frames, 3-5 digits each, 15 distinct frames cycled.

    No zeros: the script font draws a slashed zero, which nobody writes by hand.
    """
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(list("123456789"), rng.integers(3, 6))) for _ in range(15)]
    stills = [synthetic_frame(t, size, seed=seed + i) for i, t in enumerate(texts)]
    h, w = stills[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in range(frames):
        writer.write(stills[i % len(stills)])
    writer.release()
    return path


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """The median wall time of `call`, each call timed on its own."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def decode_seconds(video: Path) -> tuple[float, int]:
    """Time to decode every frame of the video, nothing else."""
    capture = cv2.VideoCapture(str(video))
    start, frames = time.perf_counter(), 0
    while capture.read()[0]:
        frames += 1
    seconds = time.perf_counter() - start
    capture.release()
    return seconds, frames


def live_seconds(video: Path, classifier: DigitClassifier) -> tuple[float, int]:
    """Time of the `mnist-edge live --headless` loop over the same video (opening included).

    Opened as that command opens it: nothing is drawn, so the reader thread hands over grey
    frames.
    """
    start = time.perf_counter()
    with VideoFileSource(video, grey=True) as source:
        stats = run_live(source, classifier)
    return time.perf_counter() - start, stats.frames


def run_benchmarks(
    classifier: DigitClassifier,
    frame: np.ndarray,
    video: Path | None = None,
    video_size: tuple[int, int] = FRAME_SIZE,
    video_frames: int = 150,
    repeats: int = 200,
    video_repeats: int = 7,
) -> dict:
    """All the numbers of `mnist-edge bench`, as one dict (medians)."""
    rng = np.random.default_rng(0)
    one = rng.random((1, 28, 28), dtype=np.float32)
    batch = rng.random((BATCH, 28, 28), dtype=np.float32)
    digit_s = median_seconds(lambda: classifier.predict(one), repeats * 10)
    batch_s = median_seconds(lambda: classifier.predict(batch), max(10, repeats // 4))
    frame_s = median_seconds(lambda: recognize(frame, classifier), repeats)
    found = recognize(frame, classifier)
    results = {
        "model": str(classifier.path),
        "backend": classifier.backend,
        "threads": classifier.threads,
        "digit_batch1_us": round(digit_s * 1e6, 2),
        "batch_size": BATCH,
        "batched_digits_per_s": round(BATCH / batch_s),
        "batched_us_per_digit": round(batch_s / BATCH * 1e6, 3),
        "frame_size": [int(frame.shape[1]), int(frame.shape[0])],
        "frame_ms": round(frame_s * 1e3, 3),
        "frame_text": found.text,
        "frame_digits": len(found.digits),
    }
    synthetic = video is None
    with tempfile.TemporaryDirectory() as tmp:
        if synthetic:
            video = synthetic_video(Path(tmp) / "bench.mp4", video_frames, size=video_size)
        # Taken in turns, so a slow moment of the machine weighs on both alike.
        decode, live = [], []
        for _ in range(video_repeats):
            decode.append(decode_seconds(video))
            live.append(live_seconds(video, classifier))
        with VideoFileSource(video) as source:
            fps = source.fps or 30.0
    frames = decode[0][1]
    decode_ms = statistics.median(s for s, _ in decode) / frames * 1e3
    live_ms = statistics.median(s for s, _ in live) / max(1, live[0][1]) * 1e3
    results["video"] = {
        "file": f"synthetic {video_size[1]}x{video_size[0]} mp4v" if synthetic else str(video),
        "frames": frames,
        "frames_processed": live[0][1],
        "decode_ms_per_frame": round(decode_ms, 3),
        "live_ms_per_frame": round(live_ms, 3),
        "live_vs_decode_ratio": round(live_ms / decode_ms, 2),
        "file_fps": fps,
        "times_real_time": round(1000.0 / fps / live_ms, 1),  # > 1: keeps up with playback
    }
    return results


def files_benchmark(
    paths: list[Path], classifier: DigitClassifier, passes: int = 3, max_pixels: int = MAX_PIXELS
) -> dict:
    """`predict` over these files against decoding them alone, per file (medians).

    Per file, in turns (so a slow moment of the machine weighs on all alike): a plain
    full-size `cv2.imread` (what any program pays to look at the file), `recognize` on that,
    predict's own decoding (`decode_file`: grey, a big JPEG reduced), and predict's whole
    work on the file (`batch.process` plus its JSON line). Median over `passes` per file, then
    the median over files; totals are sums of the per-file medians.
    """
    options = ReadOptions(max_pixels=max_pixels)
    times: dict[str, list[list[float]]] = {k: [[] for _ in paths] for k in FILE_STEPS}
    failed = set()
    for _ in range(passes):
        for i, path in enumerate(paths):
            start = time.perf_counter()
            image = cv2.imread(str(path))
            decoded = time.perf_counter()
            if image is not None:
                recognize(image, classifier)
            recognized = time.perf_counter()
            try:
                decode_file(path, max_pixels)
            except ImageReadError:
                pass
            own_decode = time.perf_counter()
            outcome = process(Task(str(path), path), classifier, options)
            json.dumps(outcome.result.to_json() if outcome.result else {"error": outcome.error})
            done = time.perf_counter()
            if image is None or outcome.error is not None:
                failed.add(i)
            for key, seconds in zip(
                FILE_STEPS,
                (decoded - start, recognized - start, own_decode - recognized, done - own_decode),
                strict=True,
            ):
                times[key][i].append(seconds)
    kept = [i for i in range(len(paths)) if i not in failed]
    per_file = {k: [statistics.median(times[k][i]) for i in kept] for k in FILE_STEPS}
    results: dict = {"files": len(paths), "timed": len(kept), "passes": passes}
    if not kept:
        return results
    totals = {key: sum(per_file[key]) for key in FILE_STEPS}
    for key in FILE_STEPS:
        results[f"{key}_ms"] = round(statistics.median(per_file[key]) * 1e3, 3)
        results[f"{key}_total_s"] = round(totals[key], 4)
    results["predict_files_per_s"] = round(len(kept) / totals["predict"], 1)
    for key in ("imread", "imread_recognize"):
        results[f"predict_vs_{key}"] = round(totals["predict"] / totals[key], 3)
    return results


FILE_STEPS = ("imread", "imread_recognize", "decode", "predict")


def format_files_table(results: dict) -> str:
    if not results.get("timed"):
        return f"{results['files']} files, none both decoded by cv2.imread and read by predict"
    rows = [
        ("files", f"{results['timed']} timed of {results['files']}, {results['passes']} passes"),
        ("cv2.imread (full size)", f"{results['imread_ms']:.2f} ms per file"),
        ("cv2.imread + recognize", f"{results['imread_recognize_ms']:.2f} ms per file"),
        ("predict's decoding", f"{results['decode_ms']:.2f} ms per file"),
        ("predict, whole", f"{results['predict_ms']:.2f} ms per file, "
                           f"{results['predict_files_per_s']:g} files/s"),
        ("predict / imread", f"{results['predict_vs_imread']:.2f}x (totals)"),
        ("predict / imread+recognize", f"{results['predict_vs_imread_recognize']:.2f}x (totals)"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows) + "\n(medians)"


def format_table(results: dict) -> str:
    video = results["video"]
    threads = results["threads"] or "default"
    rows = [
        ("model", f"{results['model']} ({results['backend']}, threads: {threads})"),
        ("one digit, batch 1", f"{results['digit_batch1_us']:.1f} µs"),
        (
            f"batched ({results['batch_size']})",
            f"{results['batched_digits_per_s']:,} digits/s "
            f"({results['batched_us_per_digit']:.2f} µs per digit)",
        ),
        (
            "frame {}x{}".format(*results["frame_size"]),
            f"{results['frame_ms']:.2f} ms preprocessing + inference "
            f"({results['frame_digits']} digits: {results['frame_text'] or '-'})",
        ),
        ("video", f"{video['file']}, {video['frames']} frames"),
        ("video, decoding alone", f"{video['decode_ms_per_frame']:.2f} ms per frame"),
        ("video, live loop", f"{video['live_ms_per_frame']:.2f} ms per frame"),
        ("live / decoding", f"{video['live_vs_decode_ratio']:.2f}x"),
        ("live / playback", f"{video['times_real_time']:.1f}x of {video['file_fps']:g} fps"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows) + "\n(medians)"
