"""Variables in view: ``netspec vars`` (value in force, default, type, variants, uses)
and the variables line of the summary."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import analyze_yaml
from test_errors import cli_errors, run_cli

import netspec
from netspec.summary import format_analysis, to_dict
from netspec.variables import describe, format_variables

SPEC = """\
params: {width: 16, wide: $width * 2, deep: false}
inputs: {x: [3, $width, $width]}
blocks:
  unit:
    params: {width: 8}
    layers:
      - {op: conv2d, name: c, out: $width, kernel: 3, padding: same}
      - {op: relu, when: $deep}
layers:
  - {op: unit, name: u1, width: $wide}
  - {op: unit, name: u2}
  - {op: conv2d, name: head, out: $width, kernel: 1}
"""


def test_each_variable_with_its_value_default_type_and_uses(tmp_path: Path) -> None:
    (tmp_path / "net.yaml").write_text(SPEC)
    spec = netspec.load(tmp_path / "net.yaml", {"width": 4})
    by_name = {v.name: v for v in describe(spec)}
    assert list(by_name) == ["width", "wide", "deep"]
    width = by_name["width"]
    assert (width.value, width.default, width.type, width.line) == (4, 16, "int", 1)
    # the block's own 'width' parameter hides the spec's inside the block
    assert [str(u) for u in width.used_by] == ["variable 'wide'", "input 'x'", "layer 'head': out"]
    assert [str(u) for u in by_name["wide"].used_by] == ["layer 'u1': width"]
    assert (by_name["wide"].value, by_name["wide"].default) == (8, "$width * 2")
    assert [str(u) for u in by_name["deep"].used_by] == ["block 'unit' layer 2: when"]
    assert by_name["deep"].type == "bool"


def test_variants_are_listed_with_the_value_each_sets() -> None:
    spec = netspec.load("efficientnet_b0", {"variant": "b3"})
    by_name = {v.name: v for v in describe(spec)}
    assert by_name["width"].value == 1.2 and by_name["width"].default == 1.0
    assert by_name["width"].variants["b3"] == 1.2 and len(by_name["width"].variants) == 8
    assert "input 'image'" in [str(u) for u in by_name["resolution"].used_by]
    table = format_variables(spec)
    assert "chooses the variant" in table
    assert "out (block features 0, block features 1, block features 2, block features 3, +5 more)" in table


def test_the_summary_shows_the_values_in_force() -> None:
    a = analyze_yaml(SPEC, width=4)
    assert format_analysis(a).splitlines()[1] == "variables: width=4, wide=8, deep=false"
    assert "variables: width=4, wide=8, deep=false" in format_analysis(a, "markdown")
    assert to_dict(a)["variables"] == {"width": 4, "wide": 8, "deep": False}
    plain = analyze_yaml("inputs: {x: [3]}\nlayers: [relu]")
    assert format_analysis(plain).splitlines()[1] == "" and to_dict(plain)["variables"] == {}


def test_cli_lists_variables_as_a_table_and_as_json(tmp_path: Path) -> None:
    (tmp_path / "net.yaml").write_text(SPEC)
    r = run_cli("vars", "net.yaml", "--set", "deep=true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].split() == ["Variable", "Value", "Default", "Type", "Variants", "Used", "by"]
    assert r.stdout.splitlines()[6].split()[:4] == ["deep", "true", "false", "bool"]
    data = json.loads(run_cli("vars", "net.yaml", "-f", "json", cwd=tmp_path).stdout)
    assert data[0] == {
        "name": "width",
        "default": 16,
        "value": 16,
        "type": "int",
        "variants": {},
        "used_by": ["variable 'wide'", "input 'x'", "layer 'head': out"],
        "line": 1,
    }
    bad = run_cli("vars", "net.yaml", "--set", "widht=3", cwd=tmp_path)
    assert bad.returncode == 2
    assert cli_errors(bad.stderr)[0][3].startswith("cannot set 'widht'")


def test_uses_in_the_init_rules_are_listed() -> None:
    by_name = {v.name: v for v in describe(netspec.load("efficientnet_b0"))}
    assert [str(u) for u in by_name["classes"].used_by] == [
        "block 'classifier' layer '1': out",
        "init ops 'linear': initializer",
    ]
