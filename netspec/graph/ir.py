"""The graph IR: a flat DAG of named nodes.

A node is ``(name, op, attrs, inputs, location, scope)``; ``inputs`` are node names.
The graph keeps its nodes in a topological order (``Graph.validate`` establishes and
checks it), so passes and backends walk ``graph.nodes`` front to back.

The IR is a small class of its own rather than a ``networkx.DiGraph``: importing
networkx alone takes longer than a whole ``netspec summary`` may. ``to_networkx()``
gives the same graph as a DiGraph for analyses that want that library.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from netspec.errors import Location, SpecError, did_you_mean

if TYPE_CHECKING:
    from netspec.passes.init import WrittenRule


@dataclass(slots=True)
class Node:
    name: str
    op: str
    attrs: Any  # the op's pydantic Attrs instance
    inputs: tuple[str, ...]
    location: Location
    scope: str = ""  # the block path (``layer2.1``); "" at top level
    trainable: bool = True
    #: where each input reference was written (for "undefined input" errors)
    input_locations: tuple[Location, ...] = ()
    #: the block instances the node belongs to, outermost first: (instance name, where written)
    callers: tuple[tuple[str, Location], ...] = ()
    label: str = ""  # what people call the layer (``conv5_3``), shown beside its name


class Group(NamedTuple):
    """What a name prefix of several nodes stands for: a block instance (``layer2.0``,
    ``kind`` the block's name), or a repeat (``layer2``, ``conv``) of ``repeat`` copies."""

    kind: str
    repeat: int = 1
    #: a block instance's parameters, as evaluated for it (for diagrams of one block)
    params: tuple[tuple[str, Any], ...] = ()


def instance_notes(callers: tuple[tuple[str, Location], ...]) -> list[str]:
    """Error notes naming the block instances of a layer, innermost first."""
    return [f"in block instance '{name}' (written at {loc})" for name, loc in reversed(callers)]


def _cycle_text(cycle: list[str], ends: int = 3) -> str:
    """``: a -> b -> a``; a long cycle by its first and last layers and its length."""
    if len(cycle) <= 2 * ends + 1:
        return ": " + " -> ".join([*cycle, cycle[0]])
    shown = [*cycle[:ends], f"... {len(cycle) - 2 * ends} more ...", *cycle[-ends:], cycle[0]]
    return f" of {len(cycle):,} layers: " + " -> ".join(shown)


class Graph:
    def __init__(self, name: str, path: str = "<string>") -> None:
        self.name = name
        self.path = path
        self.description = ""
        self.nodes: dict[str, Node] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        #: block instances and repeats by name prefix (for collapsed summaries and clusters)
        self.groups: dict[str, Group] = {}
        #: the weight initialisation the spec asks backends for ('torchvision' or 'pytorch')
        self.init = "torchvision"
        #: the spec's initialisation rules, as written
        self.init_written: list[WrittenRule] = []
        #: the full names of the layers and block instances left out by ``when``
        self.left_out: list[str] = []
        #: the values in force of the spec's variables (overrides and variant applied)
        self.variables: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def add(self, node: Node) -> Node:
        first = self.nodes.get(node.name)
        if first is not None:
            raise SpecError(
                f"duplicate layer name '{node.name}' (first used at line {first.location.line})",
                node.location,
                hint="layer names must be unique; rename one of them",
                layer=node.name,
            )
        self.nodes[node.name] = node
        return node

    def validate(self) -> None:
        """Check that inputs and outputs are defined and that the graph has no cycle,
        and reorder the nodes topologically (stable: written order where possible)."""
        for node in self.nodes.values():
            for k, ref in enumerate(node.inputs):
                if ref not in self.nodes:
                    loc = node.input_locations[k] if k < len(node.input_locations) else node.location
                    raise SpecError(
                        f"layer '{node.name}' takes input '{ref}', which is not defined",
                        loc,
                        hint=did_you_mean(ref, self.nodes),
                        layer=node.name,
                    )
                if ref == node.name:
                    raise SpecError(f"layer '{node.name}' takes itself as input", node.location, layer=node.name)
        for out in self.outputs:
            if out not in self.nodes:
                raise SpecError(
                    f"output '{out}' is not a layer", Location(self.path), hint=did_you_mean(out, self.nodes)
                )
        self._toposort()

    def _toposort(self) -> None:
        seen: set[str] = set()
        for name, node in self.nodes.items():  # usually already in order: check that first
            if not seen.issuperset(node.inputs):
                break
            seen.add(name)
        else:
            return
        indeg = {name: len(set(n.inputs)) for name, n in self.nodes.items()}
        users: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for ref in set(node.inputs):
                users[ref].append(node.name)
        # Kahn's algorithm, taking ready nodes in written order.
        order: list[str] = []
        position = {name: i for i, name in enumerate(self.nodes)}
        ready = [(position[n], n) for n, d in indeg.items() if d == 0]
        heapq.heapify(ready)
        while ready:
            _, name = heapq.heappop(ready)
            order.append(name)
            for user in users[name]:
                indeg[user] -= 1
                if indeg[user] == 0:
                    heapq.heappush(ready, (position[user], user))
        if len(order) != len(self.nodes):
            cycle = self._find_cycle({n for n, d in indeg.items() if d > 0}, position)
            # Start at the layer written first and point at its reference that closes the loop.
            k = min(range(len(cycle)), key=lambda i: position[cycle[i]])
            cycle = cycle[k:] + cycle[:k]
            first = self.nodes[cycle[0]]
            back = first.inputs.index(cycle[-1])
            loc = first.input_locations[back] if back < len(first.input_locations) else first.location
            raise SpecError(
                "the layers form a cycle" + _cycle_text(cycle),
                loc,
                hint="a layer's inputs must come from layers that do not depend on it",
                layer=first.name,
            )
        if order != list(self.nodes):
            self.nodes = {name: self.nodes[name] for name in order}

    def _find_cycle(self, stuck: set[str], position: dict[str, int]) -> list[str]:
        # Every stuck node has a stuck input; follow inputs until a node repeats.
        name = min(stuck, key=position.__getitem__)
        seen: dict[str, int] = {}
        path: list[str] = []
        while name not in seen:
            seen[name] = len(path)
            path.append(name)
            name = next(ref for ref in self.nodes[name].inputs if ref in stuck)
        return list(reversed(path[seen[name] :]))

    def last_use(self) -> dict[str, int]:
        """The position (in node order) of the last node that reads each value; a graph
        output is read at the end (``len(self)``); a value nobody reads is absent. The
        memory pass and the code generator free each value after this point."""
        last: dict[str, int] = {}
        for i, node in enumerate(self.nodes.values()):
            for ref in node.inputs:
                last[ref] = i
        last.update(dict.fromkeys(self.outputs, len(self.nodes)))
        return last

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.DiGraph`` (nodes carry ``node``; edges point from
        input to consumer)."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for node in self.nodes.values():
            g.add_node(node.name, node=node)
            for ref in node.inputs:
                g.add_edge(ref, node.name)
        return g
