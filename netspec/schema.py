"""The JSON Schema of the spec language, for editors: a YAML language server given it
completes keys, ops and attributes, shows their docs and defaults, and marks mistakes
as you type (``netspec schema > netspec.schema.json``).

It is built from what validates a spec: the top level, blocks and the ``train:`` recipe
from their pydantic models, and one closed schema per op from the op registry (its
``Attrs`` model, plus the keys every layer takes), chosen by the layer's ``op`` with
``if``/``then`` (draft-07, which editors know best). The schema states what can be
checked without evaluating anything: where a value may be an expression (``$width *
2``), any string with a ``$`` is accepted, and a layer whose ``op`` is not a built-in op
(a block of the spec) is checked for its common keys only. ``netspec check`` stays the
judge of everything else (shapes, references, evaluated values).
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from pydantic.json_schema import GenerateJsonSchema

from netspec.ops import REGISTRY, base, op_names
from netspec.spec.model import LayerEntry, SpecModel

DRAFT = "http://json-schema.org/draft-07/schema#"
#: a value written as an expression (evaluated by the spec's variables)
EXPRESSION = {
    "type": "string",
    "pattern": r"\$|\b(channels|height|width)\s*\(",
    "description": "an expression, e.g. $width * 2 or channels(x) // 2",
}
#: inside blocks a layer may be named by a number (``name: 0``, torchvision's ``features.0``)
_INDEX = {"type": "integer", "minimum": 0}
_INT = {"type": "integer", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}


def _pair(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]}


#: what the attribute types that validate before their declared type accept, keyed by
#: their validator (the declared type is what they store: a pair, not an int or a pair)
_BEFORE: dict[Any, dict[str, Any]] = {
    base.size: _INT,
    base._count: _COUNT,
    get_args(base.SizePair)[1].func: _pair(_INT),
    get_args(base.CountPair)[1].func: _pair(_COUNT),
}


class _Schema(GenerateJsonSchema):
    def function_before_schema(self, schema: Any) -> Any:
        known = _BEFORE.get(schema["function"]["function"])
        return copy.deepcopy(known) if known is not None else super().function_before_schema(schema)


def _model_schema(model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(schema_generator=_Schema, ref_template="#/definitions/{model}")
    return schema


def _or_expression(prop: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [prop, {"$ref": "#/definitions/expression"}], **_docs(prop)}


def _docs(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: prop[k] for k in ("default", "description", "title") if k in prop}


def _layer_keys() -> dict[str, Any]:
    """The keys every layer takes besides its op's attributes."""
    props: dict[str, Any] = _model_schema(LayerEntry)["properties"]
    props = {k: v for k, v in props.items() if k != "op"}
    ref = {"anyOf": [props["otherwise"]["anyOf"][0], _INDEX]}
    props["inputs"] = {"anyOf": [ref, {"type": "array", "items": ref, "minItems": 1}], "description": "input layers"}
    props["name"] = {**props["name"], "anyOf": [*props["name"]["anyOf"], _INDEX]}
    for key in ("repeat", "when", "trainable"):
        props[key] = _or_expression(props[key])
    props["repeat"]["anyOf"][0] = {"type": "integer", "minimum": 1}
    props["when"]["anyOf"][0] = {"type": "boolean"}
    return props


def _op_schema(name: str, common: dict[str, Any]) -> dict[str, Any]:
    op = REGISTRY[name]
    attrs = _model_schema(op.Attrs)
    props = {k: _or_expression(v) for k, v in attrs.get("properties", {}).items()}
    doc = (op.__doc__ or "").strip().split("\n\n")[0]
    return {
        "if": {"properties": {"op": {"const": name}}, "required": ["op"]},
        "then": {
            "description": doc,
            "properties": {"op": {"const": name}, **common, **props},
            "required": ["op", *attrs.get("required", [])],
            "additionalProperties": False,
        },
    }


def layer_schema() -> dict[str, Any]:
    """A layer: an op name alone (``relu``), or a mapping with ``op`` and its attributes."""
    common = _layer_keys()
    names = [n for n in op_names() if n != "input"]
    aliases = sorted(a for n in names for a in REGISTRY[n].aliases)
    mapping = {
        "type": "object",
        "properties": {"op": {"type": "string", "description": "a built-in op or a block of this spec"}, **common},
        "required": ["op"],
        "allOf": [_op_schema(n, common) for n in [*names, *aliases]],
    }
    op_name = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "examples": names}
    return {"if": {"type": "string"}, "then": op_name, "else": mapping}  # not anyOf: errors stay specific


def _closed_names(schema: Any) -> None:
    """Mappings keyed by names (variables, inputs, blocks) refuse keys that are not
    names, as the spec's validation does (pydantic's schema only types the names)."""
    if isinstance(schema, dict):
        if "patternProperties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _closed_names(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed_names(value)


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a spec file."""
    top = _model_schema(SpecModel)
    definitions = top.pop("$defs", {})
    definitions["expression"] = EXPRESSION
    definitions["layer"] = layer_schema()
    layers = {"type": "array", "items": {"$ref": "#/definitions/layer"}, "minItems": 1}
    top["properties"]["layers"] = {**layers, "description": "the layers, in order"}
    definitions["BlockDef"]["properties"]["layers"] = layers
    recipe = definitions["Recipe"]["properties"]  # a recipe's values may use the variables
    definitions["Recipe"]["properties"] = {k: _or_expression(v) for k, v in recipe.items()}
    dim = {"anyOf": [{"type": "integer", "minimum": 1}, {"$ref": "#/definitions/expression"}]}
    (name,) = top["properties"]["inputs"]["patternProperties"]
    top["properties"]["inputs"]["patternProperties"][name] = {"type": "array", "items": dim, "minItems": 1}
    _closed_names(top)
    _closed_names(definitions)
    top["patternProperties"] = {"^x-": {"description": "free for YAML anchors"}}
    return {
        "$schema": DRAFT,
        "title": "netspec spec",
        "description": "A neural network written as a netspec spec; netspec check checks what a schema cannot.",
        **top,
        "definitions": definitions,
    }
