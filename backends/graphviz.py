"""The Graphviz backend: a spec becomes a diagram (a ``graphviz.Digraph``, DOT source
or an svg/png/pdf file drawn by Graphviz's ``dot``).

* Node ids are the spec's layer names (``layer2.0.conv1``), so the DOT source reads
  like the spec. A node shows its name and a short label from ``LABELS``, a table keyed
  by op (``conv 3x3/2, 64``, ``maxpool 3x3/2``, ``linear 1000``); ``show`` adds its
  params, MACs or output shape. Every edge carries the producer's per-sample shape.
* Blocks are clusters: one ``cluster_<prefix>`` per block instance and per repeat
  (``graph.groups``), nested as the names nest, labelled with the block's name.
* ``depth`` collapses name prefixes as ``netspec summary --depth`` does (the rows of
  ``Analysis.rows``): one node per prefix, marked ``xN`` for repeats, with summed params
  and MACs. Edges are the graph's own edges mapped onto the collapsed nodes, so branches
  (inception), shortcuts (residual) and dense connections stay visible as such.
* Writing a file goes to a temporary file in the target directory, then a rename: a
  failure never leaves a partial diagram behind. ``dot`` draws into a pipe, never into
  the target directory, so a killed ``dot`` leaves nothing either.

Only the Python ``graphviz`` package (``pip install 'netspec[render]'``) is needed for
DOT source; svg, png and pdf need the ``dot`` binary too.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec import plugins
from netspec.analysis import Analysis, LayerInfo
from netspec.backends.common import analysis_of, check_directory, write_atomic
from netspec.errors import Location, SpecError, did_you_mean
from netspec.graph.ir import Node
from netspec.ops import Shape, op_names

FORMATS = ("svg", "png", "pdf", "dot")
SHOW = ("params", "macs", "shapes")
RANKDIRS = ("TB", "LR")
INSTALL_DOT = (
    "rendering to {fmt} needs Graphviz's 'dot' program, which is not installed: "
    "apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS), "
    "or write .dot source instead"
)


# --- labels ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """What a label sees of one node."""

    attrs: Any  # the op's validated attribute model
    out: Shape  # per-sample output shape


def _pair(value: Any) -> str:
    """``3`` for a square pair, ``1x7`` otherwise."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    return str(value)


def _window(value: Any) -> str:
    """A kernel as people write it: ``3x3``, ``1x7``."""
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return f"{value}x{value}"


def _stride(value: Any) -> str:
    return "" if value in (None, (1, 1), 1) else f"/{_pair(value)}"


def _conv2d(c: Ctx) -> str:
    a = c.attrs
    text = f"conv {_window(a.kernel)}{_stride(a.stride)}, {c.out[0]}"
    if a.groups == "depthwise":
        text += ", dw"
    elif a.groups != 1:
        text += f", g{a.groups}"
    if a.dilation != (1, 1):
        text += f", d{_pair(a.dilation)}"
    return text


def _pool(kind: str) -> Callable[[Ctx], str]:
    return lambda c: f"{kind} {_window(c.attrs.kernel)}{_stride(c.attrs.stride or c.attrs.kernel)}"


def _fixed(text: str) -> Callable[[Ctx], str]:
    return lambda c: text


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _sides(value: tuple[int, int, int, int]) -> str:
    """``l0 r1 t0 b1`` as ``r1 b1``: the sides that are not 0."""
    return " ".join(f"{k}{v}" for k, v in zip("lrtb", value) if v) or "0"


LABELS: dict[str, Callable[[Ctx], str]] = {
    "input": lambda c: "input " + "x".join(str(d) for d in c.out),
    "conv2d": _conv2d,
    "linear": lambda c: f"linear {c.attrs.out}",
    "batchnorm": _fixed("batchnorm"),
    "maxpool2d": _pool("maxpool"),
    "avgpool2d": _pool("avgpool"),
    "adaptive_avgpool2d": lambda c: f"adaptive avgpool {_window(c.attrs.size)}",
    "global_avgpool": _fixed("global avgpool"),
    "global_maxpool": _fixed("global maxpool"),
    "flatten": _fixed("flatten"),
    "dropout": lambda c: f"dropout {c.attrs.p:g}",
    "lrn": lambda c: f"lrn {c.attrs.size}",
    "relu": _fixed("relu"),
    "relu6": _fixed("relu6"),
    "leaky_relu": lambda c: f"leaky relu {c.attrs.negative_slope:g}",
    "silu": _fixed("silu"),
    "hardswish": _fixed("hardswish"),
    "hardsigmoid": _fixed("hardsigmoid"),
    "clamp": lambda c: f"clamp [{_bound(c.attrs.min)}, {_bound(c.attrs.max)}]",
    "hardtanh": lambda c: f"hardtanh [{c.attrs.min_val:g}, {c.attrs.max_val:g}]",
    "sigmoid": _fixed("sigmoid"),
    "tanh": _fixed("tanh"),
    "softmax": _fixed("softmax"),
    "gelu": lambda c: "gelu" if c.attrs.approximate == "none" else f"gelu ({c.attrs.approximate})",
    "add": _fixed("add"),
    "multiply": _fixed("multiply"),
    "concat": _fixed("concat"),
    "slice": lambda c: f"slice {c.attrs.start}:{'' if c.attrs.end is None else c.attrs.end}",
    "channel_shuffle": lambda c: f"channel shuffle g{c.attrs.groups}",
    "reshape": lambda c: "reshape " + "x".join(map(str, c.out)),
    "permute": lambda c: f"permute {list(c.attrs.dims)}",
    "pad": lambda c: f"pad {_sides(c.attrs.padding)}" + (f" ={c.attrs.value:g}" if c.attrs.value else ""),
    "crop": lambda c: f"crop {_sides(c.attrs.crop)}",
}

#: fill colours by op, so that the kinds of layer read at a glance
_FILL: dict[str, str] = {
    "input": "#e8e8e8",
    "conv2d": "#cfe2f3",
    "linear": "#d9d2e9",
    "batchnorm": "#fff2cc",
    "lrn": "#fff2cc",
    "maxpool2d": "#d9ead3",
    "avgpool2d": "#d9ead3",
    "adaptive_avgpool2d": "#d9ead3",
    "global_avgpool": "#d9ead3",
    "global_maxpool": "#d9ead3",
    "add": "#f4cccc",
    "multiply": "#f4cccc",
    "concat": "#f4cccc",
}
_BLOCK_FILL = "#fce5cd"  # a collapsed block or repeat


def missing_labels() -> list[str]:
    """Ops (canonical names: nodes carry them, never an alias) that this backend has no label for."""
    return [name for name in op_names() if name not in LABELS]


def op_label(op: str, attrs: Any, out: Shape, node: Node | None = None) -> str:
    """The short text for a layer: ``conv 3x3/2, 64`` (``node``: where a plugin op
    without a label is refused)."""
    label = LABELS.get(op)
    if label is None and node is not None:
        label = plugins.backend_lowering("graphviz", op, node.name, node.location)
    if label is None:
        raise SpecError(f"the graphviz backend has no label for op '{op}'")
    return label(Ctx(attrs, out))


def compact(n: int) -> str:
    """``11.7M``, ``1.82G``, ``9.41k``: three significant digits."""
    for limit, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(n) >= limit:
            value = n / limit
            text = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
            return text + suffix
    return str(n)


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


# --- the diagram -----------------------------------------------------------------


def _show(show: str | Iterable[str] | None) -> frozenset[str]:
    items = [s.strip() for s in show.split(",")] if isinstance(show, str) else list(show or ())
    items = [s for s in items if s]
    for s in items:
        if s not in SHOW:
            raise SpecError(f"cannot show {s!r}: choose from {', '.join(SHOW)}")
    return frozenset(items)


def _key(name: str, depth: int | None) -> str:
    return name if depth is None else ".".join(name.split(".")[:depth])


def _parent(prefix: str, clusters: Container[str]) -> str:
    """The innermost cluster strictly containing ``prefix`` ("" for the top)."""
    parts = prefix.split(".")
    for k in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in clusters:
            return candidate
    return ""


def to_digraph(
    source: Any,
    params: Mapping[str, Any] | None = None,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    show: str | Iterable[str] | None = None,
    block: str | None = None,
    wrap: int | None = None,
) -> Any:
    """The diagram of a spec (a path, a built-in name, a ``Spec`` or an ``Analysis``) as
    a ``graphviz.Digraph``. ``depth`` collapses name prefixes of that many parts into one
    node each (as ``netspec summary --depth``); ``show`` adds ``params``, ``macs`` and
    ``shapes`` (the output shape) to the layer nodes; collapsed nodes always show their
    summed params and MACs. ``block`` draws the body of one block of the spec instead,
    from its first instance (its shapes and parameters), with the tensors it takes
    drawn as its inputs. ``wrap`` lays a long network out in columns of about that
    many nodes (split between top-level layers or blocks, and inside a block only when
    it is taller than a column)."""
    if depth is not None and depth < 1:
        raise SpecError(f"depth must be at least 1, got {depth}")
    if rankdir not in RANKDIRS:
        raise SpecError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if wrap is not None and wrap < 1:
        raise SpecError(f"wrap must be at least 1, got {wrap}")
    shown = _show(show)
    analysis = analysis_of(source, params)
    graphviz = _import_graphviz()
    within = ""
    title = analysis.name + f"\\n{compact(analysis.totals.params)} params, {compact(analysis.totals.macs)} MACs"
    groups: Mapping[str, Any] = analysis.graph.groups
    if block is not None:
        within = _first_instance(analysis, block)
        depth = None if depth is None else within.count(".") + 1 + depth  # counted from the block's body
        groups = {k: v for k, v in groups.items() if k.startswith(within + ".")}
        title = _block_title(analysis, block, within)
    rows = [row for row in analysis.rows(depth) if row.name.startswith(within + ".") or not within]
    dot = _new_digraph(graphviz, analysis.name, title, rankdir)
    _ClusterTree(rows, groups).draw(
        dot,
        "",
        lambda g, row: _add_node(g, row, analysis, shown, within),
        lambda prefix: _cluster_label(analysis, prefix),
    )
    columns = _columns(rows, within, wrap) if wrap else {}
    _add_edges(dot, analysis, depth, {row.name for row in rows}, within, columns)
    return dot


def _columns(rows: list[LayerInfo], within: str, wrap: int) -> dict[str, int]:
    """The column of each drawn row: consecutive units fill a column up to ``wrap``
    rows, and a unit larger than that has its own. A unit is a top-level layer or block
    (below ``within``); a block of more than ``wrap`` rows is split into its own parts,
    as deep as needed (VGG's 31-layer ``features`` into runs of its layers)."""

    def parts(name: str) -> list[str]:
        return (name[len(within) + 1 :] if within else name).split(".")

    def prefixes(name: str) -> list[str]:
        p = parts(name)
        return [".".join(p[:i]) for i in range(1, len(p) + 1)]

    sizes = Counter(prefix for row in rows for prefix in prefixes(row.name))
    column, used, last = 0, 0, None
    columns: dict[str, int] = {}
    for row in rows:
        unit = next(p for p in prefixes(row.name) if sizes[p] <= wrap or p == prefixes(row.name)[-1])
        if unit != last:
            last = unit
            if used and used + sizes[unit] > wrap:
                column, used = column + 1, 0
        columns[row.name] = column
        used += 1
    return columns


def _first_instance(analysis: Analysis, block: str) -> str:
    """The name of the first instance of ``block`` (a block is drawn from an instance:
    its shapes depend on what it is given)."""
    for name, group in analysis.graph.groups.items():
        if group.kind == block and group.repeat == 1:
            return name
    used = sorted({g.kind for g in analysis.graph.groups.values() if g.params or g.repeat == 1})
    raise SpecError(
        f"--block: the spec has no instance of a block '{block}'",
        hint=did_you_mean(block, used) or (f"its blocks in use: {', '.join(used)}" if used else "it uses no block"),
    )


def _block_title(analysis: Analysis, block: str, within: str) -> str:
    group = analysis.graph.groups[within]
    inside = [x for x in analysis.layers if x.name.startswith(within + ".")]
    params = ", ".join(f"{k}={v}" for k, v in group.params)
    counts = f"{compact(sum(x.params for x in inside))} params, {compact(sum(x.macs for x in inside))} MACs"
    return f"block {block} (as {within})" + (f"\\n{params}" if params else "") + f"\\n{counts}"


def _new_digraph(graphviz: Any, name: str, title: str, rankdir: str) -> Any:
    return graphviz.Digraph(
        name=name,
        graph_attr={
            "rankdir": rankdir,
            "label": title,
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "14",
            "nodesep": "0.25",
            "ranksep": "0.3",
            "newrank": "true",
        },
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "8", "color": "#555555", "arrowsize": "0.6"},
    )


class _ClusterTree:
    """The clusters of a drawing (the groups, block instances and repeats, that strictly
    contain a drawn row), nested as the names nest, each holding its rows and nested
    clusters in the order they first appear. Built in one pass over the rows."""

    def __init__(self, rows: list[LayerInfo], groups: Mapping[str, Any]) -> None:
        self.first: dict[str, int] = {}  # row index where each row or cluster first appears
        clusters: dict[str, int] = {}
        for i, row in enumerate(rows):
            self.first[row.name] = i
            parts = row.name.split(".")
            for k in range(1, len(parts)):
                prefix = ".".join(parts[:k])
                if prefix in groups:
                    clusters.setdefault(prefix, i)
        self.first.update(clusters)
        self.items: dict[str, list[tuple[str, LayerInfo | None]]] = {}  # parent -> (name, row or None)
        for row in rows:
            self.items.setdefault(_parent(row.name, clusters), []).append((row.name, row))
        for prefix in clusters:
            self.items.setdefault(_parent(prefix, clusters), []).append((prefix, None))
        for members in self.items.values():
            members.sort(key=lambda item: self.first[item[0]])

    def draw(self, g: Any, prefix: str, node: Callable[[Any, LayerInfo], None], label: Callable[[str], str]) -> None:
        for name, row in self.items.get(prefix, []):
            if row is not None:
                node(g, row)
                continue
            with g.subgraph(name=f"cluster_{name}") as sub:
                sub.attr(label=label(name), style="rounded,dashed", color="#999999", fontsize="10", labeljust="l")
                self.draw(sub, name, node, label)


def _cluster_label(analysis: Analysis, prefix: str) -> str:
    """``layer2: basic x2``; a block named as its one instance (VGG's ``features``) by its name alone."""
    group = analysis.graph.groups[prefix]
    kind = "" if group.kind == prefix.rsplit(".", 1)[-1] else f": {group.kind}"
    return prefix + kind + (f" x{group.repeat}" if group.repeat > 1 else "")


def _add_node(g: Any, row: LayerInfo, analysis: Analysis, shown: frozenset[str], within: str = "") -> None:
    """A drawn row; inside one block's drawing (``within``) named as in the block."""
    graph = analysis.graph
    local = row.name[len(within) + 1 :] if within else row.name
    if row.name not in graph.nodes:  # a collapsed prefix
        mark = f" x{row.instances}" if row.instances > 1 else ""
        lines = [local, f"{row.op}{mark}", f"{compact(row.params)} params, {compact(row.macs)} MACs"]
        if "shapes" in shown:
            lines.append(shape_text(row.output_shape))
        g.node(row.name, "\\n".join(lines), fillcolor=_BLOCK_FILL, penwidth="1.5")
        return
    node = graph.nodes[row.name]
    label = op_label(node.op, node.attrs, row.output_shape, node)
    title = (
        f"{local} ({node.label})".replace("\\", "\\\\") if node.label else local
    )  # a backslash starts an escape in dot
    lines = [title] if label == local else [title, label]  # not "relu / relu"
    extra = []
    if "params" in shown and row.params:
        extra.append(f"{compact(row.params)} params")
    if "macs" in shown and row.macs:
        extra.append(f"{compact(row.macs)} MACs")
    if extra:
        lines.append(", ".join(extra))
    if "shapes" in shown:
        lines.append(shape_text(row.output_shape))
    attrs = {"fillcolor": _FILL.get(node.op, "white")}
    if row.name in graph.inputs:  # a graph input (told by name, not by op)
        attrs["shape"] = "invhouse"
    if row.name in analysis.outputs:
        attrs["peripheries"] = "2"
    g.node(row.name, "\\n".join(lines), **attrs)


def _add_edges(
    dot: Any, analysis: Analysis, depth: int | None, ids: set[str], within: str = "", columns: Mapping[str, int] = {}
) -> None:
    """The graph's own edges, from the real producer, mapped onto the drawn nodes, each
    labelled with the producer's shape (once per pair and shape). Drawing one block
    (``within``), the tensors it takes from outside are drawn as its inputs. An edge
    between two ``columns`` does not rank its ends, so each column starts at the top."""
    shapes = {info.name: info.output_shape for info in analysis.layers}
    seen: set[tuple[str, str, str]] = set()
    for node in analysis.graph:
        if within and not node.name.startswith(within + "."):
            continue
        dst = _key(node.name, depth)
        for ref in node.inputs:
            outside = within and not ref.startswith(within + ".")
            src = ref if outside else _key(ref, depth)
            label = shape_text(shapes[ref])
            if src == dst or (src, dst, label) in seen:
                continue
            if outside and src not in ids:
                ids.add(src)
                dot.node(src, f"{src}\\n{shape_text(shapes[ref])}", shape="invhouse", fillcolor=_FILL["input"])
            seen.add((src, dst, label))
            assert src in ids and dst in ids, (src, dst)
            across = columns.get(src, columns.get(dst)) != columns.get(dst)
            dot.edge(src, dst, label=label, **({"constraint": "false"} if across else {}))


# --- writing ---------------------------------------------------------------------


def _import_graphviz() -> Any:
    try:
        import graphviz  # type: ignore[import-untyped]  # the package ships no type hints
    except ImportError:
        raise SpecError("drawing needs the Python package 'graphviz': pip install 'netspec[render]'") from None
    return graphviz


def dot_program() -> str | None:
    """The path of Graphviz's ``dot`` program, or None (tests replace this)."""
    return shutil.which("dot")


def output_format(out: str | os.PathLike[str]) -> str:
    """The format a file name asks for, checking the name and its directory first."""
    path = Path(out)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    where = Location(os.fspath(out))
    if fmt not in FORMATS:
        raise SpecError(
            f"cannot tell what to draw from the extension {path.suffix!r}: use .svg, .png, .pdf or .dot"
            if path.suffix
            else "cannot tell what to draw from a name without an extension: use .svg, .png, .pdf or .dot",
            where,
        )
    check_directory(out, "diagram")
    return fmt


def render(
    source: Any,
    out: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    show: str | Iterable[str] | None = None,
    block: str | None = None,
    wrap: int | None = None,
) -> Path:
    """Draw a spec into ``out``: ``.dot`` (or ``.gv``) writes DOT source, ``.svg``,
    ``.png`` and ``.pdf`` run Graphviz's ``dot``. Returns the path written."""
    fmt = output_format(out)
    if fmt != "dot" and dot_program() is None:
        raise SpecError(INSTALL_DOT.format(fmt=fmt))
    digraph = to_digraph(source, params, depth=depth, rankdir=rankdir, show=show, block=block, wrap=wrap)
    if fmt == "dot":
        data = digraph.source.encode()
    else:
        graphviz = _import_graphviz()
        try:
            data = digraph.pipe(format=fmt)  # dot's output comes back here; write_atomic writes the file
        except graphviz.ExecutableNotFound:
            raise SpecError(INSTALL_DOT.format(fmt=fmt)) from None
    write_atomic(out, [data], "diagram")
    return Path(out)
