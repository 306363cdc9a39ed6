"""The spec's initialisation rules matched to its layers (``netspec.spec.init``).

Each rule (``ops: {conv2d: {weight: ...}}`` or ``layers: {classifier.1: {weight:
...}}``) becomes the list of layers whose parameter it sets, checked against what the
layers hold (``Op.tensors``): a parameter no matched layer has, a buffer, a tensor the
spec fixes by value, or a fan-based initializer on a tensor of fewer than two
dimensions is a located error, seen by ``netspec check``. Op rules come first, in
written order, then layer rules, so a layer's rule overrides its op's.
"""

from __future__ import annotations

from typing import NamedTuple

from netspec.errors import Location, SpecError, did_you_mean, name_list
from netspec.graph.ir import Graph, Node
from netspec.names import pick, picks
from netspec.ops import REGISTRY, op_names
from netspec.ops.base import Op
from netspec.passes.shapes import ShapeInfo
from netspec.spec.init import Initializer


class WrittenRule(NamedTuple):
    """One rule as the spec writes it: ``kind`` "ops" or "layers", the op or layer
    pattern, the tensor, its initializer, where the initializer is written and where
    the op or pattern is."""

    kind: str
    key: str
    tensor: str
    initializer: Initializer
    location: Location
    key_location: Location


class InitRule(NamedTuple):
    """A rule matched: the layers (all of op ``op``) whose ``tensor`` the initializer
    sets. A layer rule that picks layers of several ops gives one InitRule per op."""

    layers: tuple[str, ...]
    op: str
    tensor: str
    initializer: Initializer
    #: how the spec writes it (``ops: conv2d: weight: zeros``), for the generated source's comments
    written: str
    location: Location


def _fixed(node: Node, tensor: str) -> bool:
    """Whether the spec gives the tensor's values (``weight: [[...]]``)."""
    value = getattr(node.attrs, tensor, None)
    return isinstance(value, (tuple, list))


def _left_out(pattern: str, left_out: list[str]) -> bool:
    """Whether the pattern names layers that ``when`` left out."""
    return any(pattern == n or pattern.startswith(n + ".") or picks(pattern, n) for n in left_out)


def match_init_rules(graph: Graph, shapes: dict[str, ShapeInfo], written: list[WrittenRule]) -> list[InitRule]:
    names = [n.name for n in graph if n.op != "input"]
    order = sorted(written, key=lambda r: r.kind != "ops")  # stable: ops, then layers, each as written
    rules = []
    for rule in order:
        if rule.kind == "ops":
            if rule.key not in REGISTRY:
                hint = did_you_mean(rule.key, op_names()) or f"ops: {name_list(op_names())}"
                raise SpecError(f"init: unknown op '{rule.key}'", rule.key_location, hint=hint)
            if type(REGISTRY[rule.key]).tensors is Op.tensors:
                raise SpecError(f"init: op '{rule.key}' has no parameters to initialise", rule.key_location)
            op = REGISTRY[rule.key].name
            nodes = [n for n in graph if n.op == op]
            what = f"layer of op '{rule.key}'"
        else:
            chosen = {n for n in names if picks(rule.key, n)}
            if not chosen and _left_out(rule.key, graph.left_out):
                continue  # a variant without them (AuxLogits when aux is false)
            chosen = chosen or set(pick(rule.key, names, "init: layers:", rule.key_location))
            nodes = [n for n in graph if n.name in chosen]
            what = f"layer picked by '{rule.key}'"
        held: dict[str, tuple[Node, str, tuple[int, ...]]] = {}  # tensor -> (a layer, its kind, shape)
        targets = []
        for node in nodes:
            info = shapes[node.name]
            for t in REGISTRY[node.op].tensors(node.attrs, list(info.input_shapes), info.shape):
                held.setdefault(t.name, (node, t.kind, t.shape))
                if t.name == rule.tensor and t.kind == "parameter":
                    targets.append((node, t.shape))
        label = f"init: {rule.kind}: {rule.key}: {rule.tensor}"
        if not targets:
            if not nodes:  # an op the model has none of (a variant may leave it out)
                continue
            if rule.tensor in held and held[rule.tensor][1] == "buffer":
                raise SpecError(
                    f"{label}: '{rule.tensor}' is a buffer, not a parameter; initializers set parameters",
                    rule.location,
                    hint="buffers (running statistics, counters) start as the module makes them",
                )
            params = [t for t, (_, kind, _) in held.items() if kind == "parameter"]
            hint = did_you_mean(rule.tensor, params) or (
                f"its parameters: {name_list(params)}" if params else "it has no parameters"
            )
            raise SpecError(f"{label}: no {what} has a parameter '{rule.tensor}'", rule.location, hint=hint)
        for node, shape in targets:
            if _fixed(node, rule.tensor):
                raise SpecError(
                    f"{label}: layer '{node.name}' gives its {rule.tensor}'s values in the spec",
                    rule.location,
                    hint=f"leave '{node.name}' out of the rule, or drop its '{rule.tensor}:' values",
                    layer=node.name,
                )
            if rule.initializer.needs_fans and len(shape) < 2:
                raise SpecError(
                    f"{label}: {rule.initializer.name} reads the fans of a tensor of at least 2 dimensions, "
                    f"and '{node.name}.{rule.tensor}' has shape {list(shape)}",
                    rule.location,
                    hint="use zeros, constant, normal or uniform for biases and norm weights",
                    layer=node.name,
                )
        text = f"{rule.kind}: {rule.key}: {rule.tensor}: {rule.initializer}"
        for op in dict.fromkeys(n.op for n, _ in targets):
            layers = tuple(n.name for n, _ in targets if n.op == op)
            rules.append(InitRule(layers, op, rule.tensor, rule.initializer, text, rule.location))
    return rules
