"""Compile the generated sources for a Cortex-M4 with the GNU Arm toolchain and read their size.

This is how the bundle knows what the model takes in flash: `arm-none-eabi-size` of the
compiled `mnist_model_data.cc` (the array in .rodata, which the linker places in flash), not
an estimate. Without the toolchain (Debian: gcc-arm-none-eabi) the size is left unmeasured.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CXX = "arm-none-eabi-g++"
SIZE = "arm-none-eabi-size"
CORTEX_M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c++17"]


class ToolchainError(Exception):
    """The compiler refused a source; the message is its first error line."""


def toolchain_present() -> bool:
    return shutil.which(CXX) is not None and shutil.which(SIZE) is not None


def compile_for_cortex_m4(source: Path, obj: Path, include_dirs: tuple[Path, ...] = ()) -> None:
    """`arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -Os -c source -o obj`."""
    command = [CXX, *CORTEX_M4_FLAGS, *(f"-I{d}" for d in include_dirs)]
    command += ["-Werror", "-Wall", "-c", str(source), "-o", str(obj)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line] or ["failed"]
        raise ToolchainError(f"{source.name}: {errors[0].strip()}")


def section_sizes(obj: Path) -> dict[str, int]:
    """`arm-none-eabi-size` (Berkeley format) of an object: text (code + read-only data, in
    flash), data (initialised RAM, stored in flash too) and bss (zeroed RAM)."""
    done = subprocess.run([SIZE, str(obj)], capture_output=True, text=True, check=True)
    numbers = done.stdout.splitlines()[1].split()
    return {"text": int(numbers[0]), "data": int(numbers[1]), "bss": int(numbers[2])}


def measured_flash(folder: Path, source_name: str) -> dict[str, int] | None:
    """Section sizes of `folder/source_name` compiled for a Cortex-M4; None without the
    toolchain. The object file is made in a temporary folder, not beside the sources."""
    if not toolchain_present():
        return None
    with tempfile.TemporaryDirectory(prefix="mnist-edge-m4-") as tmp:
        obj = Path(tmp) / "model.o"
        compile_for_cortex_m4(folder / source_name, obj, (folder,))
        return section_sizes(obj)
