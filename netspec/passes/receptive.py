"""Receptive field and effective stride of every node, in input pixels.

For an op with a window (kernel k, stride s, dilation d per axis) the field grows by
``(k - 1) * d * j`` and the effective stride (the distance in input pixels between
neighbouring outputs) becomes ``j * s``, where ``j`` is the input's effective stride.
Ops without a window keep positions where they are. Where paths merge (add, concat)
the node takes the largest field and stride over its inputs: the figures describe the
widest path, which is what bounds what an output can see. Inputs broadcast to the
output's size (a channel gate) are left out of the merge.
"""

from __future__ import annotations

from typing import NamedTuple

from netspec.graph.ir import Graph
from netspec.ops import REGISTRY
from netspec.passes.shapes import ShapeInfo


class Receptive(NamedTuple):
    size: tuple[int, int]  # receptive field (h, w) in input pixels
    stride: tuple[int, int]  # effective stride (h, w)


_PIXEL = Receptive((1, 1), (1, 1))


def receptive_fields(graph: Graph, shapes: dict[str, ShapeInfo]) -> dict[str, Receptive]:
    out: dict[str, Receptive] = {}
    for node in graph:
        refs = node.inputs
        if not refs:
            out[node.name] = _PIXEL
            continue
        window = REGISTRY[node.op].window(node.attrs, list(shapes[node.name].input_shapes))
        if len(refs) == 1:
            field = out[refs[0]]
            if window is None:  # most layers: nothing changes
                out[node.name] = field
                continue
            size, jump = field.size, field.stride
        else:
            # A broadcast input (the [C, 1, 1] gate of squeeze-and-excitation) scales
            # features without moving them: only full-size inputs place the output.
            info = shapes[node.name]
            full = [r for r, s in zip(refs, info.input_shapes) if s[1:] == info.shape[1:]] or refs
            ins = [out[ref] for ref in full]
            size = (max(r.size[0] for r in ins), max(r.size[1] for r in ins))
            jump = (max(r.stride[0] for r in ins), max(r.stride[1] for r in ins))
        if window is not None:
            (kh, kw), (sh, sw), (dh, dw) = window
            size = (size[0] + (kh - 1) * dh * jump[0], size[1] + (kw - 1) * dw * jump[1])
            jump = (jump[0] * sh, jump[1] * sw)
        out[node.name] = Receptive(size, jump)
    return out
