"""Does the model fit a board? Its flash (the model array) and RAM (the tensor arena) against
the board's, for three common TFLM boards. These are the model's own needs only.
"""

from __future__ import annotations

from dataclasses import dataclass

KB = 1024


@dataclass
class Board:
    name: str
    chip: str
    flash: int  # bytes
    ram: int  # bytes: all SRAM, or on the ESP32 its largest contiguous block
    ram_note: str = ""


BOARDS = [
    Board("Arduino Nano 33 BLE", "nRF52840, Cortex-M4F", 1024 * KB, 256 * KB),
    Board("Raspberry Pi Pico", "RP2040, Cortex-M0+", 2048 * KB, 264 * KB),
    Board("ESP32", "Xtensa LX6", 4096 * KB, 110 * KB, "largest block, approximate"),
]

# TFLM's code comes on top of the model's needs. Figures from TFLM's documentation and issues,
# not measured here (the tflite-micro wheel has no Cortex-M build of the library).
FRAMEWORK_NOTE = (
    "These are the model's own needs. TFLM's code and the application come on top: TFLM's "
    "documentation gives 16 KB for its core runtime on a Cortex-M3 (22 KB with the kernels of "
    "its keyword-spotting example, in its older README); builds that link FULLY_CONNECTED, "
    "SOFTMAX and RESHAPE with TFLM's flatbuffer parsing are reported larger (160 KB of TFLM "
    "code for a 12-layer int8 model in tensorflow/tensorflow#48073). Measure the linked firmware "
    "with arm-none-eabi-size."
)


@dataclass
class Fit:
    board: Board
    flash_share: float  # of the board's flash the model array takes
    ram_share: float  # of its RAM the arena takes

    @property
    def fits(self) -> bool:
        return self.flash_share <= 1 and self.ram_share <= 1


def fits(flash_bytes: int, arena_bytes: int) -> list[Fit]:
    return [Fit(b, flash_bytes / b.flash, arena_bytes / b.ram) for b in BOARDS]


def fit_table(flash_bytes: int, arena_bytes: int) -> str:
    """A Markdown table: one row per board."""
    rows = [
        "| board | flash | RAM | model array in flash | tensor arena in RAM | fits |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for fit in fits(flash_bytes, arena_bytes):
        b = fit.board
        ram = f"{b.ram // KB} KB" + (f" ({b.ram_note})" if b.ram_note else "")
        rows.append(
            f"| {b.name} ({b.chip}) | {b.flash // KB} KB | {ram} "
            f"| {flash_bytes / KB:.1f} KB ({fit.flash_share:.1%}) "
            f"| {arena_bytes / KB:.1f} KB ({fit.ram_share:.1%}) | {'yes' if fit.fits else 'no'} |"
        )
    return "\n".join(rows)
