"""`mnist-edge bundle --target micro`, proven in TFLM's own interpreter (the tflite-micro wheel)
and with the GNU Arm toolchain: the bytes, the arena, the answers, the flash."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.export.micro.c_source import DATA_HEADER, DATA_SOURCE, bytes_from_source
from mnist_edge.export.micro.package import BUNDLE_DIR, README, ZIP_NAME, refusal
from mnist_edge.export.micro.settings import RESOLVER_METHODS, SETTINGS_HEADER
from mnist_edge.export.tflite_graph import Graph, Op, read_graph
from tests.test_bundle import assert_one_line_error, run_bundle

pytest.importorskip("tflite_micro", reason="TFLM's interpreter: pip install -e '.[micro]'")

from mnist_edge.export.micro import parity  # noqa: E402 (needs tflite_micro)
from mnist_edge.export.micro.arena import ProbeWorker, measure_arena  # noqa: E402


def arm_gcc_with_cxx_headers() -> bool:
    if shutil.which("arm-none-eabi-g++") is None or shutil.which("arm-none-eabi-size") is None:
        return False
    command = ["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-x", "c++", "-E", "-"]
    probe = subprocess.run(command, input="#include <cstdint>\n", capture_output=True, text=True)
    return probe.returncode == 0


needs_arm_gcc = pytest.mark.skipif(
    not arm_gcc_with_cxx_headers(),
    reason="GNU Arm toolchain or its C++ headers missing: apt-get install "
    "gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib (.ci/run does)",
)


@pytest.fixture(scope="module")
def micro(repo_root: Path, tmp_path_factory) -> tuple[Path, str]:
    """The bundle of the released int8 model: (its folder, the command's stdout)."""
    out = tmp_path_factory.mktemp("micro")
    done = run_bundle(repo_root, "--target", "micro", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "imported TensorFlow: False" in done.stderr
    return out / BUNDLE_DIR, done.stdout


def header_constant(header: str, name: str) -> str:
    match = re.search(rf"constexpr [\w\s*]+ {name}(?:\[\w*\])? = (.+);", header)
    assert match, f"{name} not in the settings header"
    return match[1]


def test_folder_and_zip_hold_the_sources_settings_readme_and_card(micro, int8_model) -> None:
    folder, stdout = micro
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([DATA_HEADER, DATA_SOURCE, SETTINGS_HEADER, README, "mnist_int8.json"])
    with zipfile.ZipFile(folder.parent / ZIP_NAME) as archive:
        assert sorted(archive.namelist()) == [f"{BUNDLE_DIR}/{name}" for name in names]
        for name in names:
            assert archive.read(f"{BUNDLE_DIR}/{name}") == (folder / name).read_bytes()
    assert (folder / "mnist_int8.json").read_bytes() == int8_model.with_suffix(".json").read_bytes()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporaries
    steps = stdout[stdout.index("next steps:") :]
    assert "Arduino" in steps and "ESP-IDF" in steps and "Pico SDK" in steps
    readme = (folder / README).read_text()
    assert "@" not in re.sub(r"`[^`]*`", "", readme)  # every placeholder filled
    assert "Arduino Nano 33 BLE" in readme and "ESP32" in readme and "Raspberry Pi Pico" in readme


def test_the_array_in_the_cc_is_the_tflite_file_byte_for_byte(micro, int8_model) -> None:
    source = (micro[0] / DATA_SOURCE).read_text()
    assert bytes_from_source(source) == int8_model.read_bytes()
    assert "alignas(16) const unsigned char g_mnist_model_data[]" in source
    broken = source.replace("0x1c,", "0x1c, 0x00,", 1)
    with pytest.raises(ValueError, match="holds"):
        bytes_from_source(broken)  # the length constant catches a byte too many


def test_settings_header_has_the_files_ops_quantization_and_labels(micro, int8_model) -> None:
    header = (micro[0] / SETTINGS_HEADER).read_text()
    ops = list(dict.fromkeys(read_graph(int8_model).op_names))
    calls = re.findall(r"op_resolver\.(Add\w+)\(\)", header)
    assert ops == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert calls == ["AddReshape", "AddFullyConnected", "AddSoftmax"]  # TFLM's method names
    assert header_constant(header, "kOpCount") == str(len(ops))
    assert "tflite::MicroMutableOpResolver<kOpCount>" in header
    details = parity.tflm_interpreter(int8_model.read_bytes(), 64 * 1024).get_input_details(0)
    scale = float(header_constant(header, "kInputScale").rstrip("f"))
    assert np.float32(scale) == details["quantization_parameters"]["scales"][0]
    assert int(header_constant(header, "kInputZeroPoint")) == -128
    assert "using InputType = int8_t;" in header and "using OutputType = int8_t;" in header
    labels = header_constant(header, "kCategoryLabels")
    assert labels == "{" + ", ".join(f'"{d}"' for d in range(10)) + "}"


@pytest.fixture(scope="module")
def arena_size(micro) -> int:
    return int(header_constant((micro[0] / SETTINGS_HEADER).read_text(), "kTensorArenaSize"))


def test_arena_is_measured_the_stated_size_runs_and_a_smaller_one_fails(
    micro, int8_model, arena_size
) -> None:
    measured = measure_arena(int8_model)
    header = (micro[0] / SETTINGS_HEADER).read_text()
    assert int(header_constant(header, "kTensorArenaMeasured")) == measured.smallest
    assert arena_size == measured.stated and arena_size % 16 == 0
    # TFLM's own record accounts for what the search found, to the alignment.
    assert measured.record["total"] == measured.record["head"] + measured.record["tail"]
    assert abs(measured.record["total"] - measured.smallest) <= 16
    assert any("NodeAndRegistration" in line for line in measured.record_lines)
    assert arena_size <= 8 * 1024  # the target
    worker = ProbeWorker(int8_model)
    try:
        assert worker.runs_with(arena_size) and worker.runs_with(measured.smallest)
        assert not worker.runs_with(measured.smallest - 1)
        assert not worker.runs_with(measured.smallest - 512)  # clearly smaller
        assert not worker.runs_with(100)  # the wheel crashes here; the worker starts afresh
        assert worker.runs_with(arena_size)
    finally:
        worker.close()


@pytest.fixture(scope="module")
def test_images(mnist, micro, int8_model):
    """All 10,000 MNIST test images as the model's input tensor, their labels, the model bytes
    read back out of the generated .cc."""
    data = bytes_from_source((micro[0] / DATA_SOURCE).read_text())
    details = parity.tflm_interpreter(data, 64 * 1024).get_input_details(0)
    return parity.quantized_images(mnist.x_test, details), mnist.y_test, data


def test_tflm_gives_litert_s_digits_and_outputs_on_the_mnist_test_set(
    test_images, arena_size, int8_model
) -> None:
    import json

    x, labels, data = test_images
    tflm = parity.tflm_outputs(data, x, arena_size)  # the settings header's arena
    card_accuracy = json.loads(int8_model.with_suffix(".json").read_text())["test_accuracy"]
    tflm_accuracy = float((tflm.argmax(axis=1) == labels).mean())
    for resolver in ("reference", "default"):
        result = parity.compare(tflm, parity.litert_outputs(data, x, resolver), labels, resolver)
        # Measured: 10,000 / 10,000 same digit, 9,997 identical outputs (bars leave a margin
        # for a retrained model; the next test explains every difference).
        assert result.same_digit >= 0.999 * len(x), result
        assert result.identical >= 0.999 * len(x), result
        assert abs(result.accuracy - tflm_accuracy) * len(x) <= len(x) - result.same_digit
    assert abs(tflm_accuracy - card_accuracy) * len(x) <= len(x) - result.same_digit + 0.5


def test_every_differing_output_is_the_fully_connected_rounding(test_images) -> None:
    x, _, data = test_images
    checks, tensors = parity.explain_fully_connected(data, x)
    assert len(checks) == 2  # the hidden layer and the logits
    for check in checks:
        # Each interpreter's FULLY_CONNECTED outputs are exactly its rounding rule applied to
        # its own inputs, on every image: TFLM rounds twice, LiteRT's reference kernels once.
        assert check.tflm_is_double_rounding == len(x), check
        assert check.litert_is_single_rounding == len(x), check
    assert checks[-1].differing > 0  # the rules do differ somewhere (else nothing to explain)
    assert parity.softmax_disagreements(tensors) == 0  # same logits, same softmax


def test_rounding_rules_where_they_part() -> None:
    multiplier, shift = parity.quantize_multiplier(np.array([0.25]))
    assert (multiplier.tolist(), shift.tolist()) == ([1 << 30], [-1])
    ties = np.array([[2, -2, 6, -6]], dtype=np.int64)  # x 0.25: 0.5, -0.5, 1.5, -1.5
    assert parity.single_rounding(ties, multiplier, shift).tolist() == [[1, 0, 2, -1]]  # up
    assert parity.double_rounding(ties, multiplier, shift).tolist() == [[1, -1, 2, -2]]  # away
    # Just below a half: 2 x (2**31 - 1) / 2**33 = 0.5 - 2**-32. One rounding gives 0; the first
    # of two rounds 2 x (1 - 2**-31) to 2, the second then meets 0.5 and gives 1.
    below = (np.array([(1 << 31) - 1]), np.array([-2]))
    assert parity.single_rounding(np.array([[2]]), *below).tolist() == [[0]]
    assert parity.double_rounding(np.array([[2]]), *below).tolist() == [[1]]


def test_float_and_dynamic_range_models_are_refused_in_one_line(repo_root, tmp_path) -> None:
    out = tmp_path / "dist"
    for variant, words in (
        ("float32", ("a float model",)),
        ("float16", ("a float model",)),
        ("dynamic", ("dynamic-range", "TFLM has no hybrid kernels")),
    ):
        model = repo_root / "models" / f"mnist_{variant}.tflite"
        done = run_bundle(repo_root, "--target", "micro", "--model", str(model), "--out", str(out))
        assert_one_line_error(done, model.name, *words)
    assert not list(out.iterdir())  # nothing written


def test_float_io_and_unknown_ops_are_refused() -> None:
    int8_fc = Op("FULLY_CONNECTED", ["INT8", "INT8", "INT32"], ["INT8"])
    float_io = Graph(
        [Op("QUANTIZE", ["FLOAT32"], ["INT8"]), int8_fc, Op("DEQUANTIZE", ["INT8"], ["FLOAT32"])],
        ["FLOAT32"],
        ["FLOAT32"],
        [[-1, 28, 28]],
    )
    assert "float32 input/output" in refusal(float_io)
    odd = Graph([Op("BATCH_MATMUL", ["INT8"], ["INT8"]), int8_fc], ["INT8"], ["INT8"], [[-1, 784]])
    assert "BATCH_MATMUL" in refusal(odd)
    uint8 = Graph([Op("QUANTIZE", ["UINT8"], ["INT8"]), int8_fc], ["UINT8"], ["UINT8"], [[-1, 784]])
    assert refusal(uint8) is None


def test_a_new_bundle_replaces_the_old_and_a_refused_one_leaves_it(
    repo_root, micro, tmp_path
) -> None:
    out = tmp_path / "dist"
    shutil.copytree(micro[0], out / BUNDLE_DIR)
    (out / BUNDLE_DIR / "stale.txt").write_text("from an older bundle")
    float_model = repo_root / "models" / "mnist_float32.tflite"
    refused = run_bundle(
        repo_root, "--target", "micro", "--model", str(float_model), "--out", str(out)
    )
    assert refused.returncode != 0 and (out / BUNDLE_DIR / "stale.txt").exists()
    done = run_bundle(repo_root, "--target", "micro", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / BUNDLE_DIR).iterdir()) == sorted(
        p.name for p in micro[0].iterdir()
    )
    assert sorted(p.name for p in out.iterdir()) == [BUNDLE_DIR, ZIP_NAME]


def test_bundle_run_elsewhere_uses_the_model_there_else_the_packaged_one(
    repo_root, tmp_path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_bundle(elsewhere, "--target", "micro")
    assert done.returncode == 0, done.stderr
    source = (elsewhere / "dist" / BUNDLE_DIR / DATA_SOURCE).read_text()
    assert bytes_from_source(source) == (repo_root / "models" / "mnist_int8.tflite").read_bytes()
    (elsewhere / "models").mkdir()  # a models/mnist_int8.tflite here wins: a float one, refused
    shutil.copy(
        repo_root / "models" / "mnist_float32.tflite", elsewhere / "models" / "mnist_int8.tflite"
    )
    refused = run_bundle(elsewhere, "--target", "micro")
    assert_one_line_error(refused, "models/mnist_int8.tflite", "a float model")


def test_source_is_only_for_targets_that_build_a_wheel(repo_root, tmp_path) -> None:
    done = run_bundle(
        repo_root, "--target", "micro", "--source", str(repo_root), "--out", str(tmp_path)
    )
    assert done.returncode == 2 and "--source is for targets that build the wheel" in done.stderr


@needs_arm_gcc
def test_sources_compile_for_a_cortex_m4_and_the_array_sits_in_flash(
    micro, int8_model, tmp_path
) -> None:
    from mnist_edge.export.micro.firmware import compile_for_cortex_m4, section_sizes

    folder, stdout = micro
    obj = tmp_path / "model.o"
    compile_for_cortex_m4(folder / DATA_SOURCE, obj, (folder,))
    sizes = section_sizes(obj)
    model_bytes = int8_model.stat().st_size
    # All of it read-only (flash): the array, its length, alignment padding; nothing in RAM.
    assert sizes["data"] == 0 and sizes["bss"] == 0
    assert model_bytes + 4 <= sizes["text"] <= model_bytes + 4 + 16
    assert sizes["text"] <= 110 * 1024  # the target
    assert f"model in flash: {sizes['text']:,} bytes (arm-none-eabi-size" in stdout
    sections = subprocess.run(
        ["arm-none-eabi-objdump", "-h", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    rodata = next(line for line in sections.splitlines() if " .rodata " in line)
    assert rodata.split()[-1] == "2**4"  # alignas(16) kept


# TFLM's C++ headers are not installable from a package registry, so the settings header is
# compiled against this stand-in for the part of TFLM's API it uses: it checks that the
# generated C++ is valid and its constants consistent, not TFLM's names (the Add...() names
# are compared with TFLM's above).
RESOLVER_STAND_IN = """#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
#define TF_LITE_ENSURE_STATUS(a) do { const TfLiteStatus s = (a); if (s != kTfLiteOk) return s; } \\
  while (0)
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
%s
  unsigned int count = 0;
};
}  // namespace tflite
"""
SETTINGS_USER = """#include "mnist_model_settings.h"
#include "mnist_model_data.h"
static_assert(kTensorArenaSize %% 16 == 0, "arena aligned");
static_assert(kInputSize == kNumRows * kNumCols, "one 28x28 image");
static_assert(sizeof(InputType) == 1 && sizeof(OutputType) == 1, "8-bit I/O");
static_assert(kCategoryCount == %d, "one label per output");
MnistOpResolver resolver;
int register_ops() { return RegisterMnistOps(resolver) == kTfLiteOk ? 0 : 1; }
"""


@needs_arm_gcc
def test_settings_header_compiles_for_a_cortex_m4(micro, tmp_path) -> None:
    from mnist_edge.export.micro.firmware import compile_for_cortex_m4

    folder = micro[0]
    stand_in = tmp_path / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    stand_in.parent.mkdir(parents=True)
    methods = "\n".join(
        f"  TfLiteStatus {name}() {{ return ++count <= tOpCount ? kTfLiteOk : kTfLiteError; }}"
        for name in RESOLVER_METHODS.values()
    )
    stand_in.write_text(RESOLVER_STAND_IN % methods)
    user = tmp_path / "user.cc"
    user.write_text(SETTINGS_USER % 10)
    compile_for_cortex_m4(user, tmp_path / "user.o", (folder, tmp_path))


def test_a_uint8_io_model_is_bundled_and_runs_in_tflm(repo_root, mnist, tmp_path) -> None:
    pytest.importorskip("tensorflow", reason="converting a uint8-I/O model needs TensorFlow")
    from mnist_edge.export.pipeline import convert_and_check
    from mnist_edge.export.variants import (
        ExportSettings,
        load_keras_model,
        stratified_calibration_set,
    )

    calibration = stratified_calibration_set(mnist.x_train, mnist.y_train, 200)
    settings = ExportSettings(calibration, int8_io="uint8", show_progress=False)
    model = tmp_path / "mnist_uint8io.tflite"
    keras_model = load_keras_model(repo_root / "models" / "mnist_dense.keras")
    convert_and_check(keras_model, "int8", settings, model, calibration[:5])
    out = tmp_path / "dist"
    done = run_bundle(repo_root, "--target", "micro", "--model", str(model), "--out", str(out))
    assert done.returncode == 0, done.stderr
    header = (out / BUNDLE_DIR / SETTINGS_HEADER).read_text()
    assert "using InputType = uint8_t;" in header and "using OutputType = uint8_t;" in header
    assert "op_resolver.AddQuantize()" in header  # uint8 <-> int8 at both ends
    data = bytes_from_source((out / BUNDLE_DIR / DATA_SOURCE).read_text())
    arena = int(header_constant(header, "kTensorArenaSize"))
    details = parity.tflm_interpreter(data, arena).get_input_details(0)
    x = parity.quantized_images(mnist.x_test[:1000], details)
    tflm = parity.tflm_outputs(data, x, arena)
    litert = parity.litert_outputs(data, x, "reference")
    assert (tflm.argmax(axis=1) == litert.argmax(axis=1)).mean() >= 0.99


def test_without_tflm_the_micro_bundle_says_how_to_install_it(repo_root, tmp_path) -> None:
    import sys

    code = (
        "import sys; sys.modules['tflite_micro'] = None  # as if not installed\n"
        "from mnist_edge.cli import main; main(sys.argv[1:])"
    )
    command = [sys.executable, "-c", code, "bundle", "--target", "micro", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True)
    assert_one_line_error(done, "TFLM's interpreter is not installed", "mnist-edge[micro]")
    assert not list(tmp_path.iterdir())
