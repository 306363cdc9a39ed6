"""How a repeat names its copies: ``name.0`` .. by default; ``first`` and ``sep`` number
them as reference implementations do (``denselayer1``, ``block4``, ``layers.13.0`` for a
Sequential of one), checked through the graph, the summary's collapsing, references
and the built module's state_dict keys."""

from __future__ import annotations

import pytest
from conftest import analyze_yaml
from test_errors import error_of

import netspec

SPEC = """
    params: {n: 3}
    inputs: {x: [4, 6, 6]}
    blocks:
      unit:
        layers:
          - {op: conv2d, name: conv, out: 4, kernel: 3, padding: 1}
          - {op: relu, name: act}
      stage:
        layers:
          - {op: unit, name: denselayer, repeat: $n, first: 1, sep: ""}
          - {op: unit, name: one, first: 0}
          - {op: relu, name: r, repeat: 2, first: 4, sep: _}
    layers:
      - {op: stage, name: features}
      - {op: add, name: sum, inputs: [features.denselayer2, features.r_5]}
"""


def test_copies_are_numbered_from_first_and_joined_by_sep() -> None:
    a = analyze_yaml(SPEC)
    names = [x.name for x in a.layers]
    assert names == [
        "x",
        *(f"features.denselayer{j}.{n}" for j in (1, 2, 3) for n in ("conv", "act")),
        "features.one.0.conv",
        "features.one.0.act",
        "features.r_4",
        "features.r_5",
        "sum",
    ]
    # a reference names a copy by its name; the name alone means the last copy
    assert a.graph["sum"].inputs == ("features.denselayer2.act", "features.r_5")
    # the copies of 'denselayer' are siblings (no 'denselayer.' prefix to collapse)
    assert [r.name for r in a.rows(2)] == ["x", *(f"features.denselayer{j}" for j in (1, 2, 3)), "features.one", "features.r_4", "features.r_5", "sum"]  # fmt: skip
    assert "features.one.0" in [r.name for r in a.rows(3)]  # a numbered single copy is a group of one
    assert analyze_yaml(SPEC, n=5).layer("features.denselayer5.conv").params == 4 * 4 * 9 + 4


def test_the_module_has_the_numbered_keys() -> None:
    pytest.importorskip("torch")
    keys = list(netspec.compile(analyze_yaml(SPEC), device="meta").state_dict())
    assert keys == [f"features.denselayer{j}.conv.{t}" for j in (1, 2, 3) for t in ("weight", "bias")] + [
        "features.one.0.conv.weight",
        "features.one.0.conv.bias",
    ]


def test_the_name_alone_means_the_last_copy() -> None:
    text = """
        inputs: {x: [4]}
        layers:
          - {op: relu, name: b, repeat: 3, first: 1, sep: ""}
          - {op: relu, name: other, inputs: x}
          - {op: add, name: sum, inputs: [b, other]}
    """
    assert analyze_yaml(text).graph["sum"].inputs == ("b3", "other")


def test_the_default_is_unchanged() -> None:
    text = "inputs: {x: [4]}\nlayers: [{op: relu, name: r, repeat: 3}, {op: relu, name: s}]\n"
    assert [x.name for x in analyze_yaml(text).layers] == ["x", "r.0", "r.1", "r.2", "s"]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ('{op: relu, name: r, sep: ""}', "'sep' joins the names and numbers of copies, and the layer is one copy, unnumbered"),
        ("{op: relu, name: r, repeat: 2, first: -1}", "'first' (the number of the first copy) must be an integer from 0"),
        ("{op: relu, name: r, repeat: 2, first: 1.5}", "must be an integer from 0 to 100,000, got 1.5"),
        ('{op: relu, name: r, repeat: 2, sep: "-"}', "key 'sep': input should be '.', '_' or ''"),
        ("{op: split, name: s, parts: 2, first: 1}", "a split takes no 'first'"),
        ("{op: relu, name: r, repeat: 2, first: $k}", "undefined variable '$k'"),
    ],
)  # fmt: skip
def test_a_wrong_numbering_is_located(layer: str, message: str) -> None:
    text = f"inputs: {{x: [8, 8, 8]}}\nlayers:\n  - {layer}\n"
    e = error_of(text)
    assert message in e.message
    assert e.location is not None and e.location.line == 3


def test_a_numbered_name_that_clashes_is_a_duplicate() -> None:
    text = "inputs: {x: [4]}\nlayers: [{op: relu, name: b1}, {op: relu, name: b, repeat: 2, first: 1, sep: ''}]\n"
    with pytest.raises(netspec.SpecError, match="duplicate layer name 'b1'"):
        netspec.analyze_text(text)
