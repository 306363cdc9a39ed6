"""Parameter, buffer, MAC and FLOP counts of every node, from the op's rules."""

from __future__ import annotations

from typing import NamedTuple

from netspec.errors import OpError
from netspec.graph.ir import Graph
from netspec.ops import REGISTRY
from netspec.passes.shapes import ShapeInfo, layer_error


class Cost(NamedTuple):
    params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int


def count_costs(graph: Graph, shapes: dict[str, ShapeInfo]) -> dict[str, Cost]:
    out: dict[str, Cost] = {}
    for node in graph:
        op = REGISTRY[node.op]
        info = shapes[node.name]
        ins, shape = list(info.input_shapes), info.shape
        try:
            params = op.params(node.attrs, ins, shape)
            cost = Cost(
                params,
                params if node.trainable else 0,
                op.buffers(node.attrs, ins, shape),
                op.macs(node.attrs, ins, shape),
                op.flops(node.attrs, ins, shape),
            )
        except OpError as e:
            raise layer_error(node, e.message, e.inputs, ins) from None
        out[node.name] = cost
    return out
