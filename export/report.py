"""The export report: report.json (every number), report.md (tables), report.html (one page).

The HTML page is self-contained: figures are PNGs drawn with matplotlib and embedded as base64,
so the page can be mailed, attached to a CI run or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from mnist_edge.trainer.atomic import write_text_atomic

GALLERY_LIMIT = 40  # disagreements shown in the page; report.json lists them all
SAMPLE_COUNT = 32


def int8_drop_pp(models: list[dict]) -> float | None:
    """float32 accuracy minus int8 accuracy, in percentage points (None if one is missing)."""
    by_name = {m["name"]: m for m in models}
    if "float32" not in by_name or "int8" not in by_name:
        return None
    return round((by_name["float32"]["accuracy"] - by_name["int8"]["accuracy"]) * 100, 4)


# --- tables -----------------------------------------------------------------------------------

COLUMNS = [
    ("model", lambda m: m["name"]),
    ("size KB", lambda m: f"{m['size_bytes'] / 1024:.1f}"),
    ("size vs f32", lambda m: _percent(m.get("size_vs_float32"), 1)),
    ("accuracy", lambda m: f"{m['accuracy']:.2%}"),
    ("drop vs f32 (pp)", lambda m: _number(m.get("drop_vs_float32_pp"), "+.2f")),
    ("agree Keras", lambda m: f"{m['agreement_with_keras']:.2%}"),
    ("agree f32", lambda m: _percent(m.get("agreement_with_float32"), 2)),
    ("mean abs Δp", lambda m: f"{m['mean_abs_probability_difference']:.1e}"),
    ("max abs Δp", lambda m: f"{m['max_abs_probability_difference']:.3f}"),
    ("latency µs (b=1)", lambda m: f"{m['latency_us']:.0f}"),
    ("images/s", lambda m: f"{m['throughput_images_per_s']:,.0f}"),
]


def _percent(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_rows(models: list[dict]) -> tuple[list[str], list[list[str]]]:
    return [c for c, _ in COLUMNS], [[cell(m) for _, cell in COLUMNS] for m in models]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# The terminal gets the comparison as two tables, each well inside 100 columns.
TERMINAL_TABLES = (
    ("MNIST test set", ["model", "accuracy", "drop vs f32 (pp)", "agree Keras", "agree f32",
                        "mean abs Δp", "max abs Δp"]),
    ("size and speed", ["model", "size KB", "size vs f32", "latency µs (b=1)", "images/s"]),
)  # fmt: skip


def fixed_width(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, "-" * len(line), *body])


def terminal_tables(report: dict) -> str:
    """The end of `mnist-edge export`: the comparison, and each --eval-dir set."""
    header, rows = table_rows(report["models"])
    parts = []
    for title, columns in TERMINAL_TABLES:
        keep = [header.index(c) for c in columns]
        parts.append(f"{title}:\n" + fixed_width(columns, [[r[i] for i in keep] for r in rows]))
    for eval_set in report.get("eval_sets", []):
        parts.append(f"{eval_set_title(eval_set)}:\n" + fixed_width(*eval_set_table(eval_set)))
    return "\n\n".join(parts)


def eval_set_title(eval_set: dict) -> str:
    return f"--eval-dir {eval_set['name']} ({eval_set['images']:,} images)"


def eval_set_table(eval_set: dict) -> tuple[list[str], list[list[str]]]:
    header = ["model", "accuracy", "drop vs f32 (pp)", "agree f32"]
    models = eval_set["models"]
    f32 = next((m["accuracy"] for m in models if m["name"] == "float32"), None)
    rows = [
        [
            m["name"],
            f"{m['accuracy']:.2%}",
            "–" if f32 is None else f"{(f32 - m['accuracy']) * 100:+.2f}",
            _percent(m.get("agreement_with_float32"), 2),
        ]
        for m in models
    ]
    return header, rows


def per_class_table(models: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["digit", *(m["name"] for m in models)]
    rows = [[str(d), *(f"{m['per_class_accuracy'][d]:.2%}" for m in models)] for d in range(10)]
    return header, rows


def summary_lines(report: dict) -> list[str]:
    s = report["settings"]
    lines = [
        f"Test set: {report['data']['test_size']:,} images ({report['data']['source']}).",
        f"Interpreter: {report['versions'].get('interpreter', '?')}, evaluation batched "
        f"{s['eval_chunk']} images per call (images/s: median of {s['throughput_passes']} passes); "
        f"latency: median of {s['latency_runs']} batch-1 calls.",
    ]
    if "int8" in s["variants"]:
        lines.append(
            f"int8: calibrated on {s['calibration_samples']} training images stratified over "
            f"the ten digits (seed {s['calibration_seed']}), I/O {s['int8_io']}."
        )
    if report["int8_drop_pp"] is not None:
        lines.append(
            f"int8 vs float32: {report['int8_drop_pp']:+.2f} pp accuracy, "
            f"{report['int8_disagreements_with_float32']} disagreements on the test set."
        )
    for eval_set in report.get("eval_sets", []):
        by_name = {m["name"]: m for m in eval_set["models"]}
        if eval_set["int8_drop_pp"] is not None:
            lines.append(
                f"{eval_set['name']} ({eval_set['images']:,} images): int8 vs float32 "
                f"{eval_set['int8_drop_pp']:+.2f} pp accuracy, top-1 agreement "
                f"{by_name['int8']['agreement_with_float32']:.2%}."
            )
    return lines


def eval_sets_markdown(report: dict) -> list[str]:
    if not report.get("eval_sets"):
        return []
    parts = ["## Other data sets (`--eval-dir`)", ""]
    for eval_set in report["eval_sets"]:
        counts = " ".join(str(c) for c in eval_set["counts"])
        parts += [
            f"### {eval_set_title(eval_set)}",
            "",
            f"Digits 0-9: {counts}; files sha256 `{eval_set['files_sha256'][:16]}…`.",
            "",
            markdown_table(*eval_set_table(eval_set)),
            "",
        ]
    return parts


def write_markdown(report: dict, path: Path) -> None:
    parts = [
        "# mnist-edge export report",
        "",
        f"Created {report['created']} from `{report['source_model']}`.",
        "",
        *(f"- {line}" for line in summary_lines(report)),
        "",
        "## Comparison",
        "",
        markdown_table(*table_rows(report["models"])),
        "",
        "Sizes are file sizes; `drop vs f32` is float32 accuracy minus this accuracy; "
        "`abs Δp` is the absolute difference of the ten probabilities to Keras's.",
        "",
        "## Per-class accuracy",
        "",
        markdown_table(*per_class_table(report["models"])),
        "",
        *eval_sets_markdown(report),
        "## Versions and data",
        "",
        *(f"- {k}: {v}" for k, v in report["versions"].items()),
        *(f"- MD5 {name}: `{md5}`" for name, md5 in report["data"]["md5"].items()),
        "",
    ]
    write_text_atomic(path, "\n".join(parts))


# --- figures ----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_figure(a: dict, b: dict) -> str:
    """Confusion matrices of `a` and `b` side by side, and b minus a."""
    plt = _pyplot()
    ma, mb = np.array(a["confusion_matrix"]), np.array(b["confusion_matrix"])
    diff = mb - ma
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, matrix, title in ((axes[0], ma, a["name"]), (axes[1], mb, b["name"])):
        # log colours: the diagonal (~1000) would otherwise hide every error (~1-10)
        ax.imshow(np.log1p(matrix), cmap="Blues")
        ax.set_title(f"{title}: accuracy {np.trace(matrix) / matrix.sum():.2%}")
        _annotate(ax, matrix, lambda v, m=matrix: "white" if v > m.max() / 3 else "black")
    limit = max(1, int(np.abs(diff).max()))
    axes[2].imshow(diff, cmap="RdBu", vmin=-limit, vmax=limit)
    axes[2].set_title(f"{b['name']} minus {a['name']} (blue: more, red: fewer)")
    _annotate(axes[2], diff, lambda v: "white" if abs(v) > limit / 2 else "black", hide_zero=True)
    for ax in axes:
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
    fig.tight_layout()
    return _png_base64(fig)


def _annotate(ax, matrix: np.ndarray, colour, hide_zero: bool = False) -> None:
    for (row, col), value in np.ndenumerate(matrix):
        if hide_zero and value == 0:
            continue
        text = f"{value:+d}" if hide_zero else str(value)
        ax.text(col, row, text, ha="center", va="center", fontsize=7, color=colour(value))


def gallery_figure(images: np.ndarray, captions: list[str], cols: int = 8) -> str:
    """Test images (uint8 28x28) in a grid, each with a caption below."""
    plt = _pyplot()
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 2.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=7.5)
    fig.tight_layout()
    return _png_base64(fig)


def _caption(name: str, probabilities: np.ndarray) -> str:
    digit = int(probabilities.argmax())
    return f"{name} {digit} ({probabilities[digit]:.2f})"


def figures(report: dict, x_test: np.ndarray, y_test: np.ndarray, probs: dict) -> dict:
    """The page's figures as base64 PNGs, keyed by name; comparison is float32 vs int8."""
    by_name = {m["name"]: m for m in report["models"]}
    a, b = report["compared"]
    shown = {"a": a, "b": b}
    if a != b:
        shown["confusion"] = confusion_figure(by_name[a], by_name[b])
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(x_test), SAMPLE_COUNT, replace=False))
    shown["samples"] = gallery_figure(
        x_test[sample],
        [
            f"true {y_test[i]}\n{_caption(a, probs[a][i])}\n{_caption(b, probs[b][i])}"
            for i in sample
        ],
    )
    disagree = report["disagreements"][:GALLERY_LIMIT]
    if disagree:
        shown["disagreements"] = gallery_figure(
            x_test[disagree],
            [
                f"#{i} true {y_test[i]}\n{_caption(a, probs[a][i])}\n{_caption(b, probs[b][i])}"
                for i in disagree
            ],
        )
    return shown


# --- the page ---------------------------------------------------------------------------------

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(figures: dict, key: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{figures[key]}">'


def write_html(report: dict, figures: dict, path: Path) -> None:
    a, b = figures["a"], figures["b"]
    count = len(report["disagreements"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>mnist-edge export report</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        "<h1>mnist-edge export report</h1>",
        f"<p>Created {html.escape(report['created'])} from "
        f"<code>{html.escape(report['source_model'])}</code>.</p>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary_lines(report)) + "</ul>",
        "<h2>Comparison</h2>",
        html_table(*table_rows(report["models"])),
        "<h2>Per-class accuracy</h2>",
        html_table(*per_class_table(report["models"])),
    ]
    for eval_set in report.get("eval_sets", []):
        counts = " ".join(str(c) for c in eval_set["counts"])
        parts += [
            f"<h2>{html.escape(eval_set_title(eval_set))}</h2>",
            f"<p>Digits 0-9: {counts}; files sha256 <code>{eval_set['files_sha256']}</code>.</p>",
            html_table(*eval_set_table(eval_set)),
        ]
    if "confusion" in figures:
        parts += [
            f"<h2>Confusion matrices: {a}, {b} and the difference</h2>",
            _img(figures, "confusion", f"confusion matrices of {a} and {b}"),
        ]
    parts += [
        f"<h2>Sample test images with the predictions of {a} and {b}</h2>",
        "<p>Each caption: the true digit, then each model's digit and its probability.</p>",
        _img(figures, "samples", "sample test images with predictions"),
        f"<h2>Where {a} and {b} disagree ({count} of {report['data']['test_size']:,})</h2>",
    ]
    if "disagreements" in figures:
        shown = min(count, GALLERY_LIMIT)
        parts += [
            f"<p>Showing {shown}; report.json lists every index. "
            "Caption: test index, true digit, each model's answer and confidence.</p>",
            _img(figures, "disagreements", f"test images where {a} and {b} disagree"),
        ]
    else:
        parts.append(f"<p>None: {a} and {b} give the same digit for every test image.</p>")
    parts += [
        "<h2>Versions and data</h2>",
        "<ul>"
        + "".join(
            f"<li>{html.escape(k)}: {html.escape(str(v))}</li>"
            for k, v in report["versions"].items()
        )
        + "".join(
            f"<li>MD5 {html.escape(n)}: <code>{m}</code></li>"
            for n, m in report["data"]["md5"].items()
        )
        + "</ul>",
        "</body></html>",
        "",
    ]
    write_text_atomic(path, "\n".join(parts))


def write_json(report: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
