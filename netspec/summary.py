"""Formatting an analysis as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netspec.analysis import Analysis, LayerInfo
from netspec.errors import SpecError, did_you_mean

FORMATS = ("table", "json", "csv", "markdown")
#: the layer table's optional columns (``--columns``), in the order they are shown
COLUMNS = ("shape", "attrs", "rf", "params", "macs", "flops", "memory")
DEFAULT_COLUMNS = ("shape", "rf", "params", "macs")
#: bytes per element of the dtypes the memory figures can be given for (``--dtype``)
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


@dataclass(frozen=True)
class View:
    """How a summary is shown: the table's columns, and the batch and dtype of the
    memory figures (the analysis counts float32 at batch 1)."""

    columns: tuple[str, ...] = DEFAULT_COLUMNS
    batch: int = 1
    dtype: str = "float32"

    def __post_init__(self) -> None:
        unknown = [c for c in self.columns if c not in COLUMNS]
        if unknown:
            hint = did_you_mean(unknown[0], COLUMNS) or f"choose from {', '.join(COLUMNS)}"
            raise SpecError(f"--columns: unknown column '{unknown[0]}'", hint=hint)
        if self.dtype not in DTYPES:
            raise SpecError(f"--dtype: unknown dtype '{self.dtype}'", hint=f"choose from {', '.join(DTYPES)}")
        if not 1 <= self.batch <= 2**31 - 1:
            raise SpecError(f"--batch: expected a positive batch size, got {self.batch}")

    def activations(self, n: int) -> int:
        """Bytes of activations counted as float32 at batch 1, in this view."""
        return n * self.batch * DTYPES[self.dtype] // 4

    def weights(self, n: int) -> int:
        return n * DTYPES[self.dtype] // 4


def to_dict(a: Analysis, depth: int | None = None, view: View = View()) -> dict[str, Any]:
    """The stable JSON schema (documented in the README); ``depth`` collapses blocks;
    ``view`` sets the batch and dtype of the memory figures (JSON carries every field)."""
    t = a.totals
    return {
        "name": a.name,
        "inputs": {k: list(v) for k, v in a.inputs.items()},
        "outputs": a.outputs,
        "variables": a.graph.variables,
        "layers": [
            {
                "name": x.name,
                "label": label_of(a, x),
                "op": x.op,
                "inputs": list(x.inputs),
                "output_shape": list(x.output_shape),
                "attrs": attrs_text(a, x),
                "params": x.params,
                "macs": x.macs,
                "flops": x.flops,
                "activation_bytes": view.activations(x.activation_bytes),
                "receptive_field": list(x.receptive_field),
                "effective_stride": list(x.effective_stride),
                "count": x.instances,
                "line": x.line,
            }
            for x in a.rows(depth)
        ],
        "totals": {
            "params": t.params,
            "trainable_params": t.trainable_params,
            "buffers": t.buffers,
            "macs": t.macs,
            "flops": t.flops,
            "param_bytes": view.weights(t.param_bytes),
            "activation_bytes": view.activations(t.activation_bytes),
            "peak_activation_bytes": view.activations(t.peak_activation_bytes),
            "batch": view.batch,
            "dtype": view.dtype,
        },
    }


def format_analysis(a: Analysis, fmt: str = "table", depth: int | None = None, view: View = View()) -> str:
    """``a`` as text; ``depth`` collapses block instances and repeats (see
    ``Analysis.rows``); ``view`` chooses the table's columns and the memory figures'
    batch and dtype."""
    return {"table": _table, "json": _json, "csv": _csv, "markdown": _markdown}[fmt](a, depth, view)


def _json(a: Analysis, depth: int | None, view: View) -> str:
    """A key a line, a layer a line: readable, greppable, and written by the C encoder
    (``indent`` is the pure-Python one, a third of the time for 20,000 layers)."""
    lines = []
    for key, value in to_dict(a, depth, view).items():
        if key == "layers" and value:
            text = "[\n" + ",\n".join("    " + json.dumps(row) for row in value) + "\n  ]"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _csv(a: Analysis, depth: int | None, view: View) -> str:
    """Every field, whatever the columns (a file for other programs)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ("name", "label", "op", "count", "inputs", "output_shape", "attrs", "params", "trainable_params", "buffers", "macs",
         "flops", "activation_bytes", "receptive_field", "effective_stride", "line")
    )  # fmt: skip
    for x in a.rows(depth):
        w.writerow(
            (x.name, label_of(a, x), x.op, x.instances, " ".join(x.inputs), _x(x.output_shape), attrs_text(a, x), x.params,
             x.trainable_params, x.buffers, x.macs, x.flops, view.activations(x.activation_bytes),
             _x(x.receptive_field), _x(x.effective_stride), x.line)
        )  # fmt: skip
    return buf.getvalue()


def label_of(a: Analysis, x: LayerInfo) -> str:
    """The layer's label (``conv5_3``); "" for none, and for a collapsed row."""
    node = a.graph.nodes.get(x.name)
    return node.label if node is not None else ""


def shown_name(a: Analysis, x: LayerInfo) -> str:
    """``features.28 (conv5_3)``: the name, and the label where the spec gives one."""
    label = label_of(a, x)
    return f"{x.name} ({label})" if label else x.name


def _x(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def _square(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else _x(pair)


def _shape(s: tuple[int, ...]) -> str:
    return "[N, " + ", ".join(map(str, s)) + "]"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole and part else ""


#: window attributes as the diagram labels write them: k3 s2 p1 d2 g32 (defaults left out)
_SHORT = (("kernel", "k", None), ("stride", "s", (1, 1)), ("padding", "p", (0, 0)), ("dilation", "d", (1, 1)))


def attrs_text(a: Analysis, row: LayerInfo) -> str:
    """The layer's window attributes in short (``k3 s2 p1``); "" for a collapsed row."""
    node = a.graph.nodes.get(row.name)
    if node is None:
        return ""
    # the validated values by name (pydantic keeps them in __dict__; getattr of an
    # attribute an op lacks goes through pydantic's slow __getattr__)
    attrs, parts = vars(node.attrs), []
    for field, short, default in _SHORT:
        value = attrs.get(field, default)
        if field == "stride" and value is None:
            value = attrs["kernel"]  # pooling: the stride defaults to the kernel
        if isinstance(value, str):  # padding 'same' or 'valid'
            parts.append(value)
        elif value is not None and value != default:
            parts.append(f"{short}{_square(value) if isinstance(value, tuple) else value}")
    groups = attrs.get("groups", 1)
    if groups != 1:
        parts.append("dw" if groups == "depthwise" else f"g{groups}")
    if attrs.get("ceil_mode", False):
        parts.append("ceil")
    return " ".join(parts)


#: the cells of each optional column: (header, right-aligned, cell of a row)
Cell = Callable[[Analysis, LayerInfo, View], str]
_COLUMN_CELLS: dict[str, list[tuple[str, bool, Cell]]] = {
    "shape": [("Output shape", False, lambda a, x, v: _shape(x.output_shape))],
    "attrs": [("Attrs", False, lambda a, x, v: attrs_text(a, x))],
    "rf": [
        ("RF", True, lambda a, x, v: _square(x.receptive_field)),
        ("Stride", True, lambda a, x, v: _square(x.effective_stride)),
    ],
    "params": [
        ("Params", True, lambda a, x, v: f"{x.params:,}" if x.params else ""),
        ("Params %", True, lambda a, x, v: _share(x.params, a.totals.params)),
    ],
    "macs": [
        ("MACs", True, lambda a, x, v: f"{x.macs:,}" if x.macs else ""),
        ("MACs %", True, lambda a, x, v: _share(x.macs, a.totals.macs)),
    ],
    "flops": [("FLOPs", True, lambda a, x, v: f"{x.flops:,}" if x.flops else "")],
    "memory": [
        ("Memory", True, lambda a, x, v: _bytes(v.activations(x.activation_bytes)) if x.activation_bytes else "")
    ],
}


def _rows(a: Analysis, depth: int | None, view: View) -> tuple[list[str], list[bool], list[list[str]]]:
    cells = [cell for name in COLUMNS if name in view.columns for cell in _COLUMN_CELLS[name]]
    head = ["Layer", "Op", *(h for h, _, _ in cells)]
    right = [False, False, *(r for _, r, _ in cells)]
    rows = [
        [
            shown_name(a, x),
            f"{x.op} x{x.instances}" if x.instances > 1 else x.op,
            *(fn(a, x, view) for _, _, fn in cells),
        ]
        for x in a.rows(depth)
    ]
    return head, right, rows


def _si(n: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _count(n: int) -> str:
    """``61,706 (61.71 K)``; small counts alone (``9``, not ``9 (9)``)."""
    return f"{n:,} ({_si(n)})" if abs(n) >= 1000 else f"{n:,}"


def _bytes(n: int) -> str:
    """Bytes in the unit that reads best: ``512 B``, ``241.04 KiB``, ``527.79 MiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,} B"


def _totals(a: Analysis, view: View) -> list[tuple[str, str]]:
    t = a.totals
    batch = f"batch {view.batch}"
    return [
        ("Params", _count(t.params)),
        ("  trainable", f"{t.trainable_params:,}"),
        ("  frozen", f"{t.params - t.trainable_params:,}"),
        ("Buffers", f"{t.buffers:,}"),
        ("MACs", _count(t.macs)),
        ("FLOPs", _count(t.flops)),
        ("Parameter memory", f"{_bytes(view.weights(t.param_bytes))} ({view.dtype}, with buffers)"),
        ("Activation memory", f"{_bytes(view.activations(t.activation_bytes))} ({view.dtype}, {batch}, all layer outputs)"),
        ("Peak activations", f"{_bytes(view.activations(t.peak_activation_bytes))} (inference, {batch}: outputs freed after their last use)"),
    ]  # fmt: skip


def _table(a: Analysis, depth: int | None, view: View) -> str:
    head, right, rows = _rows(a, depth, view)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    inputs = ", ".join(f"{k} {list(v)}" for k, v in a.inputs.items())
    out = [
        f"{a.name}  ({a.path})  inputs: {inputs}",
        *_variables_line(a),
        "",
        line(head),
        "  ".join("-" * w for w in widths),
    ]
    out += [line(r) for r in rows]
    out.append("")
    totals = _totals(a, view)
    label = max(len(k) for k, _ in totals)
    out += [f"{k + ':':<{label + 1}}  {v}" for k, v in totals]
    return "\n".join(out) + "\n"


def _variables_line(a: Analysis) -> list[str]:
    """The values in force of the spec's variables, as one line (none without any)."""
    values = a.graph.variables
    if not values:
        return []
    shown = ", ".join(f"{k}={_value(v)}" for k, v in values.items())
    return [f"variables: {shown}"]


def _value(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _markdown(a: Analysis, depth: int | None, view: View) -> str:
    head, right, rows = _rows(a, depth, view)

    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = [
        f"## {a.name}",
        "",
        *(line for v in _variables_line(a) for line in (v, "")),
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    out += ["", "| Total | |", "|---|---:|"]
    out += [f"| {k.strip()} | {v} |" for k, v in _totals(a, view)]
    return "\n".join(out) + "\n"
