"""Does TFLM answer like LiteRT? The same .tflite bytes through TFLM's interpreter (the
`tflite-micro` wheel: TFLM's reference kernels built for the host) and through LiteRT, on the
MNIST test set, raw int8 output by raw int8 output, and why the few that differ do.

What this found for the released int8 model (see docs/micro.md): the digit is the same on
every image; the outputs differ only where a FULLY_CONNECTED output was rounded to a
neighbouring integer. Both interpreters compute the same int32 accumulator and the same
fixed-point multiplier, then round `acc * multiplier / 2**31 / 2**shift` differently:

- TFLM rounds twice, as gemmlowp does: to 31 bits in SaturatingRoundingDoublingHighMul, then
  again in RoundingDivideByPOT (each half away from zero);
- LiteRT's reference kernels round once, `(acc * multiplier + 2**(s - 1)) >> s` in 64 bits
  (TFLite's single-rounding arithmetic).

Near a tie the two land one apart. One logit step is large (0.36 in logit units here), so the
softmax moves further: two classes tied at 0.5 / 0.5 become 0.59 / 0.41, 23 output steps.
`explain_fully_connected` re-computes every FULLY_CONNECTED layer in numpy both ways and
checks each interpreter against its rounding; the softmax agrees wherever the logits do.

    python -m mnist_edge.export.micro.parity [--model M] [--data-dir DIR] [--limit N]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from mnist_edge.export.micro.arena import measure_arena, tflm_runtime
from mnist_edge.export.tflite_graph import enum_names, flatbuffer_schema, graph_of
from mnist_edge.runtime.classifier import native_stderr_silenced, quantize_input

RESOLVERS = {  # LiteRT kernels compared with TFLM: name -> OpResolverType member
    "reference": "BUILTIN_REF",
    "default": "AUTO",  # optimized builtin kernels + the XNNPACK delegate, as the runtime uses
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",  # optimized builtin kernels alone
}


def quantized_images(images: np.ndarray, details: dict) -> np.ndarray:
    """uint8 grey images [N, 28, 28] as the model's input tensor type, like the runtime does."""
    scale = float(details["quantization_parameters"]["scales"][0])
    zero_point = int(details["quantization_parameters"]["zero_points"][0])
    pixels = images.astype(np.float32) / np.float32(255)
    x = quantize_input(pixels, scale, zero_point, details["dtype"])
    return x.reshape((len(images), *[int(d) for d in details["shape"][1:]]))


def tflm_interpreter(data: bytes, arena_size: int, preserve: bool = False):
    runtime = tflm_runtime()
    config = runtime.InterpreterConfig
    kind = config.kPreserveAllTensors if preserve else config.kAllocationRecording
    return runtime.Interpreter.from_bytes(data, arena_size=arena_size, intrepreter_config=kind)


def tflm_outputs(data: bytes, x: np.ndarray, arena_size: int) -> np.ndarray:
    """TFLM's raw output for each image, one invoke per image as on a board."""
    interpreter = tflm_interpreter(data, arena_size)
    outputs = []
    for image in x:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0])
    return np.stack(outputs)


def tflm_tensors(data: bytes, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
    """Intermediate tensors, image by image (TFLM keeps them only when told, in a big arena)."""
    interpreter = tflm_interpreter(data, 64 * len(data), preserve=True)
    found: dict[int, list[np.ndarray]] = {i: [] for i in indices}
    for image in x:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        for i in indices:
            found[i].append(interpreter.GetTensor(i, 0)["tensor_data"][0])
    return {i: np.stack(rows) for i, rows in found.items()}


def litert_interpreter(data: bytes, resolver: str, batch: int, preserve: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with native_stderr_silenced():
        interpreter = Interpreter(
            model_content=data,
            experimental_op_resolver_type=getattr(OpResolverType, RESOLVERS[resolver]),
            experimental_preserve_all_tensors=preserve,
        )
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]], strict=True)
        interpreter.allocate_tensors()
    return interpreter


def litert_outputs(data: bytes, x: np.ndarray, resolver: str) -> np.ndarray:
    """LiteRT's raw outputs, all images in one batched invoke."""
    interpreter = litert_interpreter(data, resolver, len(x))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def litert_tensors(data: bytes, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
    interpreter = litert_interpreter(data, "reference", len(x), preserve=True)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return {i: interpreter.get_tensor(i).copy() for i in indices}


@dataclass
class Comparison:
    """TFLM's raw outputs against one LiteRT run's."""

    resolver: str
    images: int
    same_digit: int
    identical: int  # images whose whole output vector is bit-identical
    differing: list[int]  # indices of the others
    max_steps: int  # the largest difference, in output quantization steps (LSB)
    accuracy: float  # LiteRT's, on the labels


def compare(tflm: np.ndarray, litert: np.ndarray, labels: np.ndarray, resolver: str) -> Comparison:
    same_row = (tflm == litert).all(axis=1)
    steps = np.abs(tflm.astype(np.int32) - litert.astype(np.int32))
    return Comparison(
        resolver,
        len(tflm),
        int((tflm.argmax(axis=1) == litert.argmax(axis=1)).sum()),
        int(same_row.sum()),
        [int(i) for i in np.flatnonzero(~same_row)],
        int(steps.max(initial=0)),
        float((litert.argmax(axis=1) == labels).mean()),
    )


# --- Re-computing a FULLY_CONNECTED layer both ways, to say why outputs differ -------------


def quantize_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier: real = multiplier * 2**(shift - 31), multiplier in
    [2**30, 2**31)."""
    fraction, shift = np.frexp(real.astype(np.float64))
    multiplier = np.round(fraction * (1 << 31)).astype(np.int64)
    carry = multiplier == (1 << 31)
    return np.where(carry, multiplier // 2, multiplier), shift.astype(np.int64) + carry


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, halves away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def double_rounding(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT (two roundings)."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    product = (acc << left) * multiplier  # below 2**57 here: int64 holds it exactly
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C++ / truncates to zero
    return rounding_divide_by_pot(high, right)


def single_rounding(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's single-rounding MultiplyByQuantizedMultiplier: one 64-bit product, one shift."""
    total_shift = 31 - shift
    return (acc * multiplier + (np.int64(1) << (total_shift - 1))) >> total_shift


@dataclass
class Layer:
    """One FULLY_CONNECTED op's constants, read from the file."""

    input_index: int
    output_index: int
    weights: np.ndarray  # int64 [out, in]
    bias: np.ndarray  # int64 [out]
    input_zero_point: int
    output_zero_point: int
    real_scale: np.ndarray  # input scale * weight scale(s) / output scale, per output channel
    low: int  # the fused activation's clamp, quantized
    high: int

    def outputs(self, x: np.ndarray, requantize) -> np.ndarray:
        acc = (x.reshape(len(x), -1).astype(np.int64) - self.input_zero_point) @ self.weights.T
        multiplier, shift = quantize_multiplier(self.real_scale)
        y = requantize(acc + self.bias, multiplier, shift) + self.output_zero_point
        return np.clip(y, self.low, self.high)


def fully_connected_layers(data: bytes) -> list[Layer]:
    """Every FULLY_CONNECTED op of the file, with its weights from LiteRT's tensors."""
    schema = flatbuffer_schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    activations = enum_names(schema.ActivationFunctionType)
    interpreter = litert_interpreter(data, "reference", 1)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def scales(i: int) -> np.ndarray:
        return details[i]["quantization_parameters"]["scales"].astype(np.float64)

    def zero_point(i: int) -> int:
        return int(details[i]["quantization_parameters"]["zero_points"][0])

    layers = []
    graph = graph_of(data)
    for op, raw in zip(graph.ops, model.subgraphs[0].operators, strict=True):
        if op.name != "FULLY_CONNECTED":
            continue
        x, w, b = op.inputs[:3]
        out = op.outputs[0]
        info = np.iinfo(details[out]["dtype"])
        low, high = info.min, info.max
        activation = activations[raw.builtinOptions.fusedActivationFunction]
        if activation in ("RELU", "RELU6"):
            low = max(low, zero_point(out))
        if activation == "RELU6":
            high = min(high, zero_point(out) + round(6 / scales(out)[0]))
        layers.append(
            Layer(
                x,
                out,
                interpreter.get_tensor(w).astype(np.int64),
                interpreter.get_tensor(b).astype(np.int64),
                zero_point(x),
                zero_point(out),
                scales(x)[0] * scales(w) / scales(out)[0],
                low,
                high,
            )
        )
    return layers


@dataclass
class LayerCheck:
    """One FULLY_CONNECTED layer over all images: where the interpreters differ, and whether
    each one's outputs are exactly its rounding rule applied to its own inputs."""

    output_index: int
    differing: int  # images where TFLM's and LiteRT's outputs of this layer differ
    max_steps: int
    tflm_is_double_rounding: int  # images where TFLM == double rounding of TFLM's input
    litert_is_single_rounding: int  # images where LiteRT == single rounding of its input


def explain_fully_connected(data: bytes, x: np.ndarray) -> tuple[list[LayerCheck], dict]:
    """Per FULLY_CONNECTED layer, the rounding check; and the final layer's outputs (logits)
    and the softmax outputs of both interpreters, for the softmax check."""
    layers = fully_connected_layers(data)
    graph = graph_of(data)
    last = graph.ops[-1].outputs[0]
    indices = sorted({i for layer in layers for i in (layer.input_index, layer.output_index)})
    tflm = tflm_tensors(data, x, [*indices, last])
    litert = litert_tensors(data, x, [*indices, last])
    checks = []
    for layer in layers:
        mine, theirs = tflm[layer.output_index], litert[layer.output_index]
        mine_flat, theirs_flat = mine.reshape(len(x), -1), theirs.reshape(len(x), -1)
        by_double = layer.outputs(tflm[layer.input_index], double_rounding)
        by_single = layer.outputs(litert[layer.input_index], single_rounding)
        checks.append(
            LayerCheck(
                layer.output_index,
                int((mine_flat != theirs_flat).any(axis=1).sum()),
                int(np.abs(mine_flat.astype(np.int32) - theirs_flat).max(initial=0)),
                int((by_double == mine_flat).all(axis=1).sum()),
                int((by_single == theirs_flat).all(axis=1).sum()),
            )
        )
    logits = layers[-1].output_index
    return checks, {
        "tflm_logits": tflm[logits],
        "litert_logits": litert[logits],
        "tflm_out": tflm[last],
        "litert_out": litert[last],
    }


def softmax_disagreements(tensors: dict) -> int:
    """Images whose logits are identical in both interpreters but whose outputs are not."""
    same_logits = (tensors["tflm_logits"] == tensors["litert_logits"]).all(axis=1)
    same_out = (tensors["tflm_out"] == tensors["litert_out"]).all(axis=1)
    return int((same_logits & ~same_out).sum())


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N test images.")
def main(model: Path | None, data_dir: Path | None, limit: int | None) -> None:
    """TFLM vs LiteRT on the MNIST test set, with the rounding explanation."""
    from mnist_edge.runtime.classifier import default_model
    from mnist_edge.trainer.data import load_mnist

    model = model or default_model()
    data = model.read_bytes()
    mnist = load_mnist(data_dir)
    images, labels = mnist.x_test[:limit], mnist.y_test[:limit]
    arena = measure_arena(model).stated
    x = quantized_images(images, tflm_interpreter(data, arena).get_input_details(0))
    start = time.perf_counter()
    tflm = tflm_outputs(data, x, arena)
    tflm_s = time.perf_counter() - start
    click.echo(f"{model}: {len(x)} MNIST test images, TFLM arena {arena} bytes")
    click.echo(f"TFLM: {tflm_s:.2f} s, one invoke per image ({tflm_s / len(x) * 1e6:.0f} us each)")
    click.echo(f"TFLM accuracy {(tflm.argmax(axis=1) == labels).mean():.2%}")
    click.echo("| LiteRT kernels | same digit | identical outputs | max diff (LSB) | accuracy |")
    click.echo("| --- | ---: | ---: | ---: | ---: |")
    for resolver in RESOLVERS:
        start = time.perf_counter()
        result = compare(tflm, litert_outputs(data, x, resolver), labels, resolver)
        seconds = time.perf_counter() - start
        click.echo(
            f"| {resolver} ({RESOLVERS[resolver]}, {seconds:.2f} s batched) | "
            f"{result.same_digit}/{result.images} | {result.identical}/{result.images} "
            f"({result.identical / result.images:.2%}) | {result.max_steps} | "
            f"{result.accuracy:.2%} |"
        )
        for i in result.differing[:10]:
            click.echo(f"    image {i} (label {labels[i]}): differs")
    checks, tensors = explain_fully_connected(data, x)
    for check in checks:
        click.echo(
            f"FULLY_CONNECTED -> tensor {check.output_index}: TFLM vs LiteRT reference differ on "
            f"{check.differing} images (max {check.max_steps} LSB); TFLM = double rounding on "
            f"{check.tflm_is_double_rounding}/{len(x)}, LiteRT = single rounding on "
            f"{check.litert_is_single_rounding}/{len(x)}"
        )
    click.echo(
        f"SOFTMAX: images with identical logits but different outputs: "
        f"{softmax_disagreements(tensors)}"
    )
    differing = np.flatnonzero((tensors["tflm_out"] != tensors["litert_out"]).any(axis=1))
    for i in differing:
        logits = [tensors[key][i].tolist() for key in ("tflm_logits", "litert_logits")]
        outputs = [tensors[key][i].tolist() for key in ("tflm_out", "litert_out")]
        click.echo(f"  image {i}: logits TFLM {logits[0]} vs LiteRT {logits[1]}")
        click.echo(f"  {' ' * len(str(i))}        outputs TFLM {outputs[0]} vs LiteRT {outputs[1]}")


if __name__ == "__main__":
    main()
