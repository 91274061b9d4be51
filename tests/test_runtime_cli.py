"""`mnist-edge predict` and `bench` on real files with the real int8 model; no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mnist_edge.cli import main
from tests.test_images import bomb_png

NO_TF_SCRIPT = """
import json, sys
import mnist_edge.runtime.bench, mnist_edge.runtime.camera, mnist_edge.runtime.cli_predict
import mnist_edge.runtime.images, mnist_edge.runtime.live
after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")
                      or m.startswith(("mnist_edge.trainer", "mnist_edge.export")))
from mnist_edge.cli import main
from tests.test_images import bomb_png
try:
    main(["predict", "--json", sys.argv[1]])
except SystemExit as end:
    code = end.code
tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"after_import": after_import, "tensorflow": tf, "code": code}))
"""


def on_paper(digit: np.ndarray) -> np.ndarray:
    """The MNIST digit as dark ink on white paper, 3x bigger, with a margin: float ink 0..1."""
    ink = cv2.resize(digit, (84, 84), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    return np.pad(np.clip(ink, 0, 1), 16)


def write_awkward_images(folder: Path, digit: np.ndarray, stem: str) -> None:
    """The same digit as every awkward-but-valid kind of file `predict` must read right."""
    ink = on_paper(digit)
    paper = np.clip((1 - ink) * 230 + 15, 0, 255).astype(np.uint8)  # dark ink on white
    alpha = (ink * 255).astype(np.uint8)
    Image.fromarray(digit).save(folder / f"{stem}_mnist.png")  # as in the test set
    cv2.imwrite(str(folder / f"{stem}_gray16.png"), paper.astype(np.uint16) * 257)
    colour16 = cv2.cvtColor(paper, cv2.COLOR_GRAY2BGR).astype(np.uint16) * 257
    cv2.imwrite(str(folder / f"{stem}_colour16.tif"), colour16)
    la = np.stack([np.full_like(alpha, 20), alpha], axis=-1)
    Image.fromarray(la, "LA").save(folder / f"{stem}_gray_alpha.png")
    rgba = np.dstack([np.full((*alpha.shape, 3), (30, 40, 140), np.uint8), alpha])
    Image.fromarray(rgba, "RGBA").save(folder / f"{stem}_rgba.png")
    rgb = Image.fromarray(paper).convert("RGB")
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / f"{stem}.gif")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned right; "rotate 90 CCW to view"
    rotated = rgb.transpose(Image.Transpose.ROTATE_270)
    rotated.save(folder / f"{stem}_exif.jpg", quality=90, exif=exif)
    rgb.save(folder / f"{stem}.webp", quality=90)
    rgb.save(folder / f"{stem}.bmp")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_runtime_and_predict_load_no_tensorflow(repo_root, tmp_path, sure_digits):
    digit, label = sure_digits[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    done = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT, str(tmp_path / "digit.png")],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    report = json.loads(lines[-1])
    assert report["after_import"] == []  # runtime imports neither TF nor trainer/export
    assert report["tensorflow"] == []
    assert report["code"] == 0
    assert json.loads(lines[0])["text"] == str(label)


def test_awkward_images_give_the_right_digit(tmp_path, int8_model, sure_digits):
    expected = {}
    for digit, label in sure_digits:
        write_awkward_images(tmp_path, digit, f"d{label}")
        expected[f"d{label}"] = str(label)

    result = run("predict", "--json", "--model", str(int8_model), str(tmp_path))
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert len(records) == len(list(tmp_path.iterdir()))
    for record in records:
        stem = Path(record["path"]).name.split("_")[0].split(".")[0]
        assert record["text"] == expected[stem], record


def test_files_folders_globs_table_and_json(tmp_path, int8_model, sure_digits, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans" / "more").mkdir(parents=True)
    paths = []
    for i, (digit, label) in enumerate(sure_digits):
        folder = "scans/more" if i else "scans"
        path = Path(folder) / f"digit{label}.png"
        cv2.imwrite(str(path), 255 - cv2.resize(digit, (84, 84)))
        paths.append((str(path), str(label)))

    as_json = run("predict", "--json", "--model", str(int8_model), "scans/*.png", "scans/more")
    assert as_json.exit_code == 0, as_json.output
    records = json_lines(as_json.stdout)
    assert [(r["path"], r["text"]) for r in records] == [paths[0], *sorted(paths[1:])]
    for record in records:
        (digit,) = record["digits"]
        assert set(digit) == {"digit", "confidence", "box"} and len(digit["box"]) == 4

    table = run("predict", "--model", str(int8_model), paths[0][0])
    assert table.exit_code == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:2] == ["path", "number"]
    assert row.split()[:2] == list(paths[0])


def test_bad_inputs_one_line_each_go_on_exit_1(tmp_path, int8_model, sure_digits, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batch").mkdir()
    (tmp_path / "nothing_here").mkdir()
    digit, label = sure_digits[0]
    Image.fromarray(digit).save(tmp_path / "batch" / "a_good.png")
    (tmp_path / "batch" / "b_empty.png").write_bytes(b"")
    (tmp_path / "batch" / "c_text.jpg").write_text("not an image\n")
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(255 - digit, (200, 200)))
    (tmp_path / "batch" / "d_truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    bomb_png(tmp_path / "batch" / "e_bomb.png", 30_000, 30_000)
    args = ["batch", "missing.png", "nothing_here", "nomatch*.png"]

    result = run("predict", "--json", "--model", str(int8_model), *args)
    assert result.exit_code == 1
    records = {r["path"]: r for r in json_lines(result.stdout)}
    assert records.pop("batch/a_good.png")["text"] == str(label)
    assert set(records) == {
        "batch/b_empty.png",
        "batch/c_text.jpg",
        "batch/d_truncated.jpg",
        "batch/e_bomb.png",
        "missing.png",
        "nothing_here",
        "nomatch*.png",
    }
    for record in records.values():
        assert set(record) == {"path", "error"} and "\n" not in record["error"]
    assert "pixel limit" in records["batch/e_bomb.png"]["error"]
    assert result.stderr.strip() == "Error: 7 of 8 inputs failed"

    table = run("predict", "--model", str(int8_model), *args)
    assert table.exit_code == 1
    rows = table.stdout.splitlines()[1:]
    assert len(rows) == 8 and sum("error: " in row for row in rows) == 7
    assert "Traceback" not in table.output


@pytest.mark.parametrize("model_kind", ["missing", "not_tflite", "folder"])
def test_bad_model_is_one_line_error(tmp_path, model_kind, sure_digits):
    Image.fromarray(sure_digits[0][0]).save(tmp_path / "digit.png")
    model = tmp_path / "model.tflite"
    if model_kind == "not_tflite":
        model.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer" * 10)
    elif model_kind == "folder":
        model.mkdir()

    result = run("predict", "--model", str(model), str(tmp_path / "digit.png"))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and str(model) in line
    assert result.stdout == ""


def test_save_annotated_and_verbose_backend(tmp_path, int8_model, sure_digits):
    digit, label = sure_digits[0]
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "d.jpg"), 255 - cv2.resize(digit, (112, 112)))
    out = tmp_path / "annotated"

    result = run(
        "predict", "--verbose", "--model", str(int8_model), "--save-annotated", str(out),
        str(tmp_path / "in"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ai_edge_litert" in result.stderr  # which interpreter ran
    (written,) = list(out.rglob("*.png"))
    assert written.name == "d.png"
    annotated = cv2.imread(str(written))
    assert annotated.shape == (112, 112, 3)
    colourful = annotated.max(axis=2).astype(int) - annotated.min(axis=2) > 60
    assert colourful.any()  # boxes drawn in colour on a gray picture


def test_bench_json_fields(int8_model):
    result = run(
        "bench", "--json", "--repeats", "5", "--video-frames", "20", "--model", str(int8_model)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("digit_batch1_us", "batched_digits_per_s", "frame_ms"):
        assert report[key] > 0
    assert report["backend"] == "ai_edge_litert"
    assert report["frame_size"] == [640, 480]
    assert 3 <= report["frame_digits"] <= 5  # the synthetic frame's digits are all found
    video = report["video"]
    assert video["frames_processed"] == video["frames"] == 20
    assert video["live_vs_decode_ratio"] > 0
