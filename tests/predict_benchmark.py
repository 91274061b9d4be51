"""`mnist-edge predict` against decoding alone, --jobs 2 against --jobs 1, and its memory.

    MNIST_DATA_DIR=../shared/data/mnist python -m tests.predict_benchmark [--frames 500]
        [--photos 50] [--jobs-files 1000] [--memory-files 1000] [--real ../shared/data/real_photos]

The issue 13 targets, measured on files made here into a temporary folder (deleted after):
- 640x480 JPEG frames with 3-5 MNIST test digits (tests/synthetic.py's camera frames) and
  bench's script-font frame: predict's per-file work against cv2.imread + recognize;
- 3000x2250 phone-sized photos (the same generator at that size, JPEG quality 90): predict
  against a plain full-size cv2.imread; and on the real photos, predict's text against the
  text of a full-size colour decode (what predict did before reduced decoding);
- `predict --json --jobs 1` and `--jobs 2` over --jobs-files frames, in turns, whole-command
  wall time and steady-state rate (first to last output line); the outputs must be equal;
  and, as a control, how two plain CPU-bound processes scale on the machine at that time;
- the peak resident memory of `predict --json` (the whole process tree, sampled from /proc)
  over --memory-files phone photos (the distinct photos hard-linked over and over), and
  how it moves from the first tenth of the run to the end.
Timings are ratios taken in one run with the alternatives interleaved.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import cv2
import numpy as np

from mnist_edge.runtime.bench import files_benchmark, synthetic_frame
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from mnist_edge.runtime.images import decode_file
from tests.decode_size_study import edit_distance
from tests.synthetic import camera_frame, sample_numbers

REPO_ROOT = Path(__file__).resolve().parent.parent
PHONE = (2250, 3000)


def make_frames(folder: Path, mnist, count: int, size=(480, 640), seed=0, quality=85) -> list:
    """`count` JPEG camera frames, 3-5 MNIST test digits each (every tenth: bench's frame)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    numbers = sample_numbers(mnist.x_test, mnist.y_test, count, rng, (3, 5))
    paths = []
    for i, (images, text) in enumerate(numbers):
        if i % 10 == 9:
            frame = synthetic_frame(text.replace("0", "8"), size=size, seed=seed + i)
        else:
            frame = camera_frame(images, rng, size=size)
        path = folder / f"f{i:05d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(path)
    return paths


def hard_linked(folder: Path, sources: list[Path], count: int) -> Path:
    """`count` names in `folder`, hard links to the sources in turn (no extra disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        os.link(sources[i % len(sources)], folder / f"p{i:05d}.jpg")
    return folder


def process_tree(pid: int) -> dict[int, tuple[int, int, float]]:
    """{pid: (resident kB, proportional kB, CPU seconds so far)} of a process and all its
    descendants. Proportional (PSS): pages shared by n processes count 1/n in each, so the
    sum over the tree is what it really holds (workers share the server's imported code)."""
    found, todo = {}, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
            rss = int(next(x for x in rollup if x.startswith("Rss:")).split()[1])
            pss = int(next(x for x in rollup if x.startswith("Pss:")).split()[1])
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            found[p] = (rss, pss, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration, IndexError):
            continue
    return found


def run_predict(args: list[str]) -> dict:
    """The command's wall time, output lines with their arrival times, and (sampled every
    20 ms from /proc) the memory and CPU time of its process tree."""
    command = [sys.executable, "-m", "mnist_edge", "predict", "--json", *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[int, int]] = []  # (resident, proportional) kB of the whole tree
    cpu: dict[int, float] = {}  # the last CPU time seen of each process of the tree
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            tree = process_tree(process.pid)
            rss, pss = sum(t[0] for t in tree.values()), sum(t[1] for t in tree.values())
            samples.append((rss, pss))
            cpu.update({p: c for p, (_, _, c) in tree.items()})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines, arrivals = [], []
    for line in process.stdout:
        lines.append(line)
        arrivals.append(time.perf_counter() - start)
    stderr = process.stderr.read()
    process.wait()
    stop.set()
    wall = time.perf_counter() - start
    return {"wall": wall, "lines": lines, "arrivals": arrivals, "code": process.returncode,
            "stderr": stderr, "memory": samples, "cpu": sum(cpu.values())}  # fmt: skip


def _spin(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def machine_scaling(seconds: float = 1.0) -> float:
    """How much more CPU work two processes get done than one in the same time, here and
    now: 2.0 on two free cores, about 1.0 when other programs keep both cores busy."""
    import multiprocessing

    def wall(n: int) -> float:
        start = time.perf_counter()
        spinners = [multiprocessing.Process(target=_spin, args=(seconds,)) for _ in range(n)]
        for p in spinners:
            p.start()
        for p in spinners:
            p.join()
        return time.perf_counter() - start

    one, two = wall(1), wall(2)
    return 2 * one / two


def score(text: str, label: str) -> int:
    return len(label) - edit_distance(text, label)


def real_photo_texts(folder: Path, classifier: DigitClassifier) -> list[str]:
    """Exact and digits on the real photos: full-size colour decode vs predict's decoding."""
    with open(folder / "labels.csv", newline="") as handle:
        labels = {row["file"]: row["text"] for row in csv.DictReader(handle)}
    full, reduced, changed = [], [], []
    for name, label in labels.items():
        a = recognize(cv2.imread(str(folder / name)), classifier).text
        b = recognize(decode_file(folder / name, grey=True).pixels, classifier).text
        full.append((a == label, score(a, label)))
        reduced.append((b == label, score(b, label)))
        if a != b:
            changed.append(f"{name}: {score(a, label)} -> {score(b, label)} digits right")
    digits = sum(len(t) for t in labels.values())
    return [
        f"full-size colour decode: {sum(e for e, _ in full)}/{len(labels)} exact, "
        f"{sum(s for _, s in full)}/{digits} digits",
        f"predict's decoding:      {sum(e for e, _ in reduced)}/{len(labels)} exact, "
        f"{sum(s for _, s in reduced)}/{digits} digits",
        f"photos whose text changed: {len(changed)} ({'; '.join(changed)})",
    ]


@click.command()
@click.option("--frames", default=500, show_default=True, help="640x480 frames timed")
@click.option("--photos", default=50, show_default=True, help="distinct 3000x2250 photos")
@click.option("--jobs-files", default=1000, show_default=True)
@click.option("--jobs-runs", default=3, show_default=True, help="runs of each --jobs, in turns")
@click.option("--memory-files", default=1000, show_default=True)
@click.option("--passes", default=3, show_default=True, help="timed passes per file")
@click.option("--real", default=str(REPO_ROOT.parent / "shared" / "data" / "real_photos"))
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"))
def main(frames, photos, jobs_files, jobs_runs, memory_files, passes, real, model) -> None:
    from mnist_edge.trainer.data import load_mnist  # the frames need MNIST; the runtime not

    mnist = load_mnist(os.environ.get("MNIST_DATA_DIR"))
    classifier = DigitClassifier(model)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as tmp:
        root = Path(tmp)
        small = make_frames(root / "frames", mnist, max(frames, jobs_files))
        phone = make_frames(root / "phone", mnist, photos, size=PHONE, seed=1, quality=90)

        click.echo(f"## 640x480 frames ({frames}, JPEG q85), per file, {passes} passes")
        r = files_benchmark(small[:frames], classifier, passes=passes)
        click.echo(_files_line(r))
        click.echo(f"\n## 3000x2250 photos ({photos}, JPEG q90), per file, {passes} passes")
        r = files_benchmark(phone, classifier, passes=passes)
        click.echo(_files_line(r))
        if Path(real).is_dir():
            click.echo("\n## real photos: text, full-size decode vs predict's decoding")
            for line in real_photo_texts(Path(real), classifier):
                click.echo(line)

        click.echo(f"\n## predict --json --jobs 1 / 2 over {jobs_files} frames, {jobs_runs} runs")
        jobs_dir = root / "jobs"
        jobs_dir.mkdir()
        for path in small[:jobs_files]:
            os.link(path, jobs_dir / path.name)
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(jobs_runs):
            for jobs in (1, 2):
                runs[jobs].append(run_predict(["--jobs", str(jobs), str(jobs_dir)]))
        same = all(r["lines"] == runs[1][0]["lines"] for rs in runs.values() for r in rs)
        for jobs, rs in runs.items():
            wall = statistics.median(r["wall"] for r in rs)
            steady = statistics.median(
                (len(r["arrivals"]) - 1) / (r["arrivals"][-1] - r["arrivals"][0]) for r in rs
            )
            first = statistics.median(r["arrivals"][0] for r in rs)
            cpu = statistics.median(r["cpu"] for r in rs)
            runs[jobs] = [{"wall": wall, "steady": steady, "first": first}]
            click.echo(
                f"--jobs {jobs}: {wall:.2f} s whole command ({jobs_files / wall:.0f} files/s), "
                f"first line after {first:.2f} s, steady {steady:.0f} files/s; CPU "
                f"{cpu:.2f} s in all processes ({cpu / jobs_files * 1e3:.2f} ms per file); "
                f"walls {', '.join(format(r['wall'], '.2f') for r in rs)}"
            )
        a, b = runs[1][0], runs[2][0]
        click.echo(f"the machine itself: two CPU-bound processes do {machine_scaling():.2f}x "
                   "the work of one in the same time (2.0 on two free cores)")  # fmt: skip
        click.echo(
            f"--jobs 2 / --jobs 1: {a['wall'] / b['wall']:.2f}x files/s (whole command), "
            f"{b['steady'] / a['steady']:.2f}x (steady); outputs equal: {same}"
        )

        click.echo(f"\n## memory: predict --json over {memory_files} phone photos")
        many = hard_linked(root / "many", phone, memory_files)
        for jobs in (1, 2):
            r = run_predict(["--jobs", str(jobs), str(many)])
            rss, pss = [kb for kb, _ in r["memory"]], [kb for _, kb in r["memory"]]
            tenth = max(1, len(pss) // 10)
            click.echo(
                f"--jobs {jobs}: peak {max(rss) / 1024:.0f} MB resident over the process tree "
                f"(shared pages counted in each process; {max(pss) / 1024:.0f} MB proportional); "
                f"peak in the first tenth of the run {max(rss[:tenth]) / 1024:.0f} MB, in the "
                f"last tenth {max(rss[-tenth:]) / 1024:.0f} MB; {len(r['lines'])} lines, "
                f"exit {r['code']}"
            )
    click.echo(f"\nload average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


def _files_line(r: dict) -> str:
    return (
        f"cv2.imread {r['imread_ms']:.2f} ms, + recognize {r['imread_recognize_ms']:.2f} ms, "
        f"predict's decoding {r['decode_ms']:.2f} ms, predict {r['predict_ms']:.2f} ms "
        f"(medians); totals: predict / imread {r['predict_vs_imread']:.2f}x, predict / "
        f"(imread + recognize) {r['predict_vs_imread_recognize']:.2f}x; "
        f"{r['timed']} of {r['files']} timed"
    )


if __name__ == "__main__":
    main()
