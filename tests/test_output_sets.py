"""train and export switch their files in as one set: kills at every step, the lock, a full disk.

Real processes, killed with SIGKILL at a named step of the switch (the MNIST_EDGE_TEST_KILL_AT
hook in trainer/atomic.py), so nothing of ours runs after the kill. A small writer exercises
every step cheaply; real `mnist-edge export` and `train` runs cover the steps that matter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_edge.trainer.atomic import KILL_AT_ENV, LOCK_NAME, OutputError, output_set

SET = [f"mnist_{v}{s}" for v in ("float32", "int8") for s in (".tflite", ".json")] + [
    "report.json",
    "report.md",
    "report.html",
]

WRITER = """
import sys, time
from pathlib import Path
from mnist_edge.trainer.atomic import output_set
out, version, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
with output_set(out, "export") as staging:
    for name in names:
        (staging / name).write_text(f"{version} {name}\\n" * 1000)
"""

HOLDER = """
import sys, time
from pathlib import Path
from mnist_edge.trainer.atomic import output_lock
with output_lock(Path(sys.argv[1]), "export"):
    print("locked", flush=True)
    time.sleep(600)
"""


def write_set(out: Path, version: str, kill_at: str | None = None) -> int:
    env = dict(os.environ)
    env.pop(KILL_AT_ENV, None)
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(out), version, *SET], env=env, capture_output=True
    )
    return done.returncode


def versions(out: Path) -> set[str]:
    return {(out / name).read_text().split()[0] for name in SET}


def staging_left(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.new-*")) + sorted(out.glob(".new-*"))


def mnist_edge(*args: str, kill_at: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop(KILL_AT_ENV, None)
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        **kwargs,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize("step", ["staged", "linked", "switched"])
def test_a_kill_at_any_step_leaves_one_complete_set(tmp_path, step):
    out = tmp_path / "models"
    assert write_set(out, "old") == 0
    (out / "notes.txt").write_text("mine")  # not ours: survives every switch
    assert write_set(out, "new", kill_at=step) == -signal.SIGKILL
    assert versions(out) == ({"new"} if step == "switched" else {"old"})
    assert (out / "notes.txt").read_text() == "mine"
    assert staging_left(out)  # what the kill left (the old set, after the switch)

    assert write_set(out, "newer") == 0
    assert versions(out) == {"newer"} and (out / "notes.txt").read_text() == "mine"
    assert staging_left(out) == [] and not (out / LOCK_NAME).exists()
    assert {p.name for p in tmp_path.iterdir()} == {"models"}


@pytest.mark.parametrize("killed_after", range(len(SET)))
def test_without_the_exchange_files_are_switched_one_by_one_each_whole(tmp_path, killed_after):
    """A folder inside --out rules the folder swap out: the fallback renames file by file."""
    out = tmp_path / "models"
    assert write_set(out, "old") == 0
    (out / "keep").mkdir()
    name = sorted(SET)[killed_after]
    assert write_set(out, "new", kill_at=f"renamed {name}") == -signal.SIGKILL
    for path in (out / n for n in SET):  # every file complete, old or new, never truncated
        text = path.read_text()
        assert text in (f"old {path.name}\n" * 1000, f"new {path.name}\n" * 1000)
    assert (out / name).read_text().startswith("new")
    assert write_set(out, "newer") == 0
    assert versions(out) == {"newer"} and staging_left(out) == []


def test_the_lock_stops_a_second_writer_and_names_the_first(tmp_path, mnist_data_dir):
    out = tmp_path / "models"
    assert write_set(out, "old") == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        assert write_set(out, "new") == 1
        for command in ("train", "export"):
            done = mnist_edge(command, "--out", str(out), "--data-dir", str(mnist_data_dir))
            line = one_error_line(done)
            assert line.startswith(f"Error: {out}: mnist-edge export (pid {holder.pid}, started ")
            assert line.endswith("is writing into this folder; wait for it to finish or choose "
                                 "another --out")  # fmt: skip
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            with output_set(out, "export"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert versions(out) == {"old"}
    assert write_set(out, "new") == 0  # a killed holder's lock dies with it
    assert versions(out) == {"new"}


@pytest.fixture(scope="module")
def trained(small_keras_model) -> Path:
    return small_keras_model


def test_export_killed_around_the_switch_and_two_exports_at_once(trained, mnist_data_dir, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    old = {name: f"old {name}".encode() for name in SET}
    for name, content in old.items():
        (out / name).write_bytes(content)
    export = ["export", "--model", str(trained), "--out", str(out), "--data-dir",
              str(mnist_data_dir), "--variants", "float32,int8", "--quiet"]  # fmt: skip

    assert mnist_edge(*export, kill_at="linked").returncode == -signal.SIGKILL
    assert {name: (out / name).read_bytes() for name in SET} == old

    assert mnist_edge(*export, kill_at="switched").returncode == -signal.SIGKILL
    assert_complete_export(out)
    assert staging_left(out)

    # Two exports at once: the second stops at once, naming the first; the set is whole.
    first = subprocess.Popen(
        [sys.executable, "-m", "mnist_edge", *export],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = f"mnist-edge export (pid {first.pid}, started "
    deadline = time.monotonic() + 300
    while holder not in read_lock(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = mnist_edge(*export)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert one_error_line(second).startswith(f"Error: {out}: {holder}")
    assert_complete_export(out)
    assert staging_left(out) == [] and not (out / LOCK_NAME).exists()


def read_lock(out: Path) -> str:
    try:
        return (out / LOCK_NAME).read_text()
    except OSError:
        return ""


def assert_complete_export(out: Path) -> None:
    """Every file of one export: each .tflite matches its card, the report names them."""
    report = json.loads((out / "report.json").read_text())
    rows = {row["name"]: row for row in report["models"]}
    for variant in ("float32", "int8"):
        sha = hashlib.sha256((out / f"mnist_{variant}.tflite").read_bytes()).hexdigest()
        card = json.loads((out / f"mnist_{variant}.json").read_text())
        assert card["sha256"] == sha == rows[variant]["sha256"]


def test_train_killed_just_before_the_switch(mnist_data_dir, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "mnist_dense.keras").write_bytes(b"old model")
    train = ["train", "--out", str(out), "--data-dir", str(mnist_data_dir), "--limit", "600",
             "--epochs", "1", "--quiet"]  # fmt: skip
    assert mnist_edge(*train, kill_at="linked").returncode == -signal.SIGKILL
    assert {p.name for p in out.iterdir()} == {"mnist_dense.keras", LOCK_NAME}  # lock: reused
    assert (out / "mnist_dense.keras").read_bytes() == b"old model"
    assert mnist_edge(*train).returncode == 0
    names = {"mnist_dense.keras", "mnist_dense.train.json", "samples.png", "training_curves.png"}
    assert {p.name for p in out.iterdir()} == names and staging_left(out) == []


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of `size` mounted at `folder` (root only; skips where mounting is refused)."""
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_the_previous_set_stays(trained, mnist_data_dir, tmp_path):
    with small_disk(tmp_path / "disk", "600k") as disk:
        out = disk / "models"
        out.mkdir()
        old = {name: f"old {name}".encode() for name in SET}
        for name, content in old.items():
            (out / name).write_bytes(content)
        export = ["export", "--model", str(trained), "--out", str(out), "--data-dir",
                  str(mnist_data_dir), "--quiet"]  # fmt: skip
        line = one_error_line(mnist_edge(*export))
        assert line == (
            f"Error: {out}: cannot write the new files (No space left on device); the previous "
            "files are unchanged"
        )
        assert {name: (out / name).read_bytes() for name in SET} == old
        assert [p.name for p in disk.iterdir()] == ["models"]  # no staging folder left

        train = ["train", "--out", str(out), "--data-dir", str(mnist_data_dir), "--limit",
                 "600", "--epochs", "1", "--quiet"]  # fmt: skip
        (disk / "filler").write_bytes(bytes(500_000))  # the model no longer fits either
        assert "No space left on device" in one_error_line(mnist_edge(*train))
        assert {name: (out / name).read_bytes() for name in SET} == old


def test_a_failed_command_leaves_no_empty_output_folder(tmp_path):
    model = tmp_path / "x.keras"
    model.write_text("never read: the data is missing")
    for command in (["train"], ["export", "--model", str(model)], ["all"]):
        out = tmp_path / "new" / "models"
        done = mnist_edge(*command, "--out", str(out), "--data-dir", str(tmp_path / "missing"))
        assert "no such folder" in one_error_line(done)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.keras"], command
