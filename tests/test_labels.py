"""A layer's ``label``: what people call it (VGG's features.28 is conv5_3), shown
beside its name in the summary (table, markdown, CSV and JSON), the diagram and the
generated source, and never part of a name."""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import analyze_yaml
from test_errors import error_of

import netspec

SPEC = """
    inputs: {x: [3, 8, 8]}
    layers:
      - {op: conv2d, name: c1, label: conv1_1, out: 4, kernel: 3}
      - {op: relu, name: r}
      - {op: conv2d, name: c2, label: body, out: 4, kernel: 3, repeat: 2}
"""


def test_the_summary_shows_the_label_beside_the_name() -> None:
    a = analyze_yaml(SPEC)
    rows = {line.split("  ")[0]: line.split()[-1] for line in netspec.format_analysis(a).splitlines()[4:9]}
    assert list(rows) == ["x", "c1 (conv1_1)", "r", "c2.0 (body)", "c2.1 (body)"]
    assert "| c1 (conv1_1) | conv2d |" in netspec.format_analysis(a, "markdown")
    rows = {r["name"]: r for r in json.loads(netspec.format_analysis(a, "json"))["layers"]}
    assert (rows["c1"]["label"], rows["r"]["label"], rows["c2.1"]["label"]) == ("conv1_1", "", "body")
    table_csv = list(csv.DictReader(io.StringIO(netspec.format_analysis(a, "csv"))))
    assert [(r["name"], r["label"]) for r in table_csv][:3] == [("x", ""), ("c1", "conv1_1"), ("r", "")]
    last = json.loads(netspec.format_analysis(a, "json", depth=1))["layers"][-1]
    assert (last["name"], last["label"]) == ("c2", "")  # a collapsed row has no label of its own


def test_a_label_is_no_name() -> None:
    a = analyze_yaml(SPEC)
    assert [x.name for x in a.layers] == ["x", "c1", "r", "c2.0", "c2.1"]
    with pytest.raises(netspec.SpecError, match="'conv1_1', which is not defined"):
        analyze_yaml(SPEC + "      - {op: relu, inputs: conv1_1}\n")


def test_vgg16_reads_as_the_paper() -> None:
    table = netspec.format_analysis(netspec.analyze("vgg16"))
    assert "features.28 (conv5_3)" in table and "classifier.6 (fc8)" in table


def test_the_diagram_and_the_source_show_it() -> None:
    pytest.importorskip("graphviz")
    dot = netspec.to_digraph(analyze_yaml(SPEC)).source
    assert 'label="c1 (conv1_1)\\nconv 3x3, 4"' in dot
    pytest.importorskip("torch")
    from netspec.backends.torch import generate_source

    assert "self.c1 = nn.Conv2d(3, 4, 3, **kw)  # conv1_1" in generate_source(analyze_yaml(SPEC))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{op: unit, name: u, label: first}", "layer 'u' (block unit): a label names one layer, and this is a block instance"),
        ("{op: split, name: s, parts: 2, label: halves}", "a label names one layer, and this is a split"),
        ("{op: relu, name: r, label: ''}", "key 'label'"),
    ],
)  # fmt: skip
def test_a_label_on_what_is_not_one_layer_is_located(layer: str, message: str) -> None:
    text = f"inputs: {{x: [4, 2, 2]}}\nblocks:\n  unit: {{layers: [relu]}}\nlayers:\n  - {layer}\n"
    e = error_of(text)
    assert message in e.message
    assert e.location is not None and e.location.line == 5
