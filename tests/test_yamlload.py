"""The located YAML reader: locations of values and keys, aliases and merge keys."""

from __future__ import annotations

import pytest

from netspec import SpecError
from netspec.spec.yamlload import parse_yaml

TEXT = """\
name: net
inputs:
  x: [3, 32, 32]
layers:
  - {op: conv2d, out: 8, kernel: 3}
  - op: relu
"""


def test_values_and_keys_have_their_locations() -> None:
    doc = parse_yaml(TEXT, "n.yaml")
    assert doc.data["layers"][0] == {"op": "conv2d", "out": 8, "kernel": 3}
    assert (doc.loc(("name",)).line, doc.loc(("name",)).col) == (1, 7)
    assert (doc.loc(("inputs", "x", 2)).line, doc.loc(("inputs", "x", 2)).col) == (3, 14)
    assert (doc.loc(("layers", 0, "kernel")).line, doc.loc(("layers", 0, "kernel")).col) == (5, 34)
    key = doc.loc(("layers", 0, "kernel"), key=True)
    assert (key.line, key.col) == (5, 26)
    assert doc.loc(("layers", 1, "op")).line == 6
    assert doc.loc(("layers", 7, "nothing")).line == 5  # falls back to the nearest known parent (the list)


def test_scalar_types_follow_yaml() -> None:
    data = parse_yaml("a: 3\nb: 2.5\nc: true\nd: null\ne: '3'\nf: same\ng: 1e3\nh: 1e-5\ni: '1e-5'\n").data
    # exponents without a dot are floats as in YAML 1.2 (YAML 1.1 would keep '1e-5' a string)
    assert data == {"a": 3, "b": 2.5, "c": True, "d": None, "e": "3", "f": "same", "g": 1000.0, "h": 1e-5, "i": "1e-5"}
    assert type(data["a"]) is int and type(data["c"]) is bool


def test_aliases_share_values() -> None:
    data = parse_yaml("base: &b {kernel: 3, padding: 1}\nlayers: [*b, *b]\n").data
    assert data["layers"] == [{"kernel": 3, "padding": 1}] * 2


def test_merge_keys_add_what_the_mapping_does_not_set() -> None:
    text = """\
conv: &conv {op: conv2d, kernel: 3, padding: 1}
bn: &bn {eps: 0.001}
layers:
  - {<<: *conv, out: 64}
  - {out: 32, <<: *conv, kernel: 5}
  - {<<: [*conv, *bn], padding: 0}
"""
    layers = parse_yaml(text).data["layers"]
    assert layers[0] == {"op": "conv2d", "kernel": 3, "padding": 1, "out": 64}
    assert layers[1] == {"out": 32, "op": "conv2d", "kernel": 5, "padding": 1}
    assert layers[2] == {"op": "conv2d", "kernel": 3, "padding": 0, "eps": 0.001}


def test_merge_of_a_non_mapping_is_an_error() -> None:
    with pytest.raises(SpecError, match="merge key") as e:
        parse_yaml("a: {<<: 3}\n", "m.yaml")
    assert (e.value.location.line, e.value.location.col) == (1, 9)  # type: ignore[union-attr]


def test_duplicate_keys_are_errors_even_beside_a_merge() -> None:
    with pytest.raises(SpecError, match="duplicate key 'out'"):
        parse_yaml("base: &b {k: 1}\na: {<<: *b, out: 1, out: 2}\n")


def test_anchors_under_x_keys_and_merges_in_a_spec() -> None:
    import netspec

    a = netspec.analyze_text(
        """\
x-conv3x3: &conv3x3 {op: conv2d, kernel: 3, padding: 1}
inputs: {image: [3, 32, 32]}
layers:
  - {<<: *conv3x3, name: conv1, out: 64}
  - {<<: *conv3x3, name: conv2, out: 64, padding: 0}
"""
    )
    assert a.layer("conv1").output_shape == (64, 32, 32)
    assert a.layer("conv2").output_shape == (64, 30, 30)


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
@pytest.mark.parametrize(
    ("text", "where"),
    [("[" * 5000, (1, 101)), ("{a: " * 5000, (1, 401)), ("\n".join(" " * i + "a:" for i in range(1500)), (101, 101))],
)
def test_netspec_nesting_limit_comes_first_with_either_parser(
    loader: str, text: str, where: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # libyaml (bundled with PyYAML >= 6.0.4) has a nesting limit of its own that its
    # read-ahead can reach before netspec's: netspec's message must win either way.
    import yaml

    from netspec.spec import yamlload

    if not hasattr(yaml, loader):
        pytest.skip(f"this PyYAML has no {loader}")
    monkeypatch.setattr(yamlload, "_Loader", getattr(yaml, loader))
    with pytest.raises(SpecError) as e:
        parse_yaml(text, "deep.yaml")
    assert (e.value.location.line, e.value.location.col) == where
    assert "nesting deeper than 100 levels" in str(e.value)
