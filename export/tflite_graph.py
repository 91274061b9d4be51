"""Read a .tflite file's graph from the flatbuffer itself and check what export promises.

The interpreter is not used for this: it replaces supported ops by a DELEGATE node (XNNPACK)
once tensors are allocated, so the ops it reports are not the ops in the file. The flatbuffer
schema comes with LiteRT (a runtime dependency), so reading a graph needs no TensorFlow: the
microcontroller bundle reads its op list this way in the base install.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    inputs: list[int] = field(default_factory=list)  # tensor indices, -1 (no tensor) left out
    outputs: list[int] = field(default_factory=list)


@dataclass
class Graph:
    ops: list[Op]
    input_types: list[str]
    output_types: list[str]
    input_shapes: list[list[int]]  # shape signatures, -1 for the batch

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.ops]


def flatbuffer_schema():
    """The generated TFLite flatbuffer schema: LiteRT's copy, else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def enum_names(enum_class) -> dict[int, str]:
    """A generated flatbuffer enum (a class of int constants) as value -> name."""
    return {value: name for name, value in vars(enum_class).items() if isinstance(value, int)}


def read_graph(path: str | Path) -> Graph:
    """The first subgraph's ops with their tensor types, and its inputs and outputs."""
    return graph_of(Path(path).read_bytes())


def graph_of(data: bytes) -> Graph:
    """read_graph for a flatbuffer already in memory."""
    schema = flatbuffer_schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    graph = model.subgraphs[0]
    op_names = enum_names(schema.BuiltinOperator)
    type_names = enum_names(schema.TensorType)

    def types(indices) -> list[str]:
        return [type_names[graph.tensors[i].type] for i in indices if i >= 0]

    def op_name(op) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        # Codes above 127 live in builtinCode only; older files fill deprecatedBuiltinCode.
        return op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]

    ops = [
        Op(
            op_name(op),
            types(op.inputs),
            types(op.outputs),
            [int(i) for i in op.inputs if i >= 0],
            [int(i) for i in op.outputs if i >= 0],
        )
        for op in graph.operators or []
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
