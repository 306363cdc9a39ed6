"""Loading a spec: read the file, parse located YAML, validate its structure, and
evaluate its variables (with overrides from ``--set`` or from Python)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from netspec.errors import Location, SpecError, did_you_mean, name_list
from netspec.plugins import load_spec_plugins
from netspec.spec.expr import LIMIT, ExprError, ShapeLookup, evaluate, is_expression, variables_in
from netspec.spec.model import SpecModel
from netspec.spec.recipe import Recipe
from netspec.spec.yamlload import MAX_FILE_BYTES, Document, Path, parse_yaml


@dataclass
class Spec:
    """A validated spec: its located YAML, its structure and its variables' values."""

    doc: Document
    model: SpecModel
    variables: dict[str, Any] = field(default_factory=dict)
    #: the variables set from outside (``--set``, ``params``), and those computed from them
    overridden: dict[str, Any] = field(default_factory=dict)

    def set_from_outside(self, value: Any, visible: Mapping[str, Any]) -> list[str]:
        """Notes naming the variables set from outside that an attribute value uses
        (``visible``: the variables where it is written; a block's own parameter of the
        same name hides the spec's)."""
        if not is_expression(value) or not self.overridden:
            return []
        used = [n for n in dict.fromkeys(variables_in(value)) if n in self.overridden]
        return [
            f"'${n}' is {self.variables[n]!r} here, from {self.overridden[n]}"
            for n in used
            if visible.get(n) == self.variables.get(n)
        ]

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def name(self) -> str:
        if self.model.name:
            return self.model.name
        base = os.path.basename(self.doc.path)
        return os.path.splitext(base)[0] if not base.startswith("<") else "model"

    def loc(self, path: Path = (), *, key: bool = False) -> Location:
        return self.doc.loc(path, key=key)


def read_spec_file(path: str | os.PathLike[str]) -> str:
    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
        if size > MAX_FILE_BYTES:
            raise SpecError(f"spec is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})", Location(p))
        with open(p, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise SpecError(f"spec is not UTF-8 text ({e.reason} at byte {e.start})", _byte_at(p, e.start)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", Location(p)) from None
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", Location(p)) from None


def _byte_at(path: str, offset: int) -> Location:
    """Location of byte ``offset`` of a file (whose text could not be decoded)."""
    with open(path, "rb") as f:
        before = f.read(offset)
    line_start = before.rfind(b"\n") + 1
    col = len(before[line_start:].decode("utf-8", "replace")) + 1
    return Location(path, before.count(b"\n") + 1, col)


def load_text(text: str, path: str = "<string>", params: Mapping[str, Any] | None = None) -> Spec:
    """Parse and validate spec text; ``params`` override the spec's variables."""
    doc = parse_yaml(text, path)
    if not isinstance(doc.data, dict):
        kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
        got = "empty" if doc.data is None else kinds.get(type(doc.data), type(doc.data).__name__)
        raise SpecError(
            f"a spec must be a mapping with 'inputs' and 'layers', but this document is {got}",
            doc.loc(()),
            hint="see the spec language reference in the README",
        )
    # Top-level keys starting with "x-" are free for YAML anchors (as in compose files).
    data = {k: v for k, v in doc.data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    if isinstance(data.get("inputs"), list):  # the shape alone: the commonest first mistake
        shape = ", ".join(map(str, data["inputs"][:4]))
        raise SpecError(
            "'inputs' names each input and gives its shape",
            doc.loc(("inputs",)),
            hint=f"write inputs: {{image: [{shape}]}}",
        )
    # A recipe written with the variables ('lr: $base_lr * $batch_size / 256') is
    # validated once they are known; the rest of the spec first.
    train = data.get("train")
    deferred = isinstance(train, dict) and _has_expression(train)
    model = validate_model(SpecModel, {**data, "train": None} if deferred else data, doc, (), "key")
    load_spec_plugins(model, doc)  # their ops, before any layer is validated
    spec = Spec(doc, model)
    spec.variables = evaluate_params(spec, dict(params or {}))
    spec.overridden = _overridden(spec, dict(params or {}))
    if deferred:
        values = resolve_value(train, spec.variables, doc, ("train",), "train")
        recipe = validate_model(Recipe, values, doc, ("train",), "recipe key", "train: ")
        spec.model = model.model_copy(update={"train": recipe})
    return spec


def _has_expression(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return is_expression(value)


def _overridden(spec: Spec, overrides: dict[str, Any]) -> dict[str, Any]:
    """Where each variable that depends on a value set from outside got it."""
    found = {name: f"--set {name}={value}" for name, value in overrides.items()}
    for name, raw in spec.model.params.items():
        if name not in found and is_expression(raw):
            source = next((found[v] for v in variables_in(raw) if v in found), None)
            if source is not None:
                found[name] = source
    return found


def load_file(path: str | os.PathLike[str], params: Mapping[str, Any] | None = None) -> Spec:
    return load_text(read_spec_file(path), os.fspath(path), params)


def evaluate_params(spec: Spec, overrides: dict[str, Any]) -> dict[str, Any]:
    """Values of the spec's ``params`` in written order (each may use earlier ones)."""
    declared = spec.model.params
    for name in overrides:
        if name not in declared:
            known = name_list(declared) or "none"
            raise SpecError(
                f"cannot set '{name}': the spec has no such variable (its variables: {known})",
                spec.loc(("params",), key=True) if declared else spec.loc(()),
                hint=did_you_mean(name, declared),
            )
        problem = _unfit_override(overrides[name])
        if problem:
            raise SpecError(f"cannot set '{name}': {problem}", spec.loc(("params", name)))
    chosen, preset = _variant(spec, overrides)
    values: dict[str, Any] = {}
    at: Path
    for name, raw in declared.items():
        given = name in overrides
        value, at = raw, ("params", name)
        where = f"--set {name}" if given else None
        if given:
            value = overrides[name]
        elif name in preset:
            value, at = preset[name], ("variants", chosen, name)
        later = [v for v in variables_in(value) if v in declared and v not in values] if is_expression(value) else []
        if later:  # the expression evaluator would call it undefined, which it is not
            raise SpecError(
                f"{where + ': ' if where else ''}variable '{name}' uses "
                + ("itself" if later[0] == name else f"'${later[0]}', which is defined after it"),
                spec.loc(at),
                hint="a variable may use only the variables written before it in 'params'",
            )
        values[name] = resolve_value(value, values, spec.doc, at, where)
    return values


def _unfit_override(value: Any) -> str | None:
    """What is wrong with a value given for a variable from Python, if anything: the
    values the YAML reader and the expressions let through, and no others."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return "the value must be a number, a boolean, a string or an expression"
    if isinstance(value, int) and not isinstance(value, bool) and not -LIMIT < value < LIMIT:
        return "the value is beyond 64-bit integers"  # no repr: it may have more digits than str() allows
    if isinstance(value, float) and not math.isfinite(value):
        return f"the value {value} is not a finite number"
    return None


def _variant(spec: Spec, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The values of the chosen preset of ``variants`` (``--set variant=b3``), if any."""
    variants, declared = spec.model.variants, spec.model.params
    if not variants:
        return "", {}
    if "variant" not in declared:
        raise SpecError(
            "'variants' needs a variable 'variant' in 'params' that names the default one",
            spec.loc(("variants",), key=True),
            hint=f"add 'variant: {next(iter(variants))}' to 'params'",
        )
    chosen = overrides.get("variant", declared["variant"])
    if chosen not in variants:
        given = "variant" in overrides
        raise SpecError(
            f"{'--set variant: ' if given else ''}unknown variant {chosen!r}; the spec has " + name_list(variants),
            spec.loc(()) if given else spec.loc(("params", "variant")),
            hint=did_you_mean(str(chosen), variants),
        )
    for name in variants[chosen]:
        if name not in declared or name == "variant":
            raise SpecError(
                f"variant '{chosen}' sets '{name}', which is not a variable in 'params'",
                spec.loc(("variants", chosen, name), key=True),
                hint=did_you_mean(name, declared) or "a variant sets values of variables declared in 'params'",
            )
    return chosen, variants[chosen]


def resolve_value(
    value: Any,
    variables: Mapping[str, Any],
    doc: Document,
    path: Path,
    where: str | None = None,
    layer: str | None = None,
    shapes: ShapeLookup | None = None,
) -> Any:
    """Evaluate expressions in ``value`` (recursively through lists and mappings).

    ``where`` is put in front of error messages (``--set width``, ``layer 'conv1' (conv2d)``);
    ``shapes`` looks up the layers that ``channels(x)`` and the like read.
    """
    if is_expression(value):
        try:
            return evaluate(value, variables, shapes)
        except ExprError as e:
            prefix = f"{where}: " if where else ""
            raise SpecError(prefix + e.message, doc.text_loc(path, e.offset), hint=e.hint, layer=layer) from None
    if isinstance(value, list):
        return [resolve_value(v, variables, doc, (*path, i), where, layer, shapes) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: resolve_value(v, variables, doc, (*path, k), where, layer, shapes) for k, v in value.items()}
    return value


def validate_model(
    model: type[BaseModel], data: Any, doc: Document, path: Path, kind: str, context: str = "", layer: str | None = None
) -> Any:
    """Validate ``data`` with a pydantic model; the first error becomes a located SpecError.

    ``kind`` names what the model's fields are ("key", "attribute"); ``context`` is
    put in front of the message (e.g. "layer 'conv1' (conv2d): "); ``layer`` is the
    layer's name for ``SpecError.layer``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = translate(exc, model, doc, path, kind, context)
        error.layer = layer
        raise error from None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Annotated, unions, dicts, lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model whose fields are those at ``loc`` (``("init",)`` -> InitRules); a part
    that is no field (a mapping key, a list index) keeps the model it is in."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = _models_in(field.annotation) if field is not None else []
        model = inner[0] if inner else model
    return model


def translate(
    exc: ValidationError, model: type[BaseModel], doc: Document, path: Path, kind: str, context: str
) -> SpecError:
    errors = exc.errors(include_url=False)
    # A misspelt key shows up twice: as unknown and as the missing key it meant; the
    # unknown one is the cause, and its did-you-mean hint names the fix.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # a tagged union's tag ("<rules>") names the form validated, not a key of the spec
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("<") and p.endswith(">")))
    kind_of = err["type"]
    full = (*path, *loc)
    field = ".".join(str(p) for p in loc)
    if kind_of == "missing":
        return SpecError(f"{context}missing {kind} '{field}'", doc.loc(full[:-1]))
    if loc and loc[-1] == "[key]":  # a mapping key that is not a name (YAML 1.1 reads 'on' as true)
        got = err.get("input")
        parent = ".".join(str(p) for p in loc[:-2])
        words = {True: "on, yes and true", False: "off, no and false"}
        return SpecError(
            f"{context}'{parent}' has a key that YAML reads as {got!r}, not a name",
            doc.loc((*path, *loc[:-2], got), key=True),
            hint=f"YAML reads {words[got]} as booleans: quote the name, e.g. 'on'"
            if isinstance(got, bool)
            else "quote the name",
        )
    if kind_of == "extra_forbidden":
        fields = list(_model_at(model, loc[:-1]).model_fields)
        known = ", ".join(fields)
        return SpecError(
            f"{context}unknown {kind} '{field}'",
            doc.loc(full, key=True),
            hint=did_you_mean(str(loc[-1]), fields) or f"known {kind}s: {known}",
        )
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg[:1].lower() + msg[1:]
    got = err.get("input")
    if "got" not in msg and not isinstance(got, (dict, list)) and kind_of != "value_error":
        msg += f", got {got!r}"
    label = f"{kind} '{field}': " if field else ""
    return SpecError(f"{context}{label}{msg}", doc.loc(full))


def parse_override(item: str) -> tuple[str, Any]:
    """``name=value`` from the command line; the value is read as a YAML scalar.

    Errors name the option and are located at it: ``--set:1:COL``, COL counting the
    characters of ``NAME=VALUE`` (the CLI prints every error as ``path:line:col``)."""
    name, sep, text = item.partition("=")
    where = f"--set '{item}'"
    if not sep or not name.strip():
        raise SpecError(f"{where}: expects NAME=VALUE", Location("--set", 1, 1))
    start = len(name) + 1  # characters before the value
    try:
        value = parse_yaml(text, "--set").data if text.strip() else ""
    except SpecError as e:
        at = e.location
        if at is not None and at.line > 0:  # the value's own line and column, made a column of the item
            start += len("".join(text.splitlines(keepends=True)[: at.line - 1])) + at.col - 1
        raise SpecError(f"{where}: {e.message}", Location("--set", 1, start + 1), hint=e.hint) from None
    if isinstance(value, (dict, list)):
        raise SpecError(
            f"{where}: the value must be a number, a boolean, a string or an expression",
            Location("--set", 1, start + 1),
        )
    return name.strip(), value
