"""``netspec diff``: layers and blocks added, removed and changed between two specs or
two settings of one, with what each change moves and the totals side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_errors import run_cli

import netspec
from netspec.diff import diff, format_diff, to_dict


@pytest.mark.parametrize("depth", [None, 1, 2])
def test_the_changes_add_up_to_the_difference_of_the_totals(depth: int | None) -> None:
    a, b = netspec.analyze("resnet18"), netspec.analyze("resnet34")
    changes = diff(a, b, depth)
    assert sum(c.params for c in changes) == b.totals.params - a.totals.params
    assert sum(c.macs for c in changes) == b.totals.macs - a.totals.macs


def test_stages_of_resnet18_and_resnet34() -> None:
    a, b = netspec.analyze("resnet18"), netspec.analyze("resnet34")
    stages = diff(a, b, depth=1)
    assert [(c.status, c.name, c.a.instances, c.b.instances) for c in stages if c.a and c.b] == [
        ("changed", "layer1", 2, 3),
        ("changed", "layer2", 2, 4),
        ("changed", "layer3", 2, 6),
        ("changed", "layer4", 2, 3),
    ]
    assert all(c.what == ["count", "params", "macs"] for c in stages)
    blocks = diff(a, b, depth=2)
    assert [(c.status, c.name) for c in blocks] == [
        ("added", n) for n in ("layer1.2", "layer2.2", "layer2.3", *(f"layer3.{i}" for i in range(2, 6)), "layer4.2")
    ]
    back = diff(b, a, depth=2)  # removed rows stand where they were
    assert [c.name for c in back] == [c.name for c in blocks] and {c.status for c in back} == {"removed"}


def test_two_settings_of_one_spec() -> None:
    a, b = netspec.analyze("mobilenet_v2"), netspec.analyze("mobilenet_v2", {"width": 0.5})
    changes = {c.name: c for c in diff(a, b)}
    stem = changes["features.0.0"]  # the stem's convolution
    assert stem.what == ["shape", "params", "macs"] and stem.params == -16 * 27
    assert "classifier.1" not in changes  # last_channels keeps 1280 below width 1
    text = format_diff(a, b)
    assert text.splitlines()[1] == "variables: width: 1.0 -> 0.5"
    assert "[32, 112, 112] -> [16, 112, 112]" in text


def test_identical_specs_have_no_changes_and_equal_totals() -> None:
    a = netspec.analyze("lenet5")
    assert diff(a, a) == []
    text = format_diff(a, a)
    assert "no layer differs" in text and text.rstrip().endswith("=")


def test_json_and_markdown() -> None:
    a, b = netspec.analyze("resnet18"), netspec.analyze("resnet34")
    data = to_dict(a, b, depth=1)
    assert data["totals"]["params"] == {"a": a.totals.params, "b": b.totals.params}
    first = data["changes"][0]
    assert first["name"] == "layer1" and first["a"]["count"] == 2 and first["b"]["count"] == 3
    assert first["params"] == 73_984
    assert json.loads(format_diff(a, b, "json", 1)) == json.loads(json.dumps(data))
    md = format_diff(a, b, "markdown", 1)
    assert "| ~ | layer1 | basic x2 -> basic x3 |  | [64, 56, 56] | +73,984 | +231,211,008 |" in md


def test_cli_sets_variables_of_b_and_of_a(tmp_path: Path) -> None:
    r = run_cli("diff", "lenet5", "lenet5", "--set", "classes=100", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "variables: classes: 10 -> 100" in r.stdout and "~  fc3" in r.stdout
    r = run_cli("diff", "lenet5", "lenet5", "--set-a", "classes=100", "-f", "json", cwd=tmp_path)
    assert json.loads(r.stdout)["changes"][0]["params"] == -90 * 85
    bad = run_cli("diff", "lenet5", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_specs_with_different_inputs_are_compared_and_it_says_so() -> None:
    a, b = netspec.analyze("vgg16"), netspec.analyze("vgg16", {"resolution": 32})
    text = format_diff(a, b)
    assert "inputs differ: image [3, 224, 224] -> image [3, 32, 32]" in text.splitlines()
    assert to_dict(a, b)["b"]["inputs"] == {"image": [3, 32, 32]}
    assert sum(c.macs for c in diff(a, b)) == b.totals.macs - a.totals.macs
