"""Numbers written in handwriting-style fonts, in the synthetic camera conditions.

    python -m tests.script_fonts [--numbers 200] [--model PATH]

A different handwriting from MNIST's: each digit drawn with a font from Debian's handwriting
and script font packages (fonts-dkg-handwriting, fonts-breip,
fonts-humor-sans, fonts-dancingscript, fonts-comic-neue; `apt-get install` them; not
fonts-femkeklaver, whose digits are hollow outlines, not pen strokes), then put into
a camera-like frame by tests/synthetic.py exactly as MNIST digits are (paper, light, shadow,
noise, blur, JPEG). Prints, per font, how many 3-5 digit numbers are read exactly right.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_edge.runtime.classifier import DigitClassifier
from mnist_edge.runtime.digits import recognize
from tests.synthetic import camera_frame

REPO_ROOT = Path(__file__).resolve().parent.parent
FONTS = {
    "dkg handwriting": "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "breip": "/usr/share/fonts/truetype/breip/Breip.ttf",
    "humor sans": "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
    "dancing script": "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
    "comic neue": "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
}


def font_digit(font_path: str, digit: str, size: int = 96) -> np.ndarray:
    """One digit drawn with the font, white on black (uint8), as MNIST stores its digits."""
    font = ImageFont.truetype(font_path, size)
    canvas = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), digit, fill=255, font=font)
    return np.asarray(canvas)


def font_numbers(font_path: str, count: int, rng: np.random.Generator):
    """`count` (frame, text) pairs: 3-5 digit numbers in the font, camera-like."""
    glyphs = {d: font_digit(font_path, d) for d in "0123456789"}
    out = []
    for _ in range(count):
        text = "".join(rng.choice(list("0123456789"), int(rng.integers(3, 6))))
        out.append((camera_frame([glyphs[c] for c in text], rng), text))
    return out


@click.command()
@click.option("--model", default=str(REPO_ROOT / "models" / "mnist_int8.tflite"), show_default=True)
@click.option("--numbers", default=200, show_default=True, help="numbers per font")
def main(model: str, numbers: int) -> None:
    classifier = DigitClassifier(model)
    click.echo(f"Model {Path(model).name}; {numbers} numbers of 3-5 digits per font (seeded).\n")
    click.echo("| font | numbers exactly right | digits right | misread as |")
    click.echo("| --- | ---: | ---: | --- |")
    total = right_all = 0
    for k, (name, path) in enumerate(FONTS.items()):
        if not Path(path).is_file():
            click.echo(f"| {name} | (font not installed: {path}) | | |")
            continue
        rng = np.random.default_rng(500 + k)
        right = digits = digits_right = 0
        misses: dict[str, int] = {}
        for frame, text in font_numbers(path, numbers, rng):
            read = recognize(frame, classifier).text
            right += read == text
            digits += len(text)
            if len(read) == len(text):
                for a, b in zip(text, read, strict=True):
                    digits_right += a == b
                    if a != b:
                        misses[f"{a}->{b}"] = misses.get(f"{a}->{b}", 0) + 1
        top = ", ".join(f"{m} ({n})" for m, n in sorted(misses.items(), key=lambda x: -x[1])[:3])
        click.echo(
            f"| {name} | {right / numbers:.1%} | {digits_right / digits:.1%} | {top or '-'} |"
        )
        total += numbers
        right_all += right
    if total:
        click.echo(f"| all fonts | {right_all / total:.1%} | | |")


if __name__ == "__main__":
    main()
