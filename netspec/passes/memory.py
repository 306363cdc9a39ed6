"""Activation memory: each node's output size in bytes, and the peak of tensors alive
at once when the graph runs in order and frees each tensor after its last use."""

from __future__ import annotations

from typing import NamedTuple

from netspec.graph.ir import Graph
from netspec.ops._arith import numel
from netspec.passes.shapes import ShapeInfo


class Memory(NamedTuple):
    output_bytes: int
    live_bytes: int  # bytes alive while this node runs (its inputs still held, its output made)


def activation_memory(graph: Graph, shapes: dict[str, ShapeInfo], bytes_per_element: int = 4) -> dict[str, Memory]:
    last_use = graph.last_use()  # graph outputs are read at the end: never freed
    sizes = {name: numel(info.shape) * bytes_per_element for name, info in shapes.items()}
    out: dict[str, Memory] = {}
    live = 0
    for i, node in enumerate(graph):
        name = node.name
        size = sizes[name]
        live += size
        out[name] = Memory(size, live)
        for ref in set(node.inputs) if len(node.inputs) > 1 else node.inputs:
            if last_use[ref] == i:
                live -= sizes[ref]
        if name not in last_use:
            live -= size  # a dead end: freed at once
    return out
