"""`predict` over many files: bad inputs, --jobs, progress, memory, names; real processes."""

from __future__ import annotations

import json
import os
import pty
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mnist_edge.runtime import batch
from mnist_edge.runtime.batch import Outcome, ReadOptions, Task, _in_workers, read_digits
from mnist_edge.runtime.cli_predict import NUMBER_WIDTH, annotated_targets, table_row
from mnist_edge.runtime.digits import Digit, FrameResult, recognize
from mnist_edge.runtime.images import decode_file
from mnist_edge.runtime.inputs import ImageInput
from tests.synthetic import camera_frame_with_boxes, sample_numbers
from tests.test_images import bomb_png, png_chunk
from tests.test_runtime_cli import json_lines, on_paper, run


def predict(args: list[str], cwd: Path, timeout: float = 180, **streams):
    """`mnist-edge predict` in its own process (so native stderr and hangs are real)."""
    command = [sys.executable, "-m", "mnist_edge", "predict", *args]
    streams = streams or {"capture_output": True}
    return subprocess.run(command, cwd=cwd, text=True, timeout=timeout, **streams)


def paper_digit(digit: np.ndarray) -> np.ndarray:
    return np.clip((1 - on_paper(digit)) * 230 + 15, 0, 255).astype(np.uint8)


def damaged(data: bytes, seed: int) -> bytes:
    """The file with a few bytes after its first 64 flipped (headers mostly intact)."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for i in rng.integers(min(64, len(out) - 1), len(out), 6):
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out)


def bad_corpus(folder: Path, good: np.ndarray) -> list[str]:
    """Every kind of bad input, generated: names in the order given to predict."""
    folder.mkdir()
    names = []

    def add(name: str, content: bytes) -> None:
        (folder / name).write_bytes(content)
        names.append(name)

    os.mkfifo(folder / "fifo.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "urandom.jpg").symlink_to("/dev/urandom")
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    names += ["fifo.png", "zero.png", "urandom.jpg", "dangling.png", "/dev/null"]
    add("empty.png", b"")
    add("text.jpg", b"not an image\n")
    add("eps.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n")
    add("ps.jpg", b"%!PS-Adobe-3.0\nshowpage\n")
    bomb_png(folder / "bomb.png", 30_000, 30_000)
    names.append("bomb.png")
    ihdr = struct.pack(">IIBBBBB", 6000, 6000, 16, 6, 0, 0, 0)  # 16-bit RGBA: 288 MB
    add("rgba16_bomb.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 96002)) + png_chunk(b"IEND", b""))  # fmt: skip
    frame = b"," + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x44\x01\x00"
    add("gif_bomb.gif", b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
        + frame + b";")  # fmt: skip
    # A JPEG whose frame header claims 65000x65000.
    ok, small = cv2.imencode(".jpg", good)
    jpeg = bytearray(small.tobytes())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    add("jpeg_bomb.jpg", bytes(jpeg))
    encoded = {ext: cv2.imencode(ext, cv2.cvtColor(good, cv2.COLOR_GRAY2BGR))[1].tobytes()
               for ext in (".png", ".jpg", ".bmp", ".tif", ".webp")}  # fmt: skip
    gif = folder / "tmp.gif"
    Image.fromarray(good).save(gif)
    encoded[".gif"] = gif.read_bytes()
    gif.unlink()
    for ext, data in encoded.items():
        add(f"truncated{ext}", data[: len(data) // 2])
        for seed in range(4):
            add(f"damaged{seed}{ext}", damaged(data, seed))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket.png"))
    server.close()  # the socket file stays
    names.append("socket.png")
    Image.fromarray(good).save(folder / "zz_good.png")
    names.append("zz_good.png")
    return names


def test_bad_input_corpus_one_line_each_and_jobs_2_equal(tmp_path, int8_model, sure_digits):
    digit, label = sure_digits[0]
    names = bad_corpus(tmp_path / "bad", paper_digit(digit))
    args = ["--json", "--model", str(int8_model), *names]

    one = predict(args, cwd=tmp_path / "bad")
    assert one.returncode == 1
    lines = [json.loads(line) for line in one.stdout.splitlines()]
    assert [line["path"] for line in lines] == names  # one line per input, in order
    assert lines[-1]["text"] == str(label)  # the batch went on to the end
    errors = {line["path"]: line["error"] for line in lines if "error" in line}
    for name in names[:14]:  # those can only be errors; damaged files may still decode
        assert name in errors, lines
    assert errors["fifo.png"].startswith("is a FIFO")
    assert "character device" in errors["zero.png"] and "character device" in errors["/dev/null"]
    assert "character device" in errors["urandom.jpg"] and "socket" in errors["socket.png"]
    assert "not an image" in errors["eps.png"] and "not an image" in errors["ps.jpg"]
    for bomb in ("bomb.png", "gif_bomb.gif", "jpeg_bomb.jpg", "rgba16_bomb.png"):
        assert "pixel limit" in errors[bomb]
    for error in errors.values():
        assert error and "\n" not in error and "Traceback" not in error
    # The promise: one error line per bad file, and nothing from libpng, libjpeg, libtiff.
    assert one.stderr == f"Error: {len(errors)} of {len(names)} inputs failed\n"

    two = predict(["--jobs", "2", *args], cwd=tmp_path / "bad")
    assert (two.stdout, two.stderr, two.returncode) == (one.stdout, one.stderr, one.returncode)

    table = predict(args[1:], cwd=tmp_path / "bad")
    rows = table.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == names and table.stderr == one.stderr


def test_file_size_limit_follows_max_pixels(tmp_path, int8_model, sure_digits):
    image = tmp_path / "padded.png"
    ok, png = cv2.imencode(".png", paper_digit(sure_digits[0][0]))
    data = png.tobytes()
    image.write_bytes(data[:33] + png_chunk(b"tEXt", b"c\x00" + b"x" * 3_000_000) + data[33:])
    result = predict(["--json", "--model", str(int8_model), "--max-pixels", "100000",
                      str(image)], cwd=tmp_path)  # fmt: skip
    (line,) = json_lines(result.stdout)
    assert "over the limit of 1,448,576 bytes that --max-pixels sets" in line["error"]
    assert result.returncode == 1


MEMORY_SCRIPT = """
import json, resource, sys
from pathlib import Path
from mnist_edge.runtime.batch import ReadOptions, Task, process
from mnist_edge.runtime.bench import synthetic_frame
from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize

classifier = DigitClassifier(sys.argv[1])
recognize(synthetic_frame(size=(2000, 2000)), classifier)  # warm: interpreter, OpenCV threads
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[2]) * 2**20, resource.RLIM_INFINITY))
for path in sys.argv[3:]:
    outcome = process(Task(path, Path(path)), classifier, ReadOptions())
    print(json.dumps({"text": outcome.result and outcome.result.text, "error": outcome.error}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_largest_allowed_image_decodes_within_stated_memory(tmp_path, int8_model):
    """7900x7900 (62 MP, inside the 64 MP limit): 8-bit RGB within 200 MB of address space
    above the warmed-up process, RGBA (4 bytes a pixel as stored) within 400 MB."""
    side = 7900
    grey = np.full((side, side), 225, np.uint8)
    for i, d in enumerate("4293"):
        cv2.putText(grey, d, (800 + i * 1700, 5000), cv2.FONT_HERSHEY_SIMPLEX, 60, 30, 120)
    cv2.imwrite(str(tmp_path / "rgb.png"), cv2.merge([grey, grey, np.maximum(grey, 40)]))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.merge([grey * 0, grey * 0, grey * 0, 255 - grey]))
    del grey

    def read(budget_mb: int, *names: str) -> list[dict]:
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(int8_model), str(budget_mb),
             *(str(tmp_path / n) for n in names)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    assert read(200, "rgb.png") == [{"text": "4293", "error": None}]
    assert read(400, "rgba.png") == [{"text": "4293", "error": None}]
    # Short of memory, the file is an error like any other, in one line.
    (short,) = read(150, "rgba.png")
    assert short == {"text": None, "error": "not enough memory to decode 7900x7900"}


def with_stderr_on_a_terminal(args: list[str], cwd: Path):
    """predict with stdout piped and stderr on a pseudo-terminal: (result, what the terminal
    got)."""
    master, slave = pty.openpty()
    received = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = predict(args, cwd=cwd, stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return result, b"".join(received).decode()


def test_progress_bar_only_on_a_terminal_never_in_stdout(tmp_path, int8_model, sure_digits):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"d{i:02d}.png"), paper_digit(sure_digits[i % 3][0]))
    args = ["--json", "--model", str(int8_model), str(folder)]

    on_tty, terminal = with_stderr_on_a_terminal(args, tmp_path)
    assert on_tty.returncode == 0
    assert "reading" in terminal and "12/12" in terminal and "files/s" in terminal
    assert len(json_lines(on_tty.stdout)) == 12
    assert "files/s" not in on_tty.stdout and "\r" not in on_tty.stdout

    piped = predict(args, cwd=tmp_path)  # stderr not a terminal: no bar
    assert piped.stderr == "" and piped.stdout == on_tty.stdout
    few, terminal = with_stderr_on_a_terminal([*args[:-1], str(folder / "d00.png")], tmp_path)
    assert few.returncode == 0 and terminal == ""  # a handful of files: no bar


def _die_on_marked(tasks: list[Task]) -> list[Outcome]:
    """A worker's work that kills the worker on one task, as a native crash would."""
    if any(task.shown.endswith("die") for task in tasks):
        os._exit(7)
    return [Outcome(task, None, f"done {task.shown}") for task in tasks]


def check_a_dying_worker_costs_only_its_file(model: str) -> None:
    tasks = [Task(f"t{i}", None) for i in range(6)] + [Task("x-die", None)]
    tasks += [Task(f"u{i}", None) for i in range(6)]
    setup = (model, 1, ReadOptions(), False)
    outcomes = list(_in_workers(tasks, 2, setup, _die_on_marked, chunk=3))
    assert [o.task for o in outcomes] == tasks
    for outcome in outcomes:
        if outcome.task.shown == "x-die":
            assert "worker process reading it died" in outcome.error
        else:
            assert outcome.error == f"done {outcome.task.shown}"


def test_a_dying_worker_costs_only_its_file_forked(int8_model):
    """Workers forked from a process that runs no other thread (a fresh one, as predict is);
    the pools after the death come from the fork server."""
    code = (
        "from tests.test_predict_batch import check_a_dying_worker_costs_only_its_file as check\n"
        "from mnist_edge.runtime import batch\n"
        "assert batch._may_fork()\n"
        f"check({str(int8_model)!r})\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_dying_worker_costs_only_its_file_from_the_fork_server(int8_model):
    """With a thread of ours running (as after a worker died), never a fork from here."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not batch._may_fork()
        check_a_dying_worker_costs_only_its_file(str(int8_model))
    finally:
        stop.set()
        other.join()


def test_chunks_keep_order_and_shrink_at_the_end():
    tasks = [Task(f"t{i}", None) for i in range(1000)]
    chunks = list(batch.in_chunks(tasks, 8, 2))
    assert [task for chunk in chunks for task in chunk] == tasks
    sizes = [len(chunk) for chunk in chunks]
    assert sizes[0] == 8 and max(sizes) == 8 and sizes == sorted(sizes, reverse=True)
    assert sizes[-10:] == [1] * 10  # the last files go one by one: nobody waits long at the end
    assert [len(c) for c in batch.in_chunks(tasks[:5], 8, 2)] == [1] * 5


def test_workers_that_cannot_start_leave_the_work_here(tmp_path):
    tasks = [Task(f"t{i}", None) for i in range(60)]

    def here(part: list[Task]) -> list[Outcome]:
        time.sleep(0.1)  # slow enough that the pool fails long before the end
        return [Outcome(task, None, f"here {task.shown}") for task in part]

    setup = (str(tmp_path / "missing.tflite"), 1, ReadOptions(), False)  # no worker starts
    outcomes = list(_in_workers(tasks, 1, setup, _die_on_marked, chunk=2, here=here))
    assert [o.error for o in outcomes] == [f"here t{i}" for i in range(60)]


def test_jobs_output_equals_jobs_1_with_annotated(tmp_path, int8_model, sure_digits, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for i, (digit, _) in enumerate(sure_digits):
        cv2.imwrite(f"in/x{i}.png", paper_digit(digit))
        cv2.imwrite(f"in/x{i}.jpg", paper_digit(digit))  # same stem: must not clash
        cv2.imwrite(f"in/sub/y{i}.jpg", paper_digit(digit))
    Path("in/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    base = ["predict", "--model", str(int8_model), "--verbose", "in", "in/x0.png", "missing.png"]

    one = run(*base, "--save-annotated", "out1")
    two = run(*base, "--save-annotated", "out2", "--jobs", "2")
    assert one.exit_code == two.exit_code == 1
    assert one.stdout == two.stdout
    assert one.stderr.replace("out1", "out2") == two.stderr
    written = sorted(p.relative_to("out1").as_posix() for p in Path("out1").rglob("*.png"))
    assert len(written) == 3 * 3 + 1  # every readable input, the one given twice too
    assert "in/x0.png" in written and "in/sub/y0.png" in written
    assert written == sorted(p.relative_to("out2").as_posix() for p in Path("out2").rglob("*.png"))
    announced = [line for line in one.stderr.splitlines() if line.startswith("annotated: ")]
    assert len(announced) == len(written)
    assert "annotated: in/sub/y1.jpg -> out1/in/sub/y1.png" in announced


def test_annotated_names_stable_and_unique(tmp_path):
    out = Path("out")
    items = [
        ImageInput("scans/a.png", Path("scans/a.png")),
        ImageInput("scans/a.jpg", Path("scans/a.jpg")),
        ImageInput("scans/a.png", Path("scans/a.png")),
        ImageInput("/data/b.png", Path("/data/b.png")),
        ImageInput("/data/in/c.png", Path("/data/in/c.png"), inside="c.png"),
        ImageInput("../up/d.png", Path("../up/d.png")),
        ImageInput("missing.png", None, "no such file or directory"),
        ImageInput("scans/A.PNG", Path("scans/A.PNG")),
    ]
    targets = annotated_targets(items, out)
    assert targets == annotated_targets(items, out)  # stable
    assert targets[0] == out / "scans/a.png"
    assert targets[1].parent == out / "scans" and targets[1].name.startswith("a-")
    assert targets[2].parent == out / "scans" and targets[2].name.startswith("a-")
    named = [t for t in targets if t is not None]
    assert len({t.as_posix().casefold() for t in named}) == len(named) == 7
    assert targets[3].parent == out and targets[3].name.startswith("b-")
    assert targets[4] == out / "c.png"
    assert targets[5].parent == out and targets[5].name.startswith("d-")
    assert targets[6] is None


def test_table_keeps_columns_for_a_40_digit_number():
    page = FrameResult(
        [Digit(int(c), 0.99, (i * 10, 0, 9, 9)) for i, c in enumerate("1234567890" * 4)],
        "1234567890" * 4,
    )
    short = FrameResult([Digit(7, 0.95, (0, 0, 9, 9))], "7")
    width = 8
    rows = [
        *table_row("page.png", width, page, None).splitlines(),
        table_row("x.png", width, short, None),
        table_row("bad.png", width, None, "not an image"),
    ]
    digits_column = width + 2 + NUMBER_WIDTH + 2
    assert rows[0] == f"{'page.png':<{width}}  {'1234567890' * 4}"  # the number, whole
    assert rows[1].startswith(" " * digits_column + "1 (0.99)  2 (0.99)")
    assert rows[2][digits_column:].startswith("7 (0.95)")
    assert rows[3][digits_column:].startswith("error: not an image")


def test_non_utf8_file_name_printed_as_escaped_bytes(tmp_path, int8_model, sure_digits):
    name = os.fsdecode(b"caf\xe9.png")
    cv2.imwrite(str(tmp_path / "x.png"), paper_digit(sure_digits[0][0]))
    os.rename(tmp_path / "x.png", os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"))
    as_json = predict(["--json", "--model", str(int8_model), name], cwd=tmp_path)
    (line,) = json_lines(as_json.stdout)
    assert line["path"] == "caf\\xe9.png" and line["text"] == str(sure_digits[0][1])
    assert "\\udce9" not in as_json.stdout
    table = predict(["--model", str(int8_model), name], cwd=tmp_path)
    assert table.stdout.splitlines()[1].startswith("caf\\xe9.png ")


def test_reduced_decoding_same_text_and_boxes_on_large_frames(tmp_path, mnist, int8_model):
    """Big JPEGs read at a reduced size as at full size. Not always to the digit: a digit
    the model hesitates on may flip either way (on 48 such frames: 46 the same text, 43 right
    both ways), so: nearly all the same, no fewer right, boxes within the reduction's rounding
    (the same region: intersection over union > 0.8)."""
    from mnist_edge.runtime.classifier import DigitClassifier

    classifier = DigitClassifier(int8_model)
    rng = np.random.default_rng(0)
    sizes = [(1800, 2400), (2250, 3000), (1080, 1920)] * 3
    numbers = sample_numbers(mnist.x_test, mnist.y_test, len(sizes), rng, (3, 5))
    same = right_full = right_reduced = 0
    for i, (size, (images, truth)) in enumerate(zip(sizes, numbers, strict=True)):
        frame, _ = camera_frame_with_boxes(images, rng, size=size, jpeg_quality=92)
        path = tmp_path / f"f{i}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        full = recognize(decode_file(path, min_side=None).pixels, classifier)
        reduced, _ = read_digits(path, classifier)
        assert decode_file(path).pixels.shape[1] < size[1]  # it was reduced
        same += reduced.text == full.text
        right_full += full.text == truth
        right_reduced += reduced.text == truth
        if len(full.digits) == len(reduced.digits):
            for a, b in zip(full.digits, reduced.digits, strict=True):
                assert overlap(a.box, b.box) > 0.8, (a.box, b.box)
    assert same >= len(sizes) - 2 and right_reduced >= right_full - 1


def overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_bench_files_json(tmp_path, int8_model, sure_digits):
    for i, (digit, _) in enumerate(sure_digits):
        cv2.imwrite(str(tmp_path / f"d{i}.jpg"), paper_digit(digit))
    (tmp_path / "bad.png").write_bytes(b"nope")
    result = run("bench", "--json", "--model", str(int8_model), "--files", str(tmp_path),
                 "--passes", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 4 and report["timed"] == 3
    for key in ("imread_ms", "imread_recognize_ms", "decode_ms", "predict_ms"):
        assert report[key] > 0
    assert report["predict_vs_imread"] > 0 and report["predict_files_per_s"] > 0


def test_jobs_2_with_model_troubles_as_jobs_1(tmp_path, int8_model, sure_digits, mutants):
    """Bad outputs are an error line per image, from a worker as from here; --ignore-card
    reaches the workers (a damaged copy of the model, its card beside it)."""
    for i, (digit, _) in enumerate(sure_digits * 4):
        cv2.imwrite(str(tmp_path / f"d{i:02d}.png"), paper_digit(digit))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((100, 100), 255, np.uint8))
    model = tmp_path / "models" / "mnist_int8.tflite"
    model.parent.mkdir()
    content = bytearray(int8_model.read_bytes())
    content[len(content) // 2] ^= 0x01  # one bit of a weight: runs, but not what its card says
    model.write_bytes(bytes(content))
    model.with_suffix(".json").write_bytes(int8_model.with_suffix(".json").read_bytes())

    runs = {}
    for name, args in {
        "nan": ["--model", str(mutants["nan_output"])],
        "ignore_card": ["--model", str(model), "--ignore-card"],
    }.items():
        one = predict(["--json", *args, "--jobs", "1", "."], cwd=tmp_path)
        two = predict(["--json", *args, "--jobs", "2", "."], cwd=tmp_path)
        assert (two.stdout, two.stderr, two.returncode) == (one.stdout, one.stderr, one.returncode)
        assert len(one.stdout.splitlines()) == 13
        runs[name] = one
    assert runs["nan"].returncode == 1 and runs["nan"].stdout.count("not a probability") == 12
    assert runs["ignore_card"].returncode == 0
    refused = predict(["--json", "--model", str(model), "--jobs", "2", "."], cwd=tmp_path)
    assert refused.returncode == 1 and "does not match its model card" in refused.stderr
