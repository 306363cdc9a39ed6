"""Lowering: turn a validated spec into a flat graph of nodes.

Each layer entry becomes one node (``repeat: n`` makes n chained nodes named
``name.0`` .. ``name.{n-1}`` in the scope ``name``). A layer reads the previous
layer unless it names its ``inputs``; a name that refers to a repeated layer means
its last instance. Attributes are evaluated (expressions) and validated by the op's
own model here, so every error can point at the value that caused it.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from netspec.errors import SpecError, did_you_mean
from netspec.graph.ir import Graph, Node
from netspec.ops import REGISTRY, op_names
from netspec.ops.base import Attrs, size
from netspec.ops.input import InputAttrs
from netspec.spec.load import Spec, resolve_value, validate_model
from netspec.spec.model import LayerEntry

MAX_REPEAT = 100_000
MAX_NODES = 1_000_000


def lower(spec: Spec) -> Graph:
    return _Lowering(spec).run()


class _Lowering:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.graph = Graph(spec.name, spec.path)
        self.graph.description = spec.model.description
        self.counters: dict[str, int] = {}  # op -> last number used in an automatic name
        self.validated: dict[tuple[str, Any], Attrs] = {}  # shared attribute models
        self.last_of: dict[str, str] = {}  # layer name -> its last node (for repeats)
        self.taken: set[str] = set()  # names written in the spec

    def run(self) -> Graph:
        spec, graph = self.spec, self.graph
        for name, dims in spec.model.inputs.items():
            self.add_input(name, dims)
        entries = [_entry(spec, i, raw) for i, raw in enumerate(spec.model.layers)]
        self.check_total(entries)
        self.taken = {e.name for e in entries if e.name} | set(graph.inputs)
        prev = graph.inputs[0] if len(graph.inputs) == 1 else None
        for i, entry in enumerate(entries):
            prev = self.add_layer(i, entry, prev)

        # References may name a repeated layer (meaning its last instance) or come
        # before the layer they name; resolve them now that every layer is known.
        last_of = self.last_of
        for node in graph:
            if any(ref in last_of and last_of[ref] != ref for ref in node.inputs):
                node.inputs = tuple(last_of.get(ref, ref) for ref in node.inputs)
        for k, out in enumerate(spec.model.outputs or ()):
            if last_of.get(out, out) not in graph.nodes:  # checked here, where its location is known
                raise SpecError(
                    f"output '{out}' is not a layer", spec.loc(("outputs", k)), hint=did_you_mean(out, graph.nodes)
                )
        outputs = spec.model.outputs or ([prev] if prev else [])
        graph.outputs = [last_of.get(o, o) for o in outputs]
        graph.validate()
        return graph

    def add_input(self, name: str, dims: list[Any]) -> None:
        spec, path = self.spec, ("inputs", name)
        shape = resolve_value(dims, spec.variables, spec.doc, path)
        if not 1 <= len(shape) <= 8:
            raise SpecError(f"input '{name}': a shape has 1 to 8 axes, got {len(shape)}", spec.loc(path))
        for k, dim in enumerate(shape):
            try:
                size(dim)
            except ValueError as e:
                raise SpecError(f"input '{name}': axis {k}: {e}", spec.loc((*path, k))) from None
        self.graph.add(Node(name, "input", InputAttrs(shape=tuple(shape)), (), spec.loc(path, key=True)))
        self.graph.inputs.append(name)

    def check_total(self, entries: list[LayerEntry]) -> None:
        """Refuse too many nodes before building any, rather than after a million."""
        total = len(self.graph)
        for i, entry in enumerate(entries):
            total += 1 if entry.repeat == 1 else _planned_repeat(self.spec, i, entry)
            if total > MAX_NODES:
                who = f"layer '{entry.name}'" if entry.name else f"layer {i + 1}"
                raise SpecError(
                    f"{who}: the spec expands to more than {MAX_NODES:,} layers",
                    self.spec.loc(("layers", i)),
                    layer=entry.name,
                )

    def add_layer(self, i: int, entry: LayerEntry, prev: str | None) -> str:
        """Add the nodes of layer ``i`` (``prev`` is the node before it); return its last node."""
        spec, graph, at = self.spec, self.graph, ("layers", i)
        op = REGISTRY.get(entry.op)
        if op is None or op.name == "input":
            raise SpecError(
                f"unknown op '{entry.op}'",
                spec.loc((*at, "op")),
                hint=did_you_mean(entry.op, [n for n in REGISTRY if n != "input"])
                or "known ops: " + ", ".join(n for n in op_names() if n != "input"),
            )
        name = entry.name or _auto_name(op.name, self.counters, self.taken)
        # Checked here, not only by Graph.add: a repeated layer's nodes are 'name.0'.., so
        # a second 'name' would not collide there, and this points at the name itself.
        if name in self.last_of or name in graph.inputs:
            first = spec.loc(("inputs", name), key=True) if name in graph.inputs else graph[self.last_of[name]].location
            raise SpecError(
                f"duplicate layer name '{name}' (first used at line {first.line})",
                spec.loc((*at, "name")),
                hint="layer names must be unique; rename one of them",
                layer=name,
            )
        who = f"layer '{name}' ({op.name})"
        raw_attrs = {k: resolve_value(v, spec.variables, spec.doc, (*at, k), who, name) for k, v in entry.attrs.items()}
        # Attribute models are frozen, so layers with equal attributes share one instance
        # (a deep network repeats a few attribute sets many times).
        key = (op.name, _frozen(raw_attrs))
        attrs = self.validated.get(key)
        if attrs is None:
            attrs = validate_model(op.Attrs, raw_attrs, spec.doc, at, "attribute", who + ": ", name)
            self.validated[key] = attrs
        repeat = _repeat(spec, at, entry, who, name)

        loc = spec.loc(at)
        if entry.inputs is not None:
            ins = tuple(entry.inputs)
            locs = tuple(spec.loc((*at, "inputs", k)) for k in range(len(ins)))
        elif prev is not None:
            ins, locs = (prev,), (loc,)
        else:
            raise SpecError(
                f"{who}: has no input: the spec has several inputs, so name the ones it takes",
                loc,
                hint=f"add 'inputs: [{', '.join(graph.inputs)}]' (or some of them)",
                layer=name,
            )
        for r in range(repeat):
            node_name = f"{name}.{r}" if repeat > 1 else name
            graph.add(Node(node_name, op.name, attrs, ins, loc, name if repeat > 1 else "", entry.trainable, locs))
            ins, locs = (node_name,), (loc,)  # the next copy reads this one
        self.last_of[name] = ins[0]
        return ins[0]


def _entry(spec: Spec, i: int, raw: Any) -> LayerEntry:
    at = ("layers", i)
    if isinstance(raw, str):
        raw = {"op": raw}
    if not isinstance(raw, dict):
        raise SpecError(
            f"layer {i + 1} must be a mapping such as {{op: conv2d, out: 64, kernel: 3}} or an op name, "
            f"not {type(raw).__name__}",
            spec.loc(at),
        )
    if "op" not in raw:
        raise SpecError(f"layer {i + 1} has no 'op'", spec.loc(at), hint="every layer names its op: {op: relu}")
    if isinstance(raw.get("inputs"), str):
        raw = {**raw, "inputs": [raw["inputs"]]}
    elif isinstance(raw.get("inputs"), list) and not raw["inputs"]:
        who = f"layer '{raw['name']}'" if isinstance(raw.get("name"), str) else f"layer {i + 1}"
        raise SpecError(
            f"{who}: 'inputs' is empty",
            spec.loc((*at, "inputs")),
            hint="name the layers it takes, or leave 'inputs' out to take the previous layer",
            layer=raw.get("name") if isinstance(raw.get("name"), str) else None,
        )
    return validate_model(LayerEntry, raw, spec.doc, at, "key", f"layer {i + 1}: ")  # type: ignore[no-any-return]


def _frozen(value: Any) -> Any:
    """A hashable key for plain YAML data that tells 1, 1.0 and True apart."""
    if isinstance(value, dict):
        return ("{", tuple((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("[", tuple(_frozen(v) for v in value))
    return (type(value), value)


def _auto_name(op: str, counters: dict[str, int], taken: set[str]) -> str:
    while True:
        counters[op] = counters.get(op, 0) + 1
        name = f"{op}_{counters[op]}"
        if name not in taken:
            taken.add(name)
            return name


def _planned_repeat(spec: Spec, i: int, entry: LayerEntry) -> int:
    """The layer's repeat count if valid, else 1 (the lowering reports it in its turn)."""
    try:
        value = resolve_value(entry.repeat, spec.variables, spec.doc, ("layers", i, "repeat"))
    except SpecError:
        return 1
    return value if _valid_repeat(value) else 1


def _valid_repeat(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_REPEAT


def _repeat(spec: Spec, at: tuple[Any, ...], entry: LayerEntry, who: str, name: str) -> int:
    value = resolve_value(entry.repeat, spec.variables, spec.doc, (*at, "repeat"), who, name)
    if not _valid_repeat(value):
        raise SpecError(
            f"{who}: 'repeat' must be an integer from 1 to {MAX_REPEAT:,}, got {value!r}",
            spec.loc((*at, "repeat")),
            layer=name,
        )
    return value
