"""The variables of a spec in view: each one's default, its value in force, its type,
what the variants set it to, and where the spec uses it (``netspec vars``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from netspec.spec.expr import is_expression, variables_in
from netspec.spec.load import Spec


class Use(NamedTuple):
    """Where a variable is used: ``what`` (``layer 'fc3'``, ``block 'unit' layer 'c'``,
    ``variable 'big'``, ``input 'image'``, ``train``, ``init ops 'linear'``) and the key
    there (``out``)."""

    what: str
    key: str

    def __str__(self) -> str:
        return f"{self.what}: {self.key}" if self.key else self.what


class Variable(NamedTuple):
    name: str
    default: Any  # as written in 'params' (an expression stays text)
    value: Any  # in force, with the overrides and the variant applied
    type: str  # of the value in force: int, float, bool, str
    variants: dict[str, Any]  # variant -> the value it sets
    used_by: list[Use]  # where the spec refers to it
    line: int


def describe(spec: Spec) -> list[Variable]:
    """The spec's variables in written order."""
    uses = _uses(spec)
    model = spec.model
    return [
        Variable(
            name=name,
            default=default,
            value=spec.variables.get(name),
            type=type(spec.variables.get(name)).__name__,
            variants={v: values[name] for v, values in model.variants.items() if name in values},
            used_by=uses.get(name, []),
            line=spec.loc(("params", name)).line,
        )
        for name, default in model.params.items()
    ]


def _uses(spec: Spec) -> dict[str, list[Use]]:
    found: dict[str, list[Use]] = {}

    def note(value: Any, where: Use, hidden: frozenset[str] = frozenset()) -> None:
        """Record the spec variables an expression (anywhere inside ``value``) uses;
        ``hidden``: names that mean a block's own parameters there."""
        if isinstance(value, dict):
            for v in value.values():
                note(v, where, hidden)
        elif isinstance(value, list):
            for v in value:
                note(v, where, hidden)
        elif is_expression(value):
            for name in dict.fromkeys(variables_in(value)):
                if name not in hidden and where not in found.setdefault(name, []):
                    found[name].append(where)

    def layers(entries: list[Any], scope: str, hidden: frozenset[str]) -> None:
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            name = entry.get("name")
            if isinstance(name, int) and not isinstance(name, bool):
                name = str(name)  # a digit name (torchvision's 'features.3'), as YAML reads it
            who = f"{scope}layer '{name}'" if isinstance(name, str) else f"{scope}layer {i + 1}"
            for key, value in entry.items():
                if key not in ("op", "name", "inputs", "otherwise"):
                    note(value, Use(who, key), hidden)

    data = spec.doc.data
    for name, value in spec.model.params.items():
        note(value, Use(f"variable '{name}'", ""))
    for name, dims in spec.model.inputs.items():
        note(dims, Use(f"input '{name}'", ""))
    for name, block in spec.model.blocks.items():
        own = frozenset(block.params)
        for key, value in block.params.items():
            note(value, Use(f"block '{name}'", f"default of '{key}'"), own)
        layers(block.layers, f"block '{name}' ", own)
    layers(spec.model.layers, "", frozenset())
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        for key, value in data["train"].items():
            note(value, Use("train", key))
    if isinstance(data, dict) and isinstance(data.get("init"), dict):
        for kind in ("ops", "layers"):
            for key, tensors in (data["init"].get(kind) or {}).items():
                note(tensors, Use(f"init {kind} '{key}'", "initializer"))
    return found


def format_variables(spec: Spec) -> str:
    """A table of the variables, one row each; uses of one key are grouped
    (``out: stem, stage1, head``)."""
    rows = [["Variable", "Value", "Default", "Type", "Variants", "Used by"]]
    for v in describe(spec):
        variants = ", ".join(f"{k}={_text(x)}" for k, x in v.variants.items())
        used = "; ".join(_grouped(v.used_by)) or ("chooses the variant" if v.name == "variant" else "(unused)")
        rows.append([v.name, _text(v.value), _text(v.default), v.type, variants, used])
    if len(rows) == 1:
        return f"{spec.name}: no variables\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(rows[0][-1]))
    return f"{spec.name}  ({spec.path})\n\n" + "\n".join(line.rstrip() for line in lines) + "\n"


def variables_dict(spec: Spec) -> list[dict[str, Any]]:
    """The variables as JSON-ready records (``netspec vars --format json``)."""
    return [{**v._asdict(), "used_by": [str(u) for u in v.used_by]} for v in describe(spec)]


def _grouped(uses: list[Use], shown: int = 4) -> list[str]:
    by_key: dict[str, list[str]] = {}
    for use in uses:
        if not use.key:
            by_key.setdefault(use.what, [])
        else:
            by_key.setdefault(use.key, []).append(use.what.replace("layer ", "").replace("'", ""))
    out = []
    for key, names in by_key.items():
        more = f", +{len(names) - shown} more" if len(names) > shown else ""
        out.append(f"{key} ({', '.join(names[:shown])}{more})" if names else key)
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)
