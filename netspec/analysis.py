"""The static analysis of a spec: shapes, counts and memory for every layer, and totals."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from netspec.graph.ir import Graph
from netspec.graph.lower import lower
from netspec.names import check_layer_names
from netspec.ops import Shape
from netspec.passes.cost import count_costs
from netspec.passes.init import InitRule, match_init_rules
from netspec.passes.memory import activation_memory
from netspec.passes.receptive import receptive_fields
from netspec.passes.shapes import infer_shapes
from netspec.spec.load import Spec, load_file, load_text
from netspec.zoo import resolve

BYTES_PER_ELEMENT = 4  # float32


class LayerInfo(NamedTuple):
    name: str
    op: str
    inputs: tuple[str, ...]
    output_shape: Shape
    params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    line: int
    scope: str = ""
    receptive_field: tuple[int, int] = (1, 1)  # (h, w) in input pixels
    effective_stride: tuple[int, int] = (1, 1)  # input pixels between neighbouring outputs
    instances: int = 1  # in a collapsed row: the instances of a repeated block or layer


@dataclass(frozen=True, slots=True)
class Totals:
    params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int
    param_bytes: int  # parameters and buffers at float32
    activation_bytes: int  # every layer output kept (as for a backward pass), float32, batch 1
    peak_activation_bytes: int  # most bytes alive at once in inference, freeing after last use


@dataclass
class Analysis:
    name: str
    path: str
    description: str
    graph: Graph
    inputs: dict[str, Shape]
    outputs: list[str]
    layers: list[LayerInfo]
    totals: Totals
    #: the spec's initialisation rules, matched to its layers (after the scheme)
    init_rules: list[InitRule] = field(default_factory=list)

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(name)

    def rows(self, depth: int | None = None) -> list[LayerInfo]:
        """The layers, or with ``depth`` one row per name prefix of that many parts:
        ``depth=1`` gives a row per top-level layer, block or repeat (``layer2``, op
        ``basic``, ``instances`` 4), ``depth=2`` a row per block instance (``layer2.0``), and
        so on. A row sums the params, MACs, FLOPs and memory of its layers and shows the
        output shape and receptive field of its last layer."""
        if depth is None:
            return list(self.layers)
        if depth < 1:
            raise ValueError("depth must be at least 1")
        members: dict[str, list[LayerInfo]] = {}
        for info in self.layers:
            members.setdefault(".".join(info.name.split(".")[:depth]), []).append(info)
        rows = []
        for key, group in members.items():
            if len(group) == 1 and group[0].name == key:
                rows.append(group[0])
                continue
            names = {x.name for x in group}
            kind = self.graph.groups.get(key)
            last = group[-1]
            rows.append(
                LayerInfo(
                    name=key,
                    op=kind.kind if kind else group[0].op,
                    inputs=tuple(dict.fromkeys(r for x in group for r in x.inputs if r not in names)),
                    output_shape=last.output_shape,
                    params=sum(x.params for x in group),
                    trainable_params=sum(x.trainable_params for x in group),
                    buffers=sum(x.buffers for x in group),
                    macs=sum(x.macs for x in group),
                    flops=sum(x.flops for x in group),
                    activation_bytes=sum(x.activation_bytes for x in group),
                    line=group[0].line,
                    scope=key,
                    receptive_field=last.receptive_field,
                    effective_stride=last.effective_stride,
                    instances=kind.repeat if kind else 1,
                )
            )
        return rows


def analyze_graph(graph: Graph) -> Analysis:
    check_layer_names(graph)  # here, not in a backend: `netspec check` refuses them too
    shapes = infer_shapes(graph)
    costs = count_costs(graph, shapes)
    memory = activation_memory(graph, shapes, BYTES_PER_ELEMENT)
    fields = receptive_fields(graph, shapes)
    layers = []
    sources = set(graph.inputs)
    for node in graph:
        c, m, rf = costs[node.name], memory[node.name], fields[node.name]
        act = 0 if node.name in sources else m.output_bytes  # layer outputs only
        layers.append(
            LayerInfo(
                node.name, node.op, node.inputs, shapes[node.name].shape, c.params, c.trainable_params,
                c.buffers, c.macs, c.flops, act, node.location.line, node.scope, rf.size, rf.stride,
            )
        )  # fmt: skip
    params = sum(x.params for x in layers)
    buffers = sum(x.buffers for x in layers)
    totals = Totals(
        params=params,
        trainable_params=sum(x.trainable_params for x in layers),
        buffers=buffers,
        macs=sum(x.macs for x in layers),
        flops=sum(x.flops for x in layers),
        param_bytes=(params + buffers) * BYTES_PER_ELEMENT,
        activation_bytes=sum(x.activation_bytes for x in layers),
        peak_activation_bytes=max((m.live_bytes for m in memory.values()), default=0),
    )
    inputs = {name: shapes[name].shape for name in graph.inputs}
    rules = match_init_rules(graph, shapes, graph.init_written) if graph.init_written else []
    return Analysis(
        graph.name, graph.path, graph.description, graph, inputs, list(graph.outputs), layers, totals, rules
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during an analysis: it builds many small
    objects and frees none until the end, and the collector's repeated passes over them
    took a quarter of the time on a 10,000-layer spec (more, and growing, beyond)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(source: str | os.PathLike[str], params: Mapping[str, Any] | None = None) -> Spec:
    """Load a spec from a file path or a built-in spec name (``"vgg16"``)."""
    return load_file(resolve(source), params)


def analyze(source: str | os.PathLike[str] | Spec, params: Mapping[str, Any] | None = None) -> Analysis:
    """Analyse a spec (a path, a built-in name or a loaded ``Spec``) without running it."""
    with _collector_paused():
        spec = source if isinstance(source, Spec) else load(source, params)
        return analyze_graph(lower(spec))


def analyze_text(text: str, params: Mapping[str, Any] | None = None, path: str = "<string>") -> Analysis:
    """Analyse spec text given as a string."""
    with _collector_paused():
        return analyze_graph(lower(load_text(text, path, params)))
