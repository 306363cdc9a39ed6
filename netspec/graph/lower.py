"""Lowering: turn a validated spec into a flat graph of nodes.

Each layer entry becomes one node, or, when its ``op`` names a block of the spec,
the nodes of the block's layers. Names are hierarchical: ``repeat: n`` makes
``name.0`` .. ``name.{n-1}`` (``first`` and ``sep`` number them otherwise:
``denselayer1`` ..), and the layers of a block instance live under the instance's
name (``layer2.0.conv1``). A layer reads the previous layer unless it names
its ``inputs``; references are resolved in the scope they were written in (a block's
layers see the block's inputs and each other), once every layer is known, so a
reference may come before the layer it names. A name that refers to a repeated layer
or block means its last instance; a block instance's name means its output.

``when: false`` leaves a layer out; references to it then mean its (first) input, or
the layer named by ``otherwise``, so an optional projection shortcut or an optional
stage needs no rewiring.

Attributes are evaluated (expressions) and validated by the op's own model here, so
every error can point at the value that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from netspec.errors import Location, SpecError, did_you_mean, name_list
from netspec.graph.ir import Graph, Group, Node, instance_notes
from netspec.graph.split import SPLIT, SplitAttrs, split_bounds
from netspec.ops import REGISTRY, Shape, op_names
from netspec.ops.base import Attrs, Op, size
from netspec.ops.input import InputAttrs
from netspec.ops.slice import SliceAttrs
from netspec.passes.init import WrittenRule
from netspec.passes.shapes import node_shape
from netspec.spec.expr import ExprError, ShapeLookup, evaluate, is_expression, variables_in
from netspec.spec.init import parse_initializer, scheme_of
from netspec.spec.load import Spec, resolve_value, validate_model
from netspec.spec.model import BlockDef, LayerEntry

MAX_REPEAT = 100_000
MAX_NODES = 1_000_000
MAX_BLOCK_DEPTH = 50

Path = tuple[Any, ...]


@dataclass(eq=False)
class _Alias:
    """A name that stands for another reference: a block's input (a reference in the
    caller's scope), a block instance (its output) or a layer left out by ``when``."""

    scope: _Scope
    ref: str
    location: Location
    #: "input" for a block's input (its location is the caller's reference)
    hop: str = ""


@dataclass(eq=False)
class _Scope:
    """The names visible to one list of layers: the spec's, or a block instance's."""

    prefix: str  # "" at top level, "layer2.0." in a block instance
    variables: dict[str, Any]
    stack: tuple[str, ...] = ()  # the blocks being instantiated (to refuse recursion)
    callers: tuple[tuple[str, Location], ...] = ()  # (instance, where it is written), outermost first
    trainable: bool = True
    names: dict[str, str | _Alias] = field(default_factory=dict)  # local name -> node name or alias
    skipped: set[str] = field(default_factory=set)  # layers left out by 'when'
    children: dict[str, _Scope] = field(default_factory=dict)  # block instance name -> its scope
    path: Path = ()  # where its layer list is written (to name what is written later)
    building: tuple[str, int] | None = None  # the layer being lowered: its local name and index
    splits: dict[str, int] = field(default_factory=dict)  # split layers and their parts


def _init_of(spec: Spec) -> tuple[str, list[WrittenRule]]:
    """The spec's initialisation scheme and its rules, each located at its initializer."""
    init = spec.model.init
    if isinstance(init, str):
        return init, []
    rules = []
    for kind, table in (("ops", init.ops), ("layers", init.layers)):
        for key, tensors in table.items():
            for tensor, text in tensors.items():
                where = spec.loc(("init", kind, key, tensor))
                try:
                    initializer = parse_initializer(text).evaluated(lambda e: evaluate(e, spec.variables))
                except (ValueError, ExprError) as e:
                    hint = e.hint if isinstance(e, ExprError) else None
                    raise SpecError(f"init: {kind}: {key}: {tensor}: {e}", where, hint=hint) from None
                rules.append(
                    WrittenRule(kind, key, tensor, initializer, where, spec.loc(("init", kind, key), key=True))
                )
    return scheme_of(init), rules


def lower(spec: Spec) -> Graph:
    return _Lowering(spec).run()


class _Lowering:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.graph = Graph(spec.name, spec.path)
        self.graph.description = spec.model.description
        self.graph.init, self.graph.init_written = _init_of(spec)
        self.graph.variables = dict(spec.variables)
        self.validated: dict[tuple[str, Any], Attrs] = {}  # shared attribute models
        self.static_attrs: dict[tuple[int, str], Attrs] = {}  # by id() of entries without expressions, and op
        self.entries: dict[Path, list[LayerEntry]] = {}  # parsed layer lists (a block's, once)
        # nodes whose input references are still written as in the spec, by name
        self.pending: dict[str, tuple[Node, _Scope]] = {}
        #: shapes known while lowering, computed on demand for shape expressions
        self.shapes: dict[str, Shape] = {}
        self.lowered: set[int] = set()  # id() of the entries some node was made from

    def run(self) -> Graph:
        spec, graph = self.spec, self.graph
        self.check_blocks()
        top = _Scope("", dict(spec.variables), path=("layers",))
        for name, dims in spec.model.inputs.items():
            self.add_input(name, dims)
            top.names[name] = name
        prev = graph.inputs[0] if len(graph.inputs) == 1 else None
        self.entries[("layers",)] = entries = [
            _entry(spec, ("layers", i), i, e) for i, e in enumerate(spec.model.layers)
        ]
        self.check_total(entries)
        last = self.add_layers(top, ("layers",), spec.model.layers, prev)

        for node, scope in list(self.pending.values()):
            self.resolve_inputs(node, scope, early=False)
        if spec.model.outputs is None:
            outputs = [self.resolve(top, last, spec.loc(("layers",)), "output")]
        else:
            outputs = [
                self.resolve(top, out, spec.loc(("outputs", k)), "output")
                for k, out in enumerate(spec.model.outputs)
                if not self.left_out(top, out)  # an optional output that is switched off
            ]
            if not outputs:
                raise SpecError(
                    f"every layer named in 'outputs' ({name_list(spec.model.outputs)}) is left out ('when'), "
                    "so the model has no output",
                    spec.loc(("outputs", 0)),
                    hint="keep at least one output switched on",
                )
        graph.outputs = list(dict.fromkeys(outputs))
        self.check_unlowered()
        graph.validate()
        return graph

    def check_unlowered(self) -> None:
        """Check what can be checked of the layers no node was made from (left out by
        'when', or in blocks that no layer uses): their ops and attribute names. Their
        values may depend on variables, so they are not checked."""
        spec = self.spec
        for path in [("layers",), *(("blocks", b, "layers") for b in spec.model.blocks)]:
            entries = self.entries.get(path)
            if entries is None:
                raw = spec.model.blocks[path[1]].layers
                entries = self.entries[path] = [_entry(spec, (*path, i), i, e) for i, e in enumerate(raw)]
            for i, entry in enumerate(entries):
                if id(entry) not in self.lowered and not is_expression(entry.op):
                    self.check_names(path, i, entry)

    def check_names(self, path: Path, i: int, entry: LayerEntry) -> None:
        spec, at = self.spec, (*path, i)
        who = (f"block '{path[1]}': " if path[0] == "blocks" else "") + (
            f"layer '{entry.name}' ({entry.op})" if entry.name else f"layer {i + 1} ({entry.op})"
        )
        op, block = REGISTRY.get(entry.op), spec.model.blocks.get(entry.op)
        given = [((*at, k), k) for k in entry.attrs]
        if block is not None:
            for index, values in (entry.overrides or {}).items():
                given += [((*at, "overrides", index, k), k) for k in values]
            for where, key in given:
                if key not in block.params:
                    raise SpecError(
                        f"{who}: block '{entry.op}' has no parameter '{key}'",
                        spec.loc(where, key=True),
                        hint=did_you_mean(key, block.params) or f"its parameters: {name_list(block.params) or 'none'}",
                    )
            return
        if entry.op == SPLIT:
            fields: list[str] = list(SplitAttrs.model_fields)
        elif op is not None and op.name != "input":
            fields = list(op.Attrs.model_fields)
        else:
            raise self.unknown_op(entry.op, entry.op, at)
        for where, key in given:
            if key not in fields:
                raise SpecError(
                    f"{who}: unknown attribute '{key}'",
                    spec.loc(where, key=True),
                    hint=did_you_mean(key, fields) or f"known attributes: {', '.join(fields)}",
                )

    def unknown_op(self, op: str, written: str, at: Path) -> SpecError:
        spec = self.spec
        known = [n for n in REGISTRY if n != "input"] + [SPLIT, *spec.model.blocks]
        listed = sorted([n for n in op_names() if n != "input"] + [SPLIT]) + list(spec.model.blocks)
        return SpecError(
            f"unknown op '{op}'" + (f" (the value of '{written}')" if written != op else ""),
            spec.loc((*at, "op")),
            hint=did_you_mean(op, known) or "known ops: " + name_list(listed, 40),
        )

    def check_blocks(self) -> None:
        for name, block in self.spec.model.blocks.items():
            if name in REGISTRY or name == SPLIT:
                raise SpecError(
                    f"block '{name}' has the name of an op",
                    self.spec.loc(("blocks", name), key=True),
                    hint="rename the block (ops and blocks share the 'op' key of a layer)",
                )
            for param in block.params:
                if param in LayerEntry.model_fields:
                    raise SpecError(
                        f"block '{name}': parameter '{param}' has the name of a layer key, so it could not be given",
                        self.spec.loc(("blocks", name, "params", param), key=True),
                        hint=f"rename it (a layer's own keys are {', '.join(LayerEntry.model_fields)})",
                    )

    def check_total(self, entries: list[LayerEntry]) -> None:
        """Refuse a spec whose top-level layers alone (a block counted by the nodes it
        surely makes, a lower bound) make too many nodes, before building any of them."""
        total = len(self.graph)
        sizes: dict[str, int] = {}
        for i, entry in enumerate(entries):
            block = entry.op in self.spec.model.blocks
            total += _planned_repeat(self.spec, i, entry) * (self.block_size(entry.op, sizes, ()) if block else 1)
            if total > MAX_NODES:
                who = f"layer '{entry.name}'" if entry.name else f"layer {i + 1}"
                raise SpecError(
                    f"{who}: the spec expands to more than {MAX_NODES:,} layers",
                    self.spec.loc(("layers", i)),
                    layer=entry.name,
                )

    def block_size(self, name: str, sizes: dict[str, int], within: tuple[str, ...]) -> int:
        """The nodes an instance of block ``name`` makes at least: its layers without a
        ``when``, times their repeat where it is a plain number (once where it is an
        expression), nested blocks counted alike (a block that uses itself counts 1:
        the lowering reports it)."""
        if name in sizes or name in within:
            return sizes.get(name, 1)
        total = 0
        for raw in self.spec.model.blocks[name].layers:
            op, repeat = (raw.get("op"), raw.get("repeat", 1)) if isinstance(raw, dict) else (raw, 1)
            if isinstance(raw, dict) and "when" in raw:
                continue  # may be left out
            repeat = repeat if _valid_repeat(repeat) else 1
            if isinstance(op, str) and op in self.spec.model.blocks:
                repeat *= self.block_size(op, sizes, (*within, name))
            total += repeat
        sizes[name] = max(total, 1)
        return sizes[name]

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

    def add_layers(self, scope: _Scope, path: Path, raw: list[Any], prev: str | None) -> str:
        """Lower a list of layer entries in ``scope``; return the local name of the last."""
        entries = self.entries.get(path)
        if entries is None:
            entries = self.entries[path] = [_entry(self.spec, (*path, i), i, e) for i, e in enumerate(raw)]
        taken = {e.name for e in entries if e.name}
        counters: dict[str, int] = {}
        for i, entry in enumerate(entries):
            at = (*path, i)
            if not scope.prefix and entry.name is not None and entry.name[0].isdigit():
                raise SpecError(
                    f"layer name '{entry.name}' starts with a digit, which only names inside blocks may",
                    self.spec.loc((*at, "name")),
                    hint="start it with a letter or '_' (inside a block, '0', '1', ... name layers as torchvision does)",
                    layer=entry.name,
                )
            opname = self.op_of(scope, at, entry)
            name = entry.name or _auto_name(opname, counters, taken)
            scope.building = (name, i)
            prev = self.add_layer(scope, at, entry, opname, name, prev)
        scope.building = None
        assert prev is not None
        return prev

    def op_of(self, scope: _Scope, at: Path, entry: LayerEntry) -> str:
        """The layer's op: as written, or the value of an expression (``op: $act``)."""
        if not is_expression(entry.op):
            return entry.op
        who = f"layer '{scope.prefix}{entry.name}'" if entry.name else f"layer {at[-1] + 1}"
        value = resolve_value(entry.op, scope.variables, self.spec.doc, (*at, "op"), who)
        if not isinstance(value, str):
            raise SpecError(
                f"{who}: 'op' must name an op or a block, but '{entry.op}' is {value!r}",
                self.spec.loc((*at, "op")),
            )
        return value

    def add_layer(self, scope: _Scope, at: Path, entry: LayerEntry, opname: str, name: str, prev: str | None) -> str:
        """Add the nodes of one layer entry (``prev`` is the layer before it); return its name."""
        spec = self.spec
        op, block = REGISTRY.get(opname), spec.model.blocks.get(opname)
        if block is None and opname != SPLIT and (op is None or op.name == "input"):
            error = self.unknown_op(opname, entry.op, at)
            error.notes.extend(spec.set_from_outside(entry.op, scope.variables))
            raise error
        # A name is taken by a layer that is in; one left out by 'when' gives it up to an
        # alternative written later ({name: head, when: $a}, {name: head, when: not $a}).
        taken = name in scope.names and name not in scope.skipped
        kind = f"block {opname}" if block is not None else op.name if op is not None else opname
        who = f"layer '{scope.prefix}{name}' ({kind})"
        loc = spec.loc(at)
        if entry.inputs is not None:
            refs = tuple(entry.inputs)
            locs = tuple(spec.loc((*at, "inputs", k)) for k in range(len(refs)))
        elif prev is not None:
            refs, locs = (prev,), (loc,)
        else:
            raise SpecError(
                f"{who}: has no input: the spec has several inputs, so name the ones it takes",
                loc,
                hint=f"add 'inputs: [{name_list(self.graph.inputs)}]' (or some of them)",
                layer=scope.prefix + name,
            )
        full = scope.prefix + name
        if entry.when is not True and not self.flag(scope, at, entry.when, "when", who, full):
            if taken:
                return name  # left out, and its name is the layer's that is in
            if entry.otherwise is not None:
                refs, locs = (entry.otherwise,), (spec.loc((*at, "otherwise")),)
            scope.names[name] = _Alias(scope, refs[0], locs[0])
            scope.skipped.add(name)
            self.graph.left_out.append(full)
            return name
        if taken:
            first = scope.names[name]
            line = first.location.line if isinstance(first, _Alias) else self.graph[first].location.line
            raise SpecError(
                f"duplicate layer name '{name}' (first used at line {line})",
                spec.loc((*at, "name")),
                hint="layer names must be unique (two may share one where 'when' keeps at most one); rename one",
                layer=full,
            )
        if name in scope.skipped:  # the left-out layer of this name: reading it means reading its input
            alias = scope.names[name]
            assert isinstance(alias, _Alias)
            refs = tuple(alias.ref if r == name else r for r in refs)
            scope.skipped.discard(name)
        self.lowered.add(id(entry))
        trainable = scope.trainable and (
            entry.trainable is True or self.flag(scope, at, entry.trainable, "trainable", who, full)
        )
        repeat = (
            1
            if type(entry.repeat) is int and entry.repeat == 1
            else _repeat(spec, scope.variables, at, entry, who, full, self.lookup(scope))
        )
        if entry.label is not None and (block is not None or op is None):
            raise SpecError(
                f"{who}: a label names one layer, and this is a {'block instance' if block else 'split'}",
                spec.loc((*at, "label"), key=True),
                hint="label the layers inside it" if block else "label the layers that read its parts",
                layer=full,
            )
        if block is not None:
            self.add_block(scope, at, entry, opname, name, block, refs, locs, repeat, trainable)
            return name
        if op is None:  # a split
            self.add_split(scope, at, entry, name, refs, locs, repeat, who, trainable)
            return name
        if entry.overrides is not None:
            raise SpecError(
                f"{who}: 'overrides' sets block parameters, and '{entry.op}' is an op, not a block",
                spec.loc((*at, "overrides"), key=True),
                layer=scope.prefix + name,
            )
        if len(self.graph) + repeat > MAX_NODES:
            raise SpecError(f"{who}: the spec expands to more than {MAX_NODES:,} layers", loc, layer=full)
        attrs = self.attrs(scope, at, entry, op, who, full)
        label = entry.label or ""
        copies, numbered = self.copy_names(scope, at, entry, name, repeat, who, full)
        grouped = numbered and entry.sep == "."  # the copies live under the name ('conv.0')
        for r, local in enumerate(copies):
            node_name = scope.prefix + local
            scope_name = full if grouped else scope.prefix[:-1]
            node = Node(node_name, op.name, attrs, refs, loc, scope_name, trainable, locs, scope.callers, label)
            self.graph.add(node)
            if r == 0:
                self.pending[node_name] = (node, scope)
            refs, locs = (node_name,), (loc,)  # the next copy reads this one (already a node name)
        if grouped:
            self.graph.groups[full] = Group(op.name, repeat)
        scope.names[name] = refs[0]
        return name

    def copy_names(
        self, scope: _Scope, at: Path, entry: LayerEntry, name: str, repeat: int, who: str, full: str
    ) -> tuple[list[str], bool]:
        """The local names of a layer's copies and whether they are numbered: ``name``
        alone for one copy, else ``name``, ``sep`` and the copy's number counted from
        ``first`` (0 unless given; given, a single copy is numbered too)."""
        spec = self.spec
        if repeat == 1 and entry.first is None:
            if entry.sep != ".":
                raise SpecError(
                    f"{who}: 'sep' joins the names and numbers of copies, and the layer is one copy, unnumbered",
                    spec.loc((*at, "sep"), key=True),
                    hint="add 'repeat' or 'first' (a single copy numbered), or drop 'sep'",
                    layer=full,
                )
            return [name], False
        first = 0
        if entry.first is not None:
            first = resolve_value(entry.first, scope.variables, spec.doc, (*at, "first"), who, full, self.lookup(scope))
            if type(first) is not int or not 0 <= first <= MAX_REPEAT:
                raise SpecError(
                    f"{who}: 'first' (the number of the first copy) must be an integer from 0 to {MAX_REPEAT:,}, "
                    f"got {first!r}",
                    spec.loc((*at, "first")),
                    layer=full,
                )
        return [f"{name}{entry.sep}{first + r}" for r in range(repeat)], True

    def add_split(
        self,
        scope: _Scope,
        at: Path,
        entry: LayerEntry,
        name: str,
        refs: tuple[str, ...],
        locs: tuple[Location, ...],
        repeat: int,
        who: str,
        trainable: bool,
    ) -> None:
        """A split: one ``slice`` node per part, ``name.0``, ``name.1``, ..."""
        spec, full, loc = self.spec, scope.prefix + name, self.spec.loc(at)
        given = {"repeat": repeat != 1, "overrides": entry.overrides is not None}
        given |= {"first": entry.first is not None, "sep": entry.sep != "."}
        for key in (k for k, v in given.items() if v):
            raise SpecError(f"{who}: a split takes no '{key}'", spec.loc((*at, key), key=True), layer=full)
        if len(refs) != 1:
            raise SpecError(f"{who}: a split takes one input, got {len(refs)}", locs[0], layer=full)
        lookup = self.lookup(scope)
        raw = {
            k: resolve_value(v, scope.variables, spec.doc, (*at, k), who, full, lookup) for k, v in entry.attrs.items()
        }
        attrs = validate_model(SplitAttrs, raw, spec.doc, at, "attribute", who + ": ", full)
        source = self.resolve(scope, refs[0], locs[0], f"{who}: takes input", full)
        try:
            channels = self.node_shape(source)[0]
        except ExprError as e:
            raise SpecError(f"{who}: {e.message}", locs[0], hint=e.hint, layer=full) from None
        bounds = split_bounds(attrs, channels, refs[0])
        if isinstance(bounds, str):
            raise SpecError(f"{who}: {bounds}", loc, layer=full)
        for k, (lo, hi) in enumerate(bounds):
            part = SliceAttrs(start=lo, end=hi)
            node = Node(f"{full}.{k}", "slice", part, (source,), loc, full, trainable, locs, scope.callers)
            self.graph.add(node)
        self.graph.groups[full] = Group(SPLIT, len(bounds))
        scope.names[name] = f"{full}.0"
        scope.splits[name] = len(bounds)

    def attrs(self, scope: _Scope, at: Path, entry: LayerEntry, op: Op, who: str, full: str) -> Attrs:
        """The layer's validated attributes. Attribute models are frozen, so layers with
        equal attributes share one instance (a deep network repeats a few attribute
        sets many times), and a layer without expressions is validated once however
        many block instances contain it."""
        attrs = self.static_attrs.get((id(entry), op.name))
        if attrs is not None:
            return attrs
        spec, raw = self.spec, entry.attrs
        dynamic = any(is_expression(v) or isinstance(v, (list, dict)) for v in raw.values())
        if dynamic:
            lookup = self.lookup(scope)
            raw = {k: resolve_value(v, scope.variables, spec.doc, (*at, k), who, full, lookup) for k, v in raw.items()}
        key = (op.name, _frozen(raw))
        attrs = self.validated.get(key)
        if attrs is None:
            try:
                attrs = validate_model(op.Attrs, raw, spec.doc, at, "attribute", who + ": ", full)
            except SpecError as e:  # a value set from outside is named as well as where it is used
                e.notes.extend(n for v in entry.attrs.values() for n in spec.set_from_outside(v, scope.variables))
                raise
            self.validated[key] = attrs
        if not dynamic:
            self.static_attrs[(id(entry), op.name)] = attrs  # entries live as long as self.entries
        return attrs

    def flag(self, scope: _Scope, at: Path, raw: Any, key: str, who: str, full: str) -> bool:
        """A layer key that is true or false (``when``, ``trainable``), or an expression of it."""
        value = resolve_value(raw, scope.variables, self.spec.doc, (*at, key), who, full, self.lookup(scope))
        if not isinstance(value, bool):
            raise SpecError(
                f"{who}: '{key}' must be true or false, got {value!r} (not a boolean)",
                self.spec.loc((*at, key)),
                hint="a condition such as '$stride == 2' or a boolean variable",
                layer=full,
            )
        return value

    def add_block(
        self,
        scope: _Scope,
        at: Path,
        entry: LayerEntry,
        bname: str,
        name: str,
        block: BlockDef,
        refs: tuple[str, ...],
        locs: tuple[Location, ...],
        repeat: int,
        trainable: bool,
    ) -> None:
        spec, full = self.spec, scope.prefix + name
        who, loc = f"layer '{full}' (block {bname})", spec.loc(at)
        if bname in scope.stack:
            chain = " -> ".join([*scope.stack[scope.stack.index(bname) :], bname])
            raise SpecError(
                f"{who}: block '{bname}' contains itself ({chain})",
                spec.loc((*at, "op")),
                hint="a block may use other blocks, but not itself, directly or through others",
                layer=full,
            )
        if len(scope.stack) >= MAX_BLOCK_DEPTH:
            raise SpecError(f"{who}: blocks are nested more than {MAX_BLOCK_DEPTH} deep", loc, layer=full)
        if len(refs) != len(block.inputs):
            raise SpecError(
                f"{who}: the block takes {len(block.inputs)} input(s) ({name_list(block.inputs)}), got {len(refs)}",
                spec.loc((*at, "inputs")) if entry.inputs is not None else loc,
                layer=full,
            )
        if repeat > 1 and len(block.inputs) > 1:
            raise SpecError(
                f"{who}: only a block with one input can be repeated (each instance reads the one before)",
                spec.loc((*at, "repeat")),
                layer=full,
            )
        lookup = self.lookup(scope)
        given = {
            k: (resolve_value(v, scope.variables, spec.doc, (*at, k), who, full, lookup), (*at, k))
            for k, v in entry.attrs.items()
        }
        self.check_params(block, bname, given, who, full)
        per_instance = self.overrides(scope, at, entry, bname, block, repeat, who, full)
        copies, numbered = self.copy_names(scope, at, entry, name, repeat, who, full)
        outputs: list[str] = []
        for r, inst in enumerate(copies):
            values = {**given, **per_instance.get(r, {})}
            inner = _Scope(
                f"{scope.prefix}{inst}.",
                {},
                (*scope.stack, bname),
                (*scope.callers, (scope.prefix + inst, loc)),
                trainable,
                path=("blocks", bname, "layers"),
            )
            for k, arg in enumerate(block.inputs):
                inner.names[arg] = (
                    _Alias(scope, refs[k], locs[k], "input") if r == 0 else _Alias(scope, outputs[-1], loc, "input")
                )
            # the parameters' defaults may read the block's inputs (``channels(x)``)
            inner.variables = self.block_variables(
                inner, block, bname, values, f"layer '{scope.prefix}{inst}' (block {bname})", loc
            )
            try:
                last = self.add_layers(inner, ("blocks", bname, "layers"), block.layers, block.inputs[0])
            except SpecError as e:
                e.notes.extend(instance_notes(inner.callers[-1:]))
                raise
            out = block.output or last
            if block.output is not None and out not in inner.names and inner.prefix + out not in self.graph.nodes:
                raise SpecError(
                    f"block '{bname}': output '{out}' is not one of its layers",
                    spec.loc(("blocks", bname, "output")),
                    hint=did_you_mean(out, inner.names),
                )
            scope.names[inst] = _Alias(inner, out, loc)
            scope.children[inst] = inner
            params = tuple((k, inner.variables[k]) for k in block.params)
            self.graph.groups[scope.prefix + inst] = Group(bname, 1, params)
            outputs.append(inst)
        if numbered:
            scope.names[name] = scope.names[outputs[-1]]
            if entry.sep == ".":
                self.graph.groups[full] = Group(bname, repeat)

    def check_params(
        self, block: BlockDef, bname: str, given: dict[str, tuple[Any, Path]], who: str, full: str
    ) -> None:
        for key, (_, path) in given.items():
            if key not in block.params:
                known = name_list(block.params) or "none"
                raise SpecError(
                    f"{who}: block '{bname}' has no parameter '{key}'",
                    self.spec.loc(path, key=True),
                    hint=did_you_mean(key, block.params) or f"its parameters: {known}",
                    layer=full,
                )

    def overrides(
        self, scope: _Scope, at: Path, entry: LayerEntry, bname: str, block: BlockDef, repeat: int, who: str, full: str
    ) -> dict[int, dict[str, tuple[Any, Path]]]:
        """Block parameters given for single instances (``overrides: {0: {stride: 2}}``)."""
        result: dict[int, dict[str, tuple[Any, Path]]] = {}
        for index, values in (entry.overrides or {}).items():
            path = (*at, "overrides", index)
            if not -repeat <= index < repeat:
                raise SpecError(
                    f"{who}: 'overrides' names instance {index}, but there are {repeat} (0 to {repeat - 1})",
                    self.spec.loc(path, key=True),
                    layer=full,
                )
            lookup = self.lookup(scope)
            given = {
                k: (resolve_value(v, scope.variables, self.spec.doc, (*path, k), who, full, lookup), (*path, k))
                for k, v in values.items()
            }
            self.check_params(block, bname, given, who, full)
            instance = result.setdefault(index % repeat, {})
            for key in given:
                if key in instance:
                    raise SpecError(
                        f"{who}: 'overrides' sets '{key}' of instance {index % repeat} twice",
                        self.spec.loc(path, key=True),
                        hint="give each instance's parameters under one index",
                        layer=full,
                    )
            instance.update(given)
        return result

    def block_variables(
        self,
        scope: _Scope,
        block: BlockDef,
        bname: str,
        given: dict[str, tuple[Any, Path]],
        who: str,
        loc: Location,
    ) -> dict[str, Any]:
        """The variables inside one instance: the spec's, then the block's parameters
        (given, or their defaults, which may use the parameters before them)."""
        variables = dict(self.spec.variables)
        done: set[str] = set()
        for pname, default in block.params.items():
            done.add(pname)
            later = (
                [v for v in variables_in(default) if v in block.params and v not in done]
                if is_expression(default)
                else []
            )
            if pname in given:
                variables[pname] = given[pname][0]
            elif later:
                raise SpecError(
                    f"{who}: block parameter '{pname}' uses "
                    + ("itself" if later[0] == pname else f"'${later[0]}', which is defined after it"),
                    self.spec.loc(("blocks", bname, "params", pname)),
                    hint="a parameter's default may use only the parameters written before it",
                    layer=who.split("'")[1],
                )
            elif default is None:
                raise SpecError(
                    f"{who}: missing block parameter '{pname}'",
                    loc,
                    hint=f"block '{bname}' needs it: add '{pname}: ...' to the layer",
                    layer=who.split("'")[1],
                )
            else:
                path = ("blocks", bname, "params", pname)
                variables[pname] = resolve_value(default, variables, self.spec.doc, path, who, None, self.lookup(scope))
        return variables

    @staticmethod
    def find(scope: _Scope, ref: str) -> tuple[_Scope, str]:
        """The scope a dotted reference into a block instance (``layer2.0.conv1``) lives
        in, and the local name there."""
        while ref not in scope.names and "." in ref:
            parts = ref.split(".")
            for k in range(len(parts) - 1, 0, -1):
                child = scope.children.get(".".join(parts[:k]))
                if child is not None:
                    scope, ref = child, ".".join(parts[k:])
                    break
            else:
                break
        return scope, ref

    def left_out(self, scope: _Scope, ref: str) -> bool:
        inner, local = self.find(scope, ref)
        return local in inner.skipped

    def follow(
        self, scope: _Scope, ref: str, loc: Location
    ) -> tuple[str | None, _Scope, str, Location, Location | None]:
        """Follow a reference written in ``scope`` through aliases: the node it names
        (None where the name is not defined, yet or at all), the scope and local name
        it ended at, the location of the last reference, and that of the last block
        input passed through (where the reference crosses into the caller)."""
        seen: set[tuple[int, str]] = set()
        via: Location | None = None
        while True:
            scope, ref = self.find(scope, ref)
            if ref in scope.splits:
                n = scope.splits[ref]
                raise SpecError(
                    f"'{ref}' is a split into {n} parts, not one tensor",
                    loc,
                    hint=f"name one of its parts: '{ref}.0' .. '{ref}.{n - 1}'",
                    notes=instance_notes(scope.callers),
                )
            target = scope.names.get(ref)
            if isinstance(target, str):
                return target, scope, ref, loc, via
            if target is None:
                base, dot, part = ref.rpartition(".")
                if dot and part.isdigit() and base in scope.skipped:
                    ref = base  # a part of a left-out split, or a copy of a left-out repeat: as the layer
                    continue
                found = scope.prefix + ref  # a repeated layer's copy ('conv.1') or a split's part ('s.0')
                return (found if found in self.graph.nodes else None), scope, ref, loc, via
            if (id(scope), ref) in seen:
                raise SpecError(f"'{ref}' is left out ('when') and refers to itself", loc, layer=scope.prefix + ref)
            seen.add((id(scope), ref))
            if target.hop == "input":
                via = target.location
            scope, ref, loc = target.scope, target.ref, target.location

    def resolve(self, scope: _Scope, ref: str, loc: Location, what: str, layer: str | None = None) -> str:
        """The node a reference written in ``scope`` names (following aliases)."""
        node, where, local, at, _ = self.follow(scope, ref, loc)
        if node is not None:
            return node
        hint = did_you_mean(local, where.names)
        if hint is None and where is scope and scope.callers:
            hint = "a block sees only its inputs and its own layers: pass the layer to it as an input"
        raise SpecError(
            f"{what} '{local}', which is not defined" if what != "output" else f"output '{local}' is not a layer",
            at,
            hint=hint,
            layer=layer,
            notes=instance_notes(where.callers),
        )

    def resolve_inputs(self, node: Node, scope: _Scope, *, early: bool) -> None:
        """Make a node's written input references node names; ``early``: while lowering
        (for a shape), where a name not defined yet may be written later."""
        del self.pending[node.name]
        inputs, locs = [], list(node.input_locations)
        for k, ref in enumerate(node.inputs):
            target, where, local, _, via = self.follow(scope, ref, locs[k])
            if target is None:
                if early:
                    raise self.not_known(where, local)
                self.resolve(scope, ref, locs[k], f"layer '{node.name}' takes input", node.name)
            assert target is not None
            inputs.append(target)
            if via is not None:  # a cycle through block instances is shown at the instance's reference
                locs[k] = via
        node.inputs, node.input_locations = tuple(inputs), tuple(locs)

    # --- shapes while lowering (``channels(x)``) ----------------------------------

    def lookup(self, scope: _Scope) -> Callable[[str], Shape]:
        """What shape functions in expressions written in ``scope`` read."""
        return lambda ref: self.shape_of(scope, ref)

    def shape_of(self, scope: _Scope, ref: str) -> Shape:
        node, where, local, _, _ = self.follow(scope, ref, self.spec.loc(scope.path))
        if node is None:
            raise self.not_known(where, local)
        return self.node_shape(node)

    def node_shape(self, name: str) -> Shape:
        """The shape of a node made already; its inputs' shapes first (depth first,
        without recursion: a chain may be a million layers long)."""
        shapes = self.shapes
        if name in shapes:
            return shapes[name]
        stack, on_stack = [name], {name}
        while stack:
            node = self.graph[stack[-1]]
            pending = self.pending.get(node.name)
            if pending is not None:
                self.resolve_inputs(node, pending[1], early=True)
            todo = next((ref for ref in node.inputs if ref not in shapes), None)
            if todo is not None:
                if todo in on_stack:
                    cycle = [*stack[stack.index(todo) :], todo]
                    raise ExprError("the layers form a cycle: " + " -> ".join(reversed(cycle)))
                stack.append(todo)
                on_stack.add(todo)
                continue
            shapes[node.name] = node_shape(node, [shapes[ref] for ref in node.inputs])
            stack.pop()
            on_stack.discard(node.name)
        return shapes[name]

    def not_known(self, scope: _Scope, local: str) -> ExprError:
        """Why the shape of ``local`` (in ``scope``) is not known: written later, in a
        cycle through a forward reference, or not a name at all."""
        entries = self.entries.get(scope.path, [])
        written = {e.name: i for i, e in enumerate(entries) if e.name}
        if local not in written or scope.building is None:
            return ExprError(
                f"'{local}' is not a layer or an input here",
                hint=did_you_mean(local, [*scope.names, *written]) or f"known here: {name_list(scope.names)}",
            )
        here, index = scope.building
        if local == here:
            return ExprError(f"'{local}' is the layer being defined: its shape is what this value decides")
        # follow what the later layers read, as written, back to the one being lowered
        came: dict[int, int] = {written[local]: -1}
        todo = [written[local]]
        while todo:
            i = todo.pop()
            entry = entries[i]
            reads = list(entry.inputs) if entry.inputs is not None else [entries[i - 1].name or ""] if i else []
            for ref in reads:
                j = written.get(ref, written.get(ref.split(".")[0]))
                if j is None or j < index or j in came:
                    continue
                came[j] = i
                if j == index:
                    chain = [here]
                    while i != -1:
                        chain.append(entries[i].name or "")
                        i = came[i]
                    return ExprError(
                        f"the shape of '{local}' is not known yet: it is written after '{here}' and depends on it "
                        f"(a cycle through a forward reference: {' -> '.join([here, *reversed(chain)])})",
                        hint="a shape can be read only from layers that do not depend on the reader; "
                        "give the value by hand here",
                    )
                todo.append(j)
        return ExprError(
            f"the shape of '{local}' is not known yet: it is written after '{here}'",
            hint=f"shape functions read layers written before the reader: move '{local}' up, or give the value by hand",
        )


def _entry(spec: Spec, at: Path, i: int, raw: Any) -> LayerEntry:
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
    if isinstance(raw.get("inputs"), (str, int)) and not isinstance(raw.get("inputs"), bool):
        raw = {**raw, "inputs": [raw["inputs"]]}  # a single name (a digit name inside a block: 'inputs: 0')
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


def _repeat(
    spec: Spec, variables: dict[str, Any], at: Path, entry: LayerEntry, who: str, name: str, shapes: ShapeLookup
) -> int:
    value = resolve_value(entry.repeat, variables, spec.doc, (*at, "repeat"), who, name, shapes)
    if not _valid_repeat(value):
        raise SpecError(
            f"{who}: 'repeat' must be an integer from 1 to {MAX_REPEAT:,}, got {value!r}",
            spec.loc((*at, "repeat")),
            layer=name,
        )
    return value
