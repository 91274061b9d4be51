"""The tensor arena a model needs, measured in TFLM's own interpreter (the `tflite-micro` wheel).

TFLM puts every tensor, every kernel's persistent data and its own bookkeeping into one buffer,
the arena, whose size the application fixes at build time. Too small and `AllocateTensors()`
fails on the board; too big and RAM is wasted. Two measurements, on the host:

- the smallest arena with which the interpreter allocates and runs one inference, found by
  bisection; the tries run in a child process, because this wheel crashes (SIGSEGV) on some
  sizes that are too small instead of reporting the failure;
- TFLM's own record of what it allocated (`RecordingMicroAllocator`, printed by
  `print_allocations()`), split into head (tensors, reused between ops) and tail (persistent).

The host build is 64-bit: TFLM's structures hold pointers, so a 32-bit microcontroller needs
less for them, never more (TFLM's own arena tests measure on x86-64 and only check a ceiling
elsewhere). Kernels optimized for a core (CMSIS-NN, ESP-NN) may ask for scratch buffers the
reference kernels do not: `ARENA_MARGIN` is added for those.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# CMSIS-NN's fully connected kernel takes 4 bytes per output channel of scratch on Helium
# cores (Cortex-M55/M85), none on a Cortex-M4/M0+: 552 bytes for 128 + 10 channels here.
ARENA_MARGIN = 1024
ARENA_ALIGNMENT = 16  # TFLM aligns the arena's start and its buffers to 16 bytes
RECORD_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
INSTALL_HINT = "pip install 'mnist-edge[micro]' (the tflite-micro wheel, Linux x86-64)"


class ArenaError(Exception):
    """The arena cannot be measured; the message is one line."""


@dataclass
class ArenaMeasurement:
    smallest: int  # bytes: the smallest arena that allocates and runs an inference
    record: dict[str, int]  # TFLM's RecordingMicroAllocator: "total", "head", "tail" bytes
    record_lines: list[str]  # its full printout, one line per kind of allocation

    @property
    def stated(self) -> int:
        """What the bundle declares as kTensorArenaSize: smallest + margin, 16-byte aligned."""
        size = self.smallest + ARENA_MARGIN
        return -(-size // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def tflm_runtime():
    """`tflite_micro.runtime`, or a one-line error saying how to install it."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise ArenaError(f"TFLM's interpreter is not installed: {INSTALL_HINT}") from None
    return runtime


def invoke_once(data: bytes, arena_size: int):
    """A TFLM interpreter on `data` with `arena_size` bytes that has run one inference."""
    interpreter = tflm_runtime().Interpreter.from_bytes(data, arena_size=arena_size)
    details = interpreter.get_input_details(0)
    zero_point = int(details["quantization_parameters"]["zero_points"][0])
    interpreter.set_input(np.full(details["shape"], zero_point, dtype=details["dtype"]), 0)
    interpreter.invoke()
    return interpreter


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (TFLM logs there, not to Python)."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def allocation_record(data: bytes, arena_size: int) -> tuple[dict[str, int], list[str]]:
    """TFLM's RecordingMicroAllocator figures after one inference in a roomy arena."""
    with captured_fd2() as lines:
        interpreter = invoke_once(data, arena_size)
        interpreter.print_allocations()
    record = {kind: int(n) for line in lines for kind, n in RECORD_LINE.findall(line)}
    if "total" not in record:
        raise ArenaError("TFLM printed no allocation record (no 'Arena allocation total' line)")
    return record, [line.strip() for line in lines if "RecordingMicroAllocator" in line]


class ProbeWorker:
    """A child interpreter that tries arena sizes for one model: one size per line on stdin,
    "ok" or "fails" back. If a size crashes it, that size fails and a new child is started.
    """

    def __init__(self, model: Path):
        self.model = model
        self.child: subprocess.Popen | None = None

    def runs_with(self, arena_size: int) -> bool:
        if self.child is None:
            command = [sys.executable, "-m", __name__, str(self.model)]
            self.child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        try:
            self.child.stdin.write(f"{arena_size}\n")
            self.child.stdin.flush()
            answer = self.child.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if answer not in ("ok", "fails"):  # crashed (or hung up): start afresh next time
            self.close()
        return answer == "ok"

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None


def serve_probes(model: Path) -> None:
    """The child's side of ProbeWorker (TFLM's "Failed to allocate" lines go to stderr)."""
    data = model.read_bytes()
    for line in sys.stdin:
        try:
            invoke_once(data, int(line))
            answer = "ok"
        except Exception:
            answer = "fails"
        print(answer, flush=True)


def smallest_arena(model: Path, works: int) -> int:
    """Bisection for the smallest arena size that runs, given one size known to run."""
    worker = ProbeWorker(model)
    try:
        if not worker.runs_with(works):
            raise ArenaError(f"{model}: does not run in TFLM even with a {works}-byte arena")
        fails = 0
        while works - fails > 1:
            middle = (works + fails) // 2
            if worker.runs_with(middle):
                works = middle
            else:
                fails = middle
    finally:
        worker.close()
    return works


def measure_arena(model: Path) -> ArenaMeasurement:
    """The smallest arena (searched) and TFLM's allocation record for one model."""
    data = model.read_bytes()
    roomy = max(64 * 1024, 2 * len(data))
    try:
        record, lines = allocation_record(data, roomy)
    except RuntimeError as error:  # the wheel's errors: unsupported op, bad model...
        raise ArenaError(f"TFLM cannot run the model ({str(error).strip()})") from None
    # The record is a tight upper bound; a little above it the search starts from a size
    # that runs, and the bisection then needs about log2(total) tries.
    smallest = smallest_arena(model, record["total"] + 4 * ARENA_ALIGNMENT)
    return ArenaMeasurement(smallest, record, lines)


if __name__ == "__main__":
    serve_probes(Path(sys.argv[1]))
