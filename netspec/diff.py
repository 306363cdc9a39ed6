"""What changes between two specs, or two settings of one (``netspec diff A B``): the
layers and blocks added, removed and changed (op, attributes, output shape), with the
params and MACs each change moves, and the totals side by side.

Layers are matched by name, as everything in netspec is: at ``depth`` N a row is a
name prefix of N parts, so ``--depth 1`` compares stages (``layer3: basic x2 -> x6``)
and ``--depth 2`` block instances (``layer3.2`` added).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from netspec.analysis import Analysis, LayerInfo
from netspec.summary import attrs_text

FORMATS = ("table", "json", "markdown")


class Change(NamedTuple):
    status: str  # "added", "removed" or "changed"
    name: str
    a: LayerInfo | None
    b: LayerInfo | None
    what: list[str]  # for "changed": the fields that differ (op, count, attrs, shape, params, macs)

    @property
    def params(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


def _fields(analysis: Analysis, row: LayerInfo) -> dict[str, Any]:
    return {
        "op": row.op,
        "count": row.instances,
        "attrs": attrs_text(analysis, row),
        "shape": list(row.output_shape),
        "params": row.params,
        "macs": row.macs,
    }


def diff(a: Analysis, b: Analysis, depth: int | None = None) -> list[Change]:
    """The rows that differ, in B's order with A's removed rows where they stood."""
    rows_a = {row.name: row for row in a.rows(depth)}
    rows_b = {row.name: row for row in b.rows(depth)}
    changes: list[Change] = []
    pending = list(rows_a)  # A's names not yet placed
    for name, rb in rows_b.items():
        if name in rows_a:  # A's rows before this one that B lacks were removed here
            while pending and pending[0] != name:
                gone = pending.pop(0)
                if gone not in rows_b:
                    changes.append(Change("removed", gone, rows_a[gone], None, []))
            if pending:
                pending.pop(0)
            fa, fb = _fields(a, rows_a[name]), _fields(b, rb)
            what = [k for k in fa if fa[k] != fb[k]]
            if what:
                changes.append(Change("changed", name, rows_a[name], rb, what))
        else:
            changes.append(Change("added", name, None, rb, []))
    changes += [Change("removed", n, rows_a[n], None, []) for n in pending if n not in rows_b]
    return changes


def to_dict(a: Analysis, b: Analysis, depth: int | None = None) -> dict[str, Any]:
    changes = diff(a, b, depth)
    return {
        "a": {
            "name": a.name,
            "path": a.path,
            "inputs": {k: list(v) for k, v in a.inputs.items()},
            "variables": a.graph.variables,
        },
        "b": {
            "name": b.name,
            "path": b.path,
            "inputs": {k: list(v) for k, v in b.inputs.items()},
            "variables": b.graph.variables,
        },
        "changes": [
            {
                "status": c.status,
                "name": c.name,
                "fields": c.what,
                "a": _fields(a, c.a) if c.a else None,
                "b": _fields(b, c.b) if c.b else None,
                "params": c.params,
                "macs": c.macs,
            }
            for c in changes
        ],
        "totals": {
            key: {"a": getattr(a.totals, key), "b": getattr(b.totals, key)}
            for key in ("params", "trainable_params", "buffers", "macs", "flops")
        },
    }


def _op(row: LayerInfo) -> str:
    return f"{row.op} x{row.instances}" if row.instances > 1 else row.op


def _arrow(old: str, new: str) -> str:
    return new if old == new else f"{old} -> {new}"


def _signed(n: int) -> str:
    return f"{n:+,}" if n else ""


def _cells(a: Analysis, b: Analysis, c: Change) -> list[str]:
    ra, rb = c.a, c.b
    mark = {"added": "+", "removed": "-", "changed": "~"}[c.status]
    if ra is not None and rb is not None:
        op = _arrow(_op(ra), _op(rb))
        attrs = _arrow(attrs_text(a, ra), attrs_text(b, rb))
        shape = _arrow(_shape(ra), _shape(rb))
    else:
        row, analysis = (ra, a) if ra is not None else (rb, b)
        assert row is not None
        op, attrs, shape = _op(row), attrs_text(analysis, row), _shape(row)
    return [mark, c.name, op, attrs, shape, _signed(c.params), _signed(c.macs)]


def _shape(row: LayerInfo) -> str:
    return "[" + ", ".join(map(str, row.output_shape)) + "]"


def _totals(a: Analysis, b: Analysis) -> list[list[str]]:
    rows = [["", a.name, b.name, "change"]]
    for label, key in (("Params", "params"), ("Buffers", "buffers"), ("MACs", "macs"), ("FLOPs", "flops")):
        va, vb = getattr(a.totals, key), getattr(b.totals, key)
        change = f"{vb - va:+,}" + (f" ({100 * (vb - va) / va:+.1f}%)" if va else "") if vb != va else "="
        rows.append([label, f"{va:,}", f"{vb:,}", change])
    return rows


HEAD = ["", "Layer", "Op", "Attrs", "Output shape", "Params", "MACs"]


def format_diff(a: Analysis, b: Analysis, fmt: str = "table", depth: int | None = None) -> str:
    if fmt == "json":
        return json.dumps(to_dict(a, b, depth), indent=2) + "\n"
    changes = diff(a, b, depth)
    rows = [_cells(a, b, c) for c in changes]
    counts = {s: sum(c.status == s for c in changes) for s in ("added", "removed", "changed")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) if changes else "no layer differs"
    title = f"{a.name} ({a.path}) -> {b.name} ({b.path})"
    varied = _variables(a, b)
    if varied:
        title += f"\nvariables: {varied}"
    if a.inputs != b.inputs:  # still compared layer by layer, by name
        title += "\ninputs differ: " + _inputs(a) + " -> " + _inputs(b)
    if fmt == "markdown":
        out = [f"## {title}", "", summary, ""]
        if rows:
            out += ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * 5 + ["---:"] * 2) + "|"]
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            out.append("")
        totals = _totals(a, b)
        out += ["| " + " | ".join(totals[0]) + " |", "|---|---:|---:|---:|"]
        out += ["| " + " | ".join(r) + " |" for r in totals[1:]]
        return "\n".join(out) + "\n"
    out = [title, summary, ""]
    if rows:
        out += [*_aligned([HEAD, *rows], right={5, 6}, rule=True), ""]
    out += _aligned(_totals(a, b), right={1, 2, 3}, rule=False)
    return "\n".join(out) + "\n"


def _inputs(a: Analysis) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in a.inputs.items())


def _variables(a: Analysis, b: Analysis) -> str:
    """The variables whose values differ: ``width: 1.0 -> 0.5``."""
    va, vb = a.graph.variables, b.graph.variables
    names = [n for n in dict.fromkeys([*va, *vb]) if va.get(n, "-") != vb.get(n, "-")]
    return ", ".join(f"{n}: {va.get(n, '-')} -> {vb.get(n, '-')}" for n in names)


def _aligned(rows: list[list[str]], right: set[int], rule: bool) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines = [line(r) for r in rows]
    if rule:
        lines.insert(1, "  ".join(("-" if head else " ") * w for head, w in zip(rows[0], widths)).rstrip())
    return lines
