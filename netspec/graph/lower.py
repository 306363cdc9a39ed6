"""Lowering: turn a validated spec into a flat graph of nodes.

Each layer entry becomes one node, or, when its ``op`` names a block of the spec,
the nodes of the block's layers. Names are hierarchical: ``repeat: n`` makes
``name.0`` .. ``name.{n-1}``, and the layers of a block instance live under the
instance's name (``layer2.0.conv1``). A layer reads the previous layer unless it names
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

from dataclasses import dataclass, field
from typing import Any, TypeGuard

from netspec.errors import Location, SpecError, did_you_mean, name_list
from netspec.graph.ir import Graph, Group, Node, instance_notes
from netspec.ops import REGISTRY, op_names
from netspec.ops.base import Attrs, Op, size
from netspec.ops.input import InputAttrs
from netspec.spec.expr import is_expression, variables_in
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


def lower(spec: Spec) -> Graph:
    return _Lowering(spec).run()


class _Lowering:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.graph = Graph(spec.name, spec.path)
        self.graph.description = spec.model.description
        self.graph.init = spec.model.init
        self.graph.variables = dict(spec.variables)
        self.validated: dict[tuple[str, Any], Attrs] = {}  # shared attribute models
        self.static_attrs: dict[int, Attrs] = {}  # by id() of layer entries without expressions
        self.entries: dict[Path, list[LayerEntry]] = {}  # parsed layer lists (a block's, once)
        # nodes whose first input references are still written as in the spec
        self.pending: list[tuple[Node, _Scope]] = []

    def run(self) -> Graph:
        spec, graph = self.spec, self.graph
        self.check_blocks()
        top = _Scope("", dict(spec.variables))
        for name, dims in spec.model.inputs.items():
            self.add_input(name, dims)
            top.names[name] = name
        prev = graph.inputs[0] if len(graph.inputs) == 1 else None
        self.entries[("layers",)] = entries = [
            _entry(spec, ("layers", i), i, e) for i, e in enumerate(spec.model.layers)
        ]
        self.check_total(entries)
        last = self.add_layers(top, ("layers",), spec.model.layers, prev)

        for node, scope in self.pending:
            node.inputs = tuple(
                self.resolve(scope, ref, node.input_locations[k], f"layer '{node.name}' takes input", node.name)
                for k, ref in enumerate(node.inputs)
            )
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
        graph.validate()
        return graph

    def check_blocks(self) -> None:
        for name, block in self.spec.model.blocks.items():
            if name in REGISTRY:
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
            name = entry.name or _auto_name(entry.op, counters, taken)
            prev = self.add_layer(scope, (*path, i), entry, name, prev)
        assert prev is not None
        return prev

    def add_layer(self, scope: _Scope, at: Path, entry: LayerEntry, name: str, prev: str | None) -> str:
        """Add the nodes of one layer entry (``prev`` is the layer before it); return its name."""
        spec = self.spec
        op, block = REGISTRY.get(entry.op), spec.model.blocks.get(entry.op)
        if block is None and (op is None or op.name == "input"):
            known = [n for n in REGISTRY if n != "input"] + list(spec.model.blocks)
            raise SpecError(
                f"unknown op '{entry.op}'",
                spec.loc((*at, "op")),
                hint=did_you_mean(entry.op, known)
                or "known ops: " + name_list([n for n in op_names() if n != "input"] + list(spec.model.blocks), 40),
            )
        if name in scope.names:
            first = scope.names[name]
            line = first.location.line if isinstance(first, _Alias) else self.graph[first].location.line
            raise SpecError(
                f"duplicate layer name '{name}' (first used at line {line})",
                spec.loc((*at, "name")),
                hint="layer names must be unique; rename one of them",
                layer=scope.prefix + name,
            )
        kind = f"block {entry.op}" if block is not None else op.name  # type: ignore[union-attr]
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
        if entry.when is not True and not self.when(scope, at, entry, who, name):
            if entry.otherwise is not None:
                refs, locs = (entry.otherwise,), (spec.loc((*at, "otherwise")),)
            scope.names[name] = _Alias(scope, refs[0], locs[0])
            scope.skipped.add(name)
            return name
        full = scope.prefix + name
        repeat = (
            1
            if type(entry.repeat) is int and entry.repeat == 1
            else _repeat(spec, scope.variables, at, entry, who, full)
        )
        if block is not None:
            self.add_block(scope, at, entry, name, block, refs, locs, repeat)
            return name
        if entry.overrides is not None:
            raise SpecError(
                f"{who}: 'overrides' sets block parameters, and '{entry.op}' is an op, not a block",
                spec.loc((*at, "overrides"), key=True),
                layer=scope.prefix + name,
            )
        if len(self.graph) + repeat > MAX_NODES:
            raise SpecError(f"{who}: the spec expands to more than {MAX_NODES:,} layers", loc, layer=full)
        attrs = self.attrs(scope, at, entry, op, who, full)  # type: ignore[arg-type]
        trainable = scope.trainable and entry.trainable
        for r in range(repeat):
            node_name = f"{full}.{r}" if repeat > 1 else full
            scope_name = full if repeat > 1 else scope.prefix[:-1]
            node = Node(node_name, op.name, attrs, refs, loc, scope_name, trainable, locs, scope.callers)  # type: ignore[union-attr]
            self.graph.add(node)
            if r == 0:
                self.pending.append((node, scope))
            refs, locs = (node_name,), (loc,)  # the next copy reads this one (already a node name)
        if repeat > 1:
            self.graph.groups[full] = Group(op.name, repeat)  # type: ignore[union-attr]
        scope.names[name] = refs[0]
        return name

    def attrs(self, scope: _Scope, at: Path, entry: LayerEntry, op: Op, who: str, full: str) -> Attrs:
        """The layer's validated attributes. Attribute models are frozen, so layers with
        equal attributes share one instance (a deep network repeats a few attribute
        sets many times), and a layer without expressions is validated once however
        many block instances contain it."""
        attrs = self.static_attrs.get(id(entry))
        if attrs is not None:
            return attrs
        spec, raw = self.spec, entry.attrs
        dynamic = any(is_expression(v) or isinstance(v, (list, dict)) for v in raw.values())
        if dynamic:
            raw = {k: resolve_value(v, scope.variables, spec.doc, (*at, k), who, full) for k, v in raw.items()}
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
            self.static_attrs[id(entry)] = attrs  # entries live as long as self.entries
        return attrs

    def when(self, scope: _Scope, at: Path, entry: LayerEntry, who: str, name: str) -> bool:
        value = resolve_value(entry.when, scope.variables, self.spec.doc, (*at, "when"), who, scope.prefix + name)
        if not isinstance(value, bool):
            raise SpecError(
                f"{who}: 'when' must be true or false, got {value!r}",
                self.spec.loc((*at, "when")),
                hint="a condition such as '$stride == 2' or a boolean variable",
                layer=scope.prefix + name,
            )
        return value

    def add_block(
        self,
        scope: _Scope,
        at: Path,
        entry: LayerEntry,
        name: str,
        block: BlockDef,
        refs: tuple[str, ...],
        locs: tuple[Location, ...],
        repeat: int,
    ) -> None:
        spec, bname, full = self.spec, entry.op, scope.prefix + name
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
        given = {
            k: (resolve_value(v, scope.variables, spec.doc, (*at, k), who, full), (*at, k))
            for k, v in entry.attrs.items()
        }
        self.check_params(block, bname, given, who, full)
        per_instance = self.overrides(scope, at, entry, block, repeat, who, full)
        outputs: list[str] = []
        for r in range(repeat):
            inst = f"{name}.{r}" if repeat > 1 else name
            values = {**given, **per_instance.get(r, {})}
            inner = _Scope(
                f"{scope.prefix}{inst}.",
                self.block_variables(scope, block, bname, values, f"layer '{scope.prefix}{inst}' (block {bname})", loc),
                (*scope.stack, bname),
                (*scope.callers, (scope.prefix + inst, loc)),
                scope.trainable and entry.trainable,
            )
            for k, arg in enumerate(block.inputs):
                inner.names[arg] = _Alias(scope, refs[k], locs[k]) if r == 0 else _Alias(scope, outputs[-1], loc)
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
        if repeat > 1:
            scope.names[name] = scope.names[outputs[-1]]
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
        self, scope: _Scope, at: Path, entry: LayerEntry, block: BlockDef, repeat: int, who: str, full: str
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
            given = {
                k: (resolve_value(v, scope.variables, self.spec.doc, (*path, k), who, full), (*path, k))
                for k, v in values.items()
            }
            self.check_params(block, entry.op, given, who, full)
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
                variables[pname] = resolve_value(default, variables, self.spec.doc, path, who)
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

    def resolve(self, scope: _Scope, ref: str, loc: Location, what: str, layer: str | None = None) -> str:
        """The node a reference written in ``scope`` names (following aliases)."""
        seen: set[tuple[int, str]] = set()
        home = scope
        while True:
            scope, ref = self.find(scope, ref)
            target = scope.names.get(ref)
            if isinstance(target, str):
                return target
            if target is None:
                if scope.prefix + ref in self.graph.nodes:  # a repeated layer's copy: 'conv.1'
                    return scope.prefix + ref
                hint = did_you_mean(ref, scope.names)
                if hint is None and scope is home and home.callers:
                    hint = "a block sees only its inputs and its own layers: pass the layer to it as an input"
                raise SpecError(
                    f"{what} '{ref}', which is not defined" if what != "output" else f"output '{ref}' is not a layer",
                    loc,
                    hint=hint,
                    layer=layer,
                    notes=instance_notes(scope.callers),
                )
            if (id(scope), ref) in seen:
                raise SpecError(f"'{ref}' is left out ('when') and refers to itself", loc, layer=scope.prefix + ref)
            seen.add((id(scope), ref))
            scope, ref, loc = target.scope, target.ref, target.location


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


def _repeat(spec: Spec, variables: dict[str, Any], at: Path, entry: LayerEntry, who: str, name: str) -> int:
    value = resolve_value(entry.repeat, variables, spec.doc, (*at, "repeat"), who, name)
    if not _valid_repeat(value):
        raise SpecError(
            f"{who}: 'repeat' must be an integer from 1 to {MAX_REPEAT:,}, got {value!r}",
            spec.loc((*at, "repeat")),
            layer=name,
        )
    return value
