"""What a `.tflite` file declares, read from its flatbuffer before any interpreter sees it.

The runtime checks a model from these facts before allocating anything: a 2 KB file can
declare tensors of gigabytes, or a WHILE loop that never ends. Only the few fields those
checks need are read (subgraphs, tensors, operators, buffers), with every offset checked
against the file, so a damaged or hostile file gives `FlatbufferError`, never a crash or a
huge allocation. No TensorFlow and no `flatbuffers` package: the format is small enough to
read with `struct` (the TFLite schema, tensorflow/compiler/mlir/lite/schema/schema.fbs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from math import prod

# TensorType -> (name, bytes per element); sub-byte types are counted as one byte.
TENSOR_TYPES = {
    0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
    5: ("string", 1), 6: ("bool", 1), 7: ("int16", 2), 8: ("complex64", 8), 9: ("int8", 1),
    10: ("float64", 8), 11: ("complex128", 16), 12: ("uint64", 8), 13: ("resource", 1),
    14: ("variant", 1), 15: ("uint32", 4), 16: ("uint16", 2), 17: ("int4", 1),
    18: ("bfloat16", 2),
}  # fmt: skip
# Builtin operators that run other subgraphs: control flow, which can loop for ever.
CONTROL_FLOW_OPS = {
    31: "CALL", 118: "IF", 119: "WHILE", 129: "CALL_ONCE", 200: "STABLEHLO_WHILE",
    209: "STABLEHLO_CASE",
}  # fmt: skip


class FlatbufferError(Exception):
    """The bytes are not a readable TFLite flatbuffer (an offset points outside the file...)."""


@dataclass
class Tensor:
    shape: list[int]  # as allocated at first, the dynamic batch as 1
    signature: list[int]  # -1 for a dynamic dimension
    dtype: str
    constant: bool  # its data is in the file (weights), not in the interpreter's arena

    @property
    def nbytes(self) -> int:
        return prod(max(d, 1) for d in self.shape) * _element_size(self.dtype)


@dataclass
class ModelFacts:
    subgraphs: int
    tensors: list[Tensor]  # of the main subgraph
    inputs: list[Tensor]
    outputs: list[Tensor]
    control_flow_ops: list[str]  # names of the control-flow ops in any subgraph

    @property
    def tensor_bytes(self) -> int:
        """Bytes of every tensor of the main subgraph at its declared shapes (weights too)."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def activation_bytes(self) -> int:
        """Bytes of the tensors the interpreter allocates itself (not the weights)."""
        return sum(t.nbytes for t in self.tensors if not t.constant)


def _element_size(dtype: str) -> int:
    return next((size for name, size in TENSOR_TYPES.values() if name == dtype), 1)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def get(self, fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.data):
            raise FlatbufferError(f"offset {pos} lies outside the {len(self.data)}-byte file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int) -> _Table:
        return _Table(self, pos)


class _Table:
    """One flatbuffer table: fields found through its vtable, by slot number."""

    def __init__(self, reader: _Reader, pos: int) -> None:
        self.r, self.pos = reader, pos
        self.vtable = pos - reader.get("<i", pos)
        self.vtable_size = reader.get("<H", self.vtable)

    def _field(self, slot: int) -> int:
        entry = 4 + 2 * slot
        return 0 if entry >= self.vtable_size else self.r.get("<H", self.vtable + entry)

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        offset = self._field(slot)
        return self.r.get(fmt, self.pos + offset) if offset else default

    def _target(self, slot: int) -> int | None:
        offset = self._field(slot)
        if not offset:
            return None
        where = self.pos + offset
        return where + self.r.get("<I", where)

    def child(self, slot: int) -> _Table | None:
        target = self._target(slot)
        return None if target is None else self.r.table(target)

    def _vector(self, slot: int, item_size: int) -> tuple[int, int]:
        target = self._target(slot)
        if target is None:
            return 0, 0
        length = self.r.get("<I", target)
        if target + 4 + length * item_size > len(self.r.data):
            raise FlatbufferError(f"a vector of {length} items runs past the end of the file")
        return target + 4, length

    def ints(self, slot: int) -> list[int] | None:
        if self._target(slot) is None:
            return None
        start, length = self._vector(slot, 4)
        return list(struct.unpack_from(f"<{length}i", self.r.data, start))

    def children(self, slot: int) -> list[_Table]:
        start, length = self._vector(slot, 4)
        return [
            self.r.table(start + 4 * i + self.r.get("<I", start + 4 * i)) for i in range(length)
        ]

    def byte_length(self, slot: int) -> int:
        return self._vector(slot, 1)[1]


def read_model_facts(content: bytes) -> ModelFacts:
    """The facts the runtime's checks need, from a TFLite flatbuffer's bytes."""
    try:
        return _read(content)
    except (struct.error, RecursionError) as error:
        raise FlatbufferError(str(error)) from None


def _read(content: bytes) -> ModelFacts:
    reader = _Reader(content)
    model = reader.table(reader.get("<I", 0))
    codes = [
        max(code.scalar(0, "<b"), code.scalar(3, "<i"))  # deprecated_builtin_code, builtin_code
        for code in model.children(1)
    ]
    # A buffer holds a constant's data inline (data) or after the flatbuffer (offset, size).
    buffers = [b.byte_length(0) > 0 or b.scalar(2, "<Q") > 0 for b in model.children(4)]
    subgraphs = model.children(2)
    if not subgraphs:
        raise FlatbufferError("the file has no subgraph")
    control_flow = []
    for subgraph in subgraphs:
        for op in subgraph.children(3):
            index = op.scalar(0, "<I")
            if index >= len(codes):
                raise FlatbufferError(f"an operator uses opcode {index} of {len(codes)}")
            if codes[index] in CONTROL_FLOW_OPS:
                control_flow.append(CONTROL_FLOW_OPS[codes[index]])

    main = subgraphs[0]
    tensors = []
    for tensor in main.children(0):
        shape = tensor.ints(0) or []
        signature = tensor.ints(7)
        type_code = tensor.scalar(1, "<b")
        buffer = tensor.scalar(2, "<I")
        tensors.append(
            Tensor(
                shape=shape,
                signature=signature if signature is not None else shape,
                dtype=TENSOR_TYPES.get(type_code, (f"type {type_code}", 1))[0],
                constant=0 < buffer < len(buffers) and buffers[buffer],
            )
        )

    def pick(indices: list[int] | None) -> list[Tensor]:
        if any(not 0 <= i < len(tensors) for i in indices or []):
            raise FlatbufferError("a subgraph input or output names a tensor that does not exist")
        return [tensors[i] for i in indices or []]

    return ModelFacts(
        subgraphs=len(subgraphs),
        tensors=tensors,
        inputs=pick(main.ints(1)),
        outputs=pick(main.ints(2)),
        control_flow_ops=sorted(set(control_flow)),
    )
