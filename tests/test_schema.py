"""The JSON Schema for editors (``netspec schema``): every zoo spec validates against
it with the ``jsonschema`` package, and the mistakes ``netspec check`` refuses that a
schema can see (a misspelt attribute or key, a wrong type, a missing required
attribute) are refused by it too."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from conftest import REPO
from test_errors import run_cli

from netspec.schema import spec_schema
from netspec.spec.yamlload import parse_yaml

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = spec_schema()
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
ZOO = sorted((REPO / "specs").glob("*.yaml"))


def data(text: str) -> Any:
    return parse_yaml(textwrap.dedent(text)).data


def errors(text: str) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(data(text))]


def test_the_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_zoo_spec_validates(path: Any) -> None:
    found = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(parse_yaml(path.read_text()).data)]
    assert not found, found[:5]


GOOD = """
name: net
params: {width: 16, deep: true}
x-conv: &conv {op: conv2d, kernel: 3, padding: same}
inputs: {image: [3, $width * 2, 32]}
blocks:
  unit:
    params: {out: null}
    layers:
      - {<<: *conv, out: $out, name: c}
      - relu
layers:
  - {op: conv2d, out: $width, kernel: [3, 3], stride: 2, bias: false}
  - {op: batchnorm, when: $deep}
  - {op: unit, out: 32, repeat: 2}
  - {op: maxpool2d, kernel: 2, ceil_mode: true}
  - {op: global_avgpool, flatten: true}
  - {op: linear, out: 10, inputs: unit}
train: {epochs: 3, lr: $width * 0.001, batch_size: "$width * 4"}
"""


def test_a_spec_using_blocks_expressions_anchors_and_a_recipe_validates() -> None:
    assert errors(GOOD) == []


MISTAKES = [
    ("{op: conv2d, out: 8, kernel: 3, strid: 2}", "'strid' was unexpected"),
    ("{op: conv2d, out: 8}", "'kernel' is a required property"),
    ("{op: conv2d, out: 8, kernel: 0}", "0 is not valid under any of the given schemas"),
    ("{op: conv2d, out: 8, kernel: [3, 3, 3]}", "is not valid under any of the given schemas"),
    ("{op: dropout, p: high}", "is not valid under any of the given schemas"),
    ("{op: gelu, approximate: fast}", "is not valid under any of the given schemas"),
    ("{op: relu, repeat: 0}", "is not valid under any of the given schemas"),
    ("{op: relu, inputs: []}", "is not valid under any of the given schemas"),
    ("{op: relu, nmae: r}", "'nmae' was unexpected"),
]


def one_layer(layer: str) -> str:
    return f"inputs: {{x: [3, 8, 8]}}\nlayers:\n  - {layer}\n"


@pytest.mark.parametrize(("layer", "says"), MISTAKES)
def test_mistakes_netspec_check_refuses_are_marked(layer: str, says: str) -> None:
    assert any(says in message for message in errors(one_layer(layer))), errors(one_layer(layer))


def test_the_schema_refuses_nothing_netspec_check_accepts(tmp_path: Any) -> None:
    for i, (layer, _) in enumerate(MISTAKES):
        (tmp_path / f"bad{i}.yaml").write_text(one_layer(layer))
    r = run_cli("check", *(f"bad{i}.yaml" for i in range(len(MISTAKES))), cwd=tmp_path)
    assert r.returncode == 2
    assert len([line for line in r.stderr.splitlines() if ": error: " in line]) == len(MISTAKES), r.stderr


def test_top_level_mistakes_are_marked() -> None:
    assert any("'layer' does not match" in m for m in errors("inputs: {x: [3]}\nlayers: [relu]\nlayer: 1\n"))
    assert any("'layers' is a required property" in m for m in errors("inputs: {x: [3]}\n"))
    assert any("'bad-name'" in m for m in errors("inputs: {bad-name: [3]}\nlayers: [relu]\n"))


def test_every_op_has_its_documented_attributes() -> None:
    layer = SCHEMA["definitions"]["layer"]["else"]
    by_op = {case["if"]["properties"]["op"]["const"]: case["then"] for case in layer["allOf"]}
    conv = by_op["conv2d"]["properties"]
    assert {"kernel", "stride", "padding", "dilation", "groups", "bias", "name", "inputs", "when"} <= set(conv)
    assert conv["stride"]["default"] == [1, 1]
    assert by_op["swish"] == {**by_op["silu"], "properties": {**by_op["silu"]["properties"], "op": {"const": "swish"}}}


def test_cli_writes_the_schema(tmp_path: Any) -> None:
    r = run_cli("schema", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(SCHEMA))
