"""Shape inference: the per-sample output shape of every node."""

from __future__ import annotations

from typing import NamedTuple

from netspec.errors import OpError, SpecError
from netspec.graph.ir import Graph, Node, instance_notes
from netspec.ops import REGISTRY, Shape
from netspec.ops._arith import fmt_shape, numel

MAX_ELEMENTS = 2**40  # per-sample elements of one tensor


class ShapeInfo(NamedTuple):
    shape: Shape
    input_shapes: tuple[Shape, ...]


def infer_shapes(graph: Graph) -> dict[str, ShapeInfo]:
    out: dict[str, ShapeInfo] = {}
    for node in graph:
        ins = [out[ref].shape for ref in node.inputs]
        out[node.name] = ShapeInfo(node_shape(node, ins), tuple(ins))
    return out


def node_shape(node: Node, ins: list[Shape]) -> Shape:
    """One node's output shape from its inputs' (also used while lowering, for shape
    expressions); a located error where the op refuses them."""
    op = REGISTRY[node.op]
    lo, hi = op.arity
    if len(ins) < lo or (hi is not None and len(ins) > hi):
        want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        raise layer_error(node, f"takes {want} input{'s' if want != '1' else ''}, got {len(ins)}")
    try:
        shape = op.shape(node.attrs, ins)
    except OpError as e:
        raise layer_error(node, e.message, e.inputs, ins) from None
    if numel(shape) > MAX_ELEMENTS:
        raise layer_error(node, f"its output {fmt_shape(shape)} has more than 2**40 elements per sample")
    return shape


def layer_error(node: Node, message: str, culprits: tuple[int, ...] = (), ins: list[Shape] | None = None) -> SpecError:
    """A located error about ``node``; ``culprits`` index the inputs to name with their shapes."""
    text = f"layer '{node.name}' ({node.op}): {message}"
    if culprits and ins is not None:
        parts = [f"'{node.inputs[i]}' gives {fmt_shape(ins[i])}" for i in culprits]
        text += ": " + " but ".join(parts)
    elif ins and node.inputs and fmt_shape(ins[0]) not in message:  # name the input unless already shown
        text += f" (input '{node.inputs[0]}' is {fmt_shape(ins[0])})"
    return SpecError(text, node.location, layer=node.name, notes=instance_notes(node.callers))
