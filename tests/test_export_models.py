"""The committed models/ artifacts agree with a fresh evaluation of the committed int8 file."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from mnist_edge.export.evaluate import confusion_matrix
from mnist_edge.export.tflite_graph import integer_only_problems, minimal_graph_problems, read_graph
from mnist_edge.runtime.classifier import DigitClassifier


@pytest.fixture(scope="module")
def models_dir(repo_root):
    return repo_root / "models"


def test_committed_int8_card_and_report_match_a_fresh_evaluation(models_dir, mnist):
    path = models_dir / "mnist_int8.tflite"
    card = json.loads((models_dir / "mnist_int8.json").read_text())
    report = json.loads((models_dir / "report.json").read_text())
    entry = next(m for m in report["models"] if m["name"] == "int8")

    content = path.read_bytes()
    assert card["sha256"] == entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert card["size_bytes"] == entry["size_bytes"] == len(content)

    classifier = DigitClassifier(path)
    assert classifier.card == card  # the runtime reads the card: its sha256 matched
    top1 = classifier.predict(mnist.x_test.astype(np.float32) / 255.0).argmax(axis=1)
    accuracy = float(np.mean(top1 == mnist.y_test))
    assert card["test_accuracy"] == entry["accuracy"] == accuracy
    assert entry["confusion_matrix"] == confusion_matrix(mnist.y_test, top1).tolist()
    assert sorted(report["data"]["md5"].values()) == sorted(mnist.checksums.values())


def test_committed_files_are_the_checked_edge_graphs(models_dir):
    report = json.loads((models_dir / "report.json").read_text())
    assert report["settings"]["int8_io"] == "int8"
    for variant in report["settings"]["variants"]:
        graph = read_graph(models_dir / f"mnist_{variant}.tflite")
        assert minimal_graph_problems(graph) == []
    assert integer_only_problems(read_graph(models_dir / "mnist_int8.tflite"), "int8") == []


def test_committed_reports_name_no_folder_of_the_build_machine(models_dir):
    texts = {p.name: p.read_text() for p in models_dir.glob("*.json")}
    texts["report.md"] = (models_dir / "report.md").read_text()
    page = (models_dir / "report.html").read_text()
    texts["report.html"] = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    absolute = re.compile(r"(?<![\w.:/])/(?:home|root|tmp|work|Users|usr|var|mnt|opt)/")
    for name, text in texts.items():
        assert not absolute.search(text), f"{name}: {absolute.search(text).group(0)}"


def test_committed_report_measures_usps_and_matches_the_int8_file(models_dir, repo_root):
    """The release report carries the USPS development set (--eval-dir); recomputed here."""
    report = json.loads((models_dir / "report.json").read_text())
    usps = [s for s in report["eval_sets"] if s["name"].startswith("usps")]
    assert usps, "models/report.json has no USPS --eval-dir set"
    entry = {m["name"]: m for m in usps[0]["models"]}
    path = repo_root.parent / "shared" / "data" / "usps" / "zip.train.gz"
    if not path.is_file():
        pytest.skip(f"{path} missing: USPS is not recomputed")
    from mnist_edge.trainer.usps import usps_in_mnist_layout

    images, labels = usps_in_mnist_layout(path)
    top1 = DigitClassifier(models_dir / "mnist_int8.tflite").predict(images).argmax(axis=1)
    assert usps[0]["images"] == len(labels)
    assert entry["int8"]["accuracy"] == float(np.mean(top1 == labels))
