"""Formatting an analysis as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from netspec.analysis import Analysis, Totals

FORMATS = ("table", "json", "csv", "markdown")


def to_dict(a: Analysis, depth: int | None = None) -> dict[str, Any]:
    """The stable JSON schema (documented in the README); ``depth`` collapses blocks."""
    t = a.totals
    return {
        "name": a.name,
        "inputs": {k: list(v) for k, v in a.inputs.items()},
        "outputs": a.outputs,
        "variables": a.graph.variables,
        "layers": [
            {
                "name": x.name,
                "op": x.op,
                "inputs": list(x.inputs),
                "output_shape": list(x.output_shape),
                "params": x.params,
                "macs": x.macs,
                "flops": x.flops,
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
            "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes,
            "peak_activation_bytes": t.peak_activation_bytes,
        },
    }


def format_analysis(a: Analysis, fmt: str = "table", depth: int | None = None) -> str:
    """``a`` as text; ``depth`` collapses block instances and repeats (see ``Analysis.rows``)."""
    return {"table": _table, "json": _json, "csv": _csv, "markdown": _markdown}[fmt](a, depth)


def _json(a: Analysis, depth: int | None) -> str:
    return json.dumps(to_dict(a, depth), indent=2) + "\n"


def _csv(a: Analysis, depth: int | None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ("name", "op", "count", "inputs", "output_shape", "params", "trainable_params", "buffers", "macs", "flops",
         "receptive_field", "effective_stride", "line")
    )  # fmt: skip
    for x in a.rows(depth):
        w.writerow(
            (x.name, x.op, x.instances, " ".join(x.inputs), _x(x.output_shape), x.params, x.trainable_params, x.buffers,
             x.macs, x.flops, _x(x.receptive_field), _x(x.effective_stride), x.line)
        )  # fmt: skip
    return buf.getvalue()


def _x(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def _square(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else _x(pair)


def _shape(s: tuple[int, ...]) -> str:
    return "[N, " + ", ".join(map(str, s)) + "]"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole and part else ""


def _rows(a: Analysis, depth: int | None) -> tuple[list[str], list[list[str]]]:
    t = a.totals
    head = ["Layer", "Op", "Output shape", "RF", "Stride", "Params", "Params %", "MACs", "MACs %"]
    rows = [
        [
            x.name,
            f"{x.op} x{x.instances}" if x.instances > 1 else x.op,
            _shape(x.output_shape),
            _square(x.receptive_field),
            _square(x.effective_stride),
            f"{x.params:,}" if x.params else "",
            _share(x.params, t.params),
            f"{x.macs:,}" if x.macs else "",
            _share(x.macs, t.macs),
        ]
        for x in a.rows(depth)
    ]
    return head, rows


def _si(n: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def _totals(t: Totals) -> list[tuple[str, str]]:
    return [
        ("Params", f"{t.params:,} ({_si(t.params)})"),
        ("  trainable", f"{t.trainable_params:,}"),
        ("  frozen", f"{t.params - t.trainable_params:,}"),
        ("Buffers", f"{t.buffers:,}"),
        ("MACs", f"{t.macs:,} ({_si(t.macs)})"),
        ("FLOPs", f"{t.flops:,} ({_si(t.flops)})"),
        ("Parameter memory", f"{_mib(t.param_bytes)} (float32, with buffers)"),
        ("Activation memory", f"{_mib(t.activation_bytes)} (float32, batch 1, all layer outputs)"),
        ("  peak at inference", _mib(t.peak_activation_bytes)),
    ]


def _table(a: Analysis, depth: int | None) -> str:
    head, rows = _rows(a, depth)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = set(range(3, len(head)))

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

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
    totals = _totals(a.totals)
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


def _markdown(a: Analysis, depth: int | None) -> str:
    head, rows = _rows(a, depth)

    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = [
        f"## {a.name}",
        "",
        *(line for v in _variables_line(a) for line in (v, "")),
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if i >= 3 else "---" for i in range(len(head))) + "|",
    ]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    out += ["", "| Total | |", "|---|---:|"]
    out += [f"| {k.strip()} | {v} |" for k, v in _totals(a.totals)]
    return "\n".join(out) + "\n"
