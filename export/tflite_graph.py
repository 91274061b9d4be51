"""Read a .tflite file's graph from the flatbuffer itself and check what export promises.

The interpreter is not used for this: it replaces supported ops by a DELEGATE node (XNNPACK)
once tensors are allocated, so the ops it reports are not the ops in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Ops a plain Keras Flatten over a dynamic batch adds; an edge file must not have them.
DYNAMIC_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}
# Ops that only convert between the float I/O and the int8 graph.
IO_CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE"}
INTEGER_TYPES = {"INT8", "INT32"}  # int32: biases and the reshape's shape tensor


@dataclass
class Op:
    name: str  # e.g. "FULLY_CONNECTED"
    input_types: list[str]  # e.g. ["INT8", "INT8", "INT32"]
    output_types: list[str]


@dataclass
class Graph:
    ops: list[Op]
    input_types: list[str]
    output_types: list[str]
    input_shapes: list[list[int]]  # shape signatures, -1 for the batch

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.ops]


def read_graph(path: str | Path) -> Graph:
    """The first subgraph's ops with their tensor types, and its inputs and outputs."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]

    def types(indices) -> list[str]:
        return [flatbuffer_utils.type_to_name(graph.tensors[i].type) for i in indices if i >= 0]

    ops = [
        Op(
            flatbuffer_utils.opcode_to_name(model, op.opcodeIndex),
            types(op.inputs),
            types(op.outputs),
        )
        for op in graph.operators
    ]
    shapes = [
        [int(d) for d in graph.tensors[i].shapeSignature]
        if graph.tensors[i].shapeSignature is not None
        else [int(d) for d in graph.tensors[i].shape]
        for i in graph.inputs
    ]
    return Graph(ops, types(graph.inputs), types(graph.outputs), shapes)


def minimal_graph_problems(graph: Graph) -> list[str]:
    """Why the graph is not the minimal edge graph (empty list: it is)."""
    problems = [f"has a {name} op" for name in graph.op_names if name in DYNAMIC_SHAPE_OPS]
    if any(shape[0] != -1 for shape in graph.input_shapes):
        problems.append(f"input shape {graph.input_shapes[0]} has a fixed batch size")
    return problems


def integer_only_problems(graph: Graph, io_type: str) -> list[str]:
    """Why the int8 graph is not integer-only with `io_type` I/O (empty list: it is).

    `io_type` is "int8", "uint8" or "float32". Every op except QUANTIZE / DEQUANTIZE must
    work on integer tensors only, FULLY_CONNECTED and SOFTMAX on int8 in and out.
    """
    problems = []
    for op in graph.ops:
        if op.name in IO_CONVERSION_OPS:
            continue
        kinds = set(op.input_types) | set(op.output_types)
        if not kinds <= INTEGER_TYPES:
            problems.append(f"{op.name} works on {', '.join(sorted(kinds - INTEGER_TYPES))}")
        if op.name in ("FULLY_CONNECTED", "SOFTMAX") and (
            op.input_types[0] != "INT8" or op.output_types[0] != "INT8"
        ):
            problems.append(f"{op.name} is not int8 in and out")
    for name in ("FULLY_CONNECTED", "SOFTMAX"):
        if name not in graph.op_names:
            problems.append(f"no {name} op")
    want = io_type.upper()
    for side, found in (("input", graph.input_types), ("output", graph.output_types)):
        if found != [want]:
            problems.append(f"{side} is {', '.join(found)}, expected {want}")
    return problems
