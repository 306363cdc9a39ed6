"""Blocks (parameters, repeats, overrides, nesting, several inputs, outputs, references
into instances), ``when``, variants and scaling, and the located errors of each.

Expected shapes and counts are worked out by hand beside each assertion. Bad specs are
written line by line with ``spec(...)`` so that the line of an error can be read off the
position in the call; columns are 1-based, as the CLI prints them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import analyze_yaml
from test_errors import assert_at, error_of, spec

import netspec
from netspec import SpecError
from netspec.graph.ir import Group


def graph(text: str, **params: Any) -> netspec.Graph:
    return netspec.lower(netspec.load_text(textwrap.dedent(text), "g.yaml", params or None))


def assert_says(e: SpecError, *fragments: str, hint: str | None = None) -> None:
    for fragment in fragments:
        assert fragment in e.message, f"{fragment!r} not in {e.message!r}"
    if hint is not None:
        assert e.hint is not None and hint in e.hint, f"{hint!r} not in hint {e.hint!r}"
    assert "Traceback" not in e.format()


def assert_layer(e: SpecError, layer: str, named: str | None = None) -> None:
    """The error is about ``layer`` (its full name), and its message names it."""
    assert e.layer == layer, e.format()
    assert (named or f"'{layer}'") in e.message, e.format()


# --- blocks -----------------------------------------------------------------------

UNIT = """
    inputs: {x: [4, 8, 8]}
    blocks:
      unit:
        params: {out: ~, stride: 1}
        layers:
          - {op: conv2d, name: conv1, out: $out, kernel: 3, stride: $stride, padding: 1}
          - {op: relu, name: act}
"""


def test_block_instantiated_once_and_repeated() -> None:
    a = analyze_yaml(
        UNIT
        + """
    layers:
      - {op: unit, name: stem, out: 8}
      - {op: unit, name: stage, repeat: 3, out: 16, overrides: {0: {stride: 2}}}
    """
    )
    assert [x.name for x in a.layers] == [
        "x",
        "stem.conv1",
        "stem.act",
        "stage.0.conv1",
        "stage.0.act",
        "stage.1.conv1",
        "stage.1.act",
        "stage.2.conv1",
        "stage.2.act",
    ]
    assert a.layer("stem.conv1").output_shape == (8, 8, 8)
    assert a.layer("stage.0.conv1").inputs == ("stem.act",)
    assert a.layer("stage.0.conv1").output_shape == (16, 4, 4)
    assert a.layer("stage.1.conv1").inputs == ("stage.0.act",)
    assert a.layer("stage.2.act").output_shape == (16, 4, 4)
    assert a.outputs == ["stage.2.act"]
    assert (a.layer("stem.conv1").scope, a.layer("stage.1.act").scope) == ("stem", "stage.1")
    # stem 8*4*9+8; stage.0 16*8*9+16; stage.1, stage.2 16*16*9+16
    assert a.totals.params == 296 + 1168 + 2 * 2320


def test_block_params_defaults_expressions_and_spec_params() -> None:
    a = analyze_yaml("""
        params: {c: 4, k: 3}
        inputs: {x: [2, 10, 10]}
        blocks:
          b:
            params: {out: ~, mid: $out * 2, k: 1, extra: $c + $out}
            layers:
              - {op: conv2d, name: expand, out: $mid, kernel: $k}
              - {op: conv2d, name: project, out: $out, kernel: 1}
              - {op: conv2d, name: spec_param, out: $c, kernel: 1}
              - {op: conv2d, name: mixed, out: $extra, kernel: 1}
        layers:
          - {op: b, name: first, out: 3}
          - {op: b, name: second, out: $c + 1, mid: 7, k: 3}
          - {op: conv2d, name: top, out: $c, kernel: $k}
    """)
    # defaults: mid = 2 * out, k = 1 (the block's k shadows the spec's k = 3)
    assert a.layer("first.expand").output_shape == (6, 10, 10)
    assert a.layer("first.project").output_shape == (3, 10, 10)
    assert a.layer("first.spec_param").output_shape == (4, 10, 10)
    assert a.layer("first.mixed").output_shape == (7, 10, 10)  # 4 + 3
    # given on the layer: out = c + 1 = 5, mid = 7, k = 3
    assert a.layer("second.expand").output_shape == (7, 8, 8)
    assert a.layer("second.project").output_shape == (5, 8, 8)
    assert a.layer("second.mixed").output_shape == (9, 8, 8)  # 4 + 5
    # outside the block, k is the spec's again
    assert a.layer("top").output_shape == (4, 6, 6)


def test_values_given_on_the_layer_are_evaluated_in_the_callers_scope() -> None:
    # 'out: $out' on the layer is evaluated where it is written: the spec's 'out'.
    a = analyze_yaml("""
        params: {out: 5}
        inputs: {x: [2, 4, 4]}
        blocks:
          b:
            params: {out: 3}
            layers: [{op: conv2d, name: conv, out: $out, kernel: 1}]
        layers:
          - {op: b, name: default}
          - {op: b, name: given, out: $out * 2}
    """)
    assert a.layer("default.conv").output_shape == (3, 4, 4)
    assert a.layer("given.conv").output_shape == (10, 4, 4)


def test_overrides_by_index_and_negative_index() -> None:
    a = analyze_yaml("""
        inputs: {x: [2, 16, 16]}
        blocks:
          b:
            params: {out: 4, stride: 1}
            layers: [{op: conv2d, name: conv, out: $out, kernel: 1, stride: $stride}]
        layers:
          - {op: b, name: s, repeat: 4, out: 6, overrides: {0: {stride: 2}, -1: {out: 9}, 1: {out: 7}}}
    """)
    shapes = [a.layer(f"s.{i}.conv").output_shape for i in range(4)]
    assert shapes == [(6, 8, 8), (7, 8, 8), (6, 8, 8), (9, 8, 8)]


def test_overrides_of_one_instance_by_two_indices_merge() -> None:
    a = analyze_yaml("""
        inputs: {x: [2, 16, 16]}
        blocks:
          b:
            params: {out: 4, stride: 1}
            layers: [{op: conv2d, name: conv, out: $out, kernel: 1, stride: $stride}]
        layers:
          - {op: b, name: s, repeat: 3, overrides: {2: {out: 9}, -1: {stride: 2}}}
    """)
    assert a.layer("s.2.conv").output_shape == (9, 8, 8)


def test_nested_blocks_have_hierarchical_names_groups_and_callers() -> None:
    g = graph("""
        inputs: {x: [3, 8, 8]}
        blocks:
          inner:
            params: {out: ~}
            layers: [{op: conv2d, name: conv, out: $out, kernel: 1}]
          outer:
            params: {out: ~}
            layers:
              - {op: inner, name: b, out: $out}
              - {op: inner, name: c, repeat: 2, out: $out * 2}
        layers:
          - {op: outer, name: a, repeat: 2, out: 4}
    """)
    assert list(g.nodes) == [
        "x",
        "a.0.b.conv",
        "a.0.c.0.conv",
        "a.0.c.1.conv",
        "a.1.b.conv",
        "a.1.c.0.conv",
        "a.1.c.1.conv",
    ]
    assert g["a.1.b.conv"].inputs == ("a.0.c.1.conv",)
    assert g["a.1.c.1.conv"].scope == "a.1.c.1"
    assert [name for name, _ in g["a.1.c.0.conv"].callers] == ["a.1", "a.1.c.0"]
    assert g["a.1.c.0.conv"].callers[0][1].line == 13  # where 'a' is written (the text starts with a newline)
    four, eight = (("out", 4),), (("out", 8),)  # each instance's parameters, evaluated for it
    assert g.groups == {
        "a": Group("outer", 2),
        "a.0": Group("outer", 1, four),
        "a.1": Group("outer", 1, four),
        "a.0.b": Group("inner", 1, four),
        "a.0.c": Group("inner", 2),
        "a.0.c.0": Group("inner", 1, eight),
        "a.0.c.1": Group("inner", 1, eight),
        "a.1.b": Group("inner", 1, four),
        "a.1.c": Group("inner", 2),
        "a.1.c.0": Group("inner", 1, eight),
        "a.1.c.1": Group("inner", 1, eight),
    }
    a = netspec.analyze_graph(g)
    assert a.layer("a.1.c.1.conv").output_shape == (8, 8, 8)
    # a.0: 4*3+4, 8*4+8, 8*8+8; a.1: 4*8+4, 8*4+8, 8*8+8
    assert a.totals.params == (16 + 40 + 72) + (36 + 40 + 72)


def test_groups_of_repeated_layers_and_blocks() -> None:
    g = graph("""
        inputs: {x: [2, 4, 4]}
        blocks:
          b:
            layers:
              - {op: conv2d, name: conv, out: 2, kernel: 1}
              - {op: relu, name: acts, repeat: 2}
        layers:
          - {op: conv2d, name: conv, out: 2, kernel: 1, repeat: 3}
          - {op: b, name: layer1, repeat: 2}
          - {op: b, name: single}
          - {op: relu, name: once, repeat: 1}
    """)
    assert g.groups == {
        "conv": Group("conv2d", 3),
        "layer1.0": Group("b", 1),
        "layer1.0.acts": Group("relu", 2),
        "layer1.1": Group("b", 1),
        "layer1.1.acts": Group("relu", 2),
        "layer1": Group("b", 2),
        "single": Group("b", 1),
        "single.acts": Group("relu", 2),
    }
    assert "once" in g.nodes and "once.0" not in g.nodes


def test_block_with_two_inputs() -> None:
    a = analyze_yaml("""
        inputs: {p: [4, 8, 8], q: [6, 8, 8]}
        blocks:
          merge:
            inputs: [x, y]
            params: {out: ~}
            layers:
              - {op: conv2d, name: px, out: $out, kernel: 1}
              - {op: conv2d, name: py, out: $out, kernel: 1, inputs: y}
              - {op: add, name: sum, inputs: [px, py]}
        layers:
          - {op: merge, name: m, inputs: [p, q], out: 5}
          - {op: merge, name: swapped, inputs: [q, m], out: 2}
    """)
    assert a.layer("m.px").inputs == ("p",)
    assert a.layer("m.py").inputs == ("q",)
    assert a.layer("m.sum").output_shape == (5, 8, 8)
    assert (a.layer("m.px").params, a.layer("m.py").params) == (5 * 4 + 5, 5 * 6 + 5)
    assert a.layer("swapped.px").inputs == ("q",)
    assert a.layer("swapped.py").inputs == ("m.sum",)
    assert (a.layer("swapped.px").params, a.layer("swapped.py").params) == (2 * 6 + 2, 2 * 5 + 2)


def test_block_output_names_a_layer_that_is_not_the_last() -> None:
    a = analyze_yaml("""
        inputs: {x: [2, 8, 8]}
        blocks:
          b:
            output: main
            layers:
              - {op: conv2d, name: main, out: 4, kernel: 1}
              - {op: global_avgpool, name: side, flatten: true}
        layers:
          - {op: b, name: blk}
          - {op: relu, name: after}
        outputs: [after, blk.side]
    """)
    assert a.layer("after").inputs == ("blk.main",)
    assert a.layer("after").output_shape == (4, 8, 8)
    assert a.outputs == ["after", "blk.side"]
    assert a.layer("blk.side").output_shape == (4,)


def test_block_output_names_a_nested_repeated_instance() -> None:
    a = analyze_yaml("""
        inputs: {x: [2]}
        blocks:
          inner: {layers: [{op: linear, name: fc, out: 3}]}
          outer:
            layers:
              - {op: inner, name: c, repeat: 2}
              - {op: linear, name: side, inputs: x, out: 5}
            output: c
        layers:
          - {op: outer, name: o}
          - {op: tanh, name: t}
    """)
    assert a.layer("t").inputs == ("o.c.1.fc",)
    assert a.layer("t").output_shape == (3,)


def test_block_output_left_out_means_its_input() -> None:
    a = analyze_yaml("""
        inputs: {x: [2]}
        blocks:
          b:
            params: {p: false}
            layers:
              - {op: linear, name: fc, out: 3}
              - {op: relu, name: proj, when: $p}
              - {op: linear, name: side, inputs: x, out: 5}
            output: proj
        layers:
          - {op: b, name: o}
          - {op: b, name: kept, p: true}
          - {op: tanh, name: t}
    """)
    assert a.layer("kept.fc").inputs == ("o.fc",)
    assert a.layer("t").inputs == ("kept.proj",)


def test_references_to_instances_and_their_layers() -> None:
    a = analyze_yaml("""
        inputs: {x: [2, 8, 8]}
        blocks:
          b:
            params: {out: ~}
            layers:
              - {op: conv2d, name: conv1, out: $out, kernel: 1}
              - {op: relu, name: act}
        layers:
          - {op: relu, name: early, inputs: layer2.1}
          - {op: b, name: layer2, repeat: 3, out: 4, inputs: x}
          - {op: relu, name: r_last, inputs: layer2}
          - {op: relu, name: r_first, inputs: layer2.0}
          - {op: relu, name: r_conv, inputs: layer2.0.conv1}
          - {op: relu, name: r_mid, inputs: layer2.1.act}
          - {op: b, name: single, out: 3, inputs: x}
          - {op: relu, name: r_single, inputs: single}
          - {op: relu, name: r_single_conv, inputs: single.conv1}
    """)
    assert a.layer("early").inputs == ("layer2.1.act",)  # a forward reference to an instance
    assert a.layer("r_last").inputs == ("layer2.2.act",)
    assert a.layer("r_first").inputs == ("layer2.0.act",)
    assert a.layer("r_conv").inputs == ("layer2.0.conv1",)
    assert a.layer("r_mid").inputs == ("layer2.1.act",)
    assert a.layer("r_single").inputs == ("single.act",)
    assert a.layer("r_single_conv").inputs == ("single.conv1",)
    assert a.layer("r_single_conv").output_shape == (3, 8, 8)


def test_references_to_copies_of_a_repeated_layer() -> None:
    a = analyze_yaml("""
        inputs: {x: [2, 9, 9]}
        layers:
          - {op: conv2d, name: conv, out: 2, kernel: 3, repeat: 3}
          - {op: relu, name: first, inputs: conv.0}
          - {op: relu, name: last, inputs: conv}
    """)
    assert a.layer("first").output_shape == (2, 7, 7)
    assert a.layer("last").output_shape == (2, 3, 3)


def test_trainable_false_on_a_block_instance_freezes_everything_inside() -> None:
    a = analyze_yaml("""
        inputs: {x: [3, 4, 4]}
        blocks:
          inner:
            layers: [{op: conv2d, name: conv, out: 3, kernel: 1}]
          b:
            layers:
              - {op: conv2d, name: conv, out: 3, kernel: 1}
              - {op: batchnorm, name: bn}
              - {op: inner, name: nested}
              - {op: conv2d, name: frozen_anyway, out: 3, kernel: 1, trainable: false}
        layers:
          - {op: b, name: frozen, trainable: false}
          - {op: b, name: stage, repeat: 2, trainable: false}
          - {op: b, name: live}
    """)
    # one instance: conv 3*3+3, bn 2*3, nested conv 3*3+3, frozen_anyway 3*3+3
    per_instance = 12 + 6 + 12 + 12
    frozen = [x for x in a.layers if x.name.startswith(("frozen.", "stage."))]
    assert len(frozen) == 3 * 4 and all(x.trainable_params == 0 for x in frozen)
    assert a.layer("frozen.nested.conv").params == 12
    assert a.layer("live.nested.conv").trainable_params == 12
    assert a.layer("live.frozen_anyway").trainable_params == 0
    assert a.totals.params == 4 * per_instance
    assert a.totals.trainable_params == 12 + 6 + 12


# --- when -----------------------------------------------------------------------


def test_when_false_leaves_a_layer_out_and_references_mean_its_first_input() -> None:
    a = analyze_yaml("""
        params: {extra: false}
        inputs: {x: [2, 4, 4]}
        layers:
          - {op: relu, name: a}
          - {op: sigmoid, name: b, inputs: x}
          - {op: add, name: skipped, inputs: [b, a], when: $extra}
          - {op: conv2d, name: also_skipped, out: 3, kernel: 1, when: false}
          - {op: tanh, name: next}
          - {op: relu, name: named, inputs: skipped}
    """)
    names = [x.name for x in a.layers]
    assert "skipped" not in names and "also_skipped" not in names
    assert a.layer("next").inputs == ("b",)  # also_skipped -> skipped -> its first input, b
    assert a.layer("named").inputs == ("b",)
    assert a.totals.params == 0


ALTERNATIVES = """
    params: {conv_head: true}
    inputs: {x: [4, 6, 6]}
    layers:
      - {op: relu, name: body}
      - {op: conv2d, name: head, out: 2, kernel: 1, when: $conv_head}
      - {op: global_avgpool, name: head, flatten: true, when: not $conv_head}
      - {op: sigmoid, name: out, inputs: head}
"""


@pytest.mark.parametrize(("conv_head", "op", "shape"), [(True, "conv2d", (2, 6, 6)), (False, "global_avgpool", (4,))])
def test_layers_that_when_keeps_one_of_may_share_a_name(conv_head: bool, op: str, shape: tuple[int, ...]) -> None:
    a = analyze_yaml(ALTERNATIVES, conv_head=conv_head)
    assert (a.layer("head").op, a.layer("out").inputs, a.layer("out").output_shape) == (op, ("head",), shape)


def test_two_layers_kept_under_one_name_are_still_a_duplicate() -> None:
    with pytest.raises(netspec.SpecError, match=r"duplicate layer name 'head' \(first used at line 6\)") as e:
        analyze_yaml(ALTERNATIVES.replace("when: not $conv_head", "when: true"))
    assert e.value.location is not None and e.value.location.line == 7


def test_when_true_keeps_the_layer() -> None:
    a = analyze_yaml(
        """
        params: {extra: false}
        inputs: {x: [2, 4, 4]}
        layers:
          - {op: relu, name: a}
          - {op: add, name: maybe, inputs: [a, x], when: $extra or 1 > 2}
    """,
        extra=True,
    )
    assert a.layer("maybe").inputs == ("a", "x")
    assert a.outputs == ["maybe"]


def test_when_false_on_the_last_layer_makes_its_input_the_output() -> None:
    a = analyze_yaml("""
        inputs: {x: [3]}
        layers:
          - {op: linear, name: fc, out: 2}
          - {op: softmax, name: prob, when: false}
    """)
    assert a.outputs == ["fc"]


def test_when_false_on_a_block_instance() -> None:
    a = analyze_yaml(
        UNIT
        + """
    layers:
      - {op: unit, name: stem, out: 8}
      - {op: unit, name: extra, repeat: 2, out: 16, when: false}
      - {op: relu, name: after}
    """
    )
    assert not any(x.name.startswith("extra") for x in a.layers)
    assert a.layer("after").inputs == ("stem.act",)


def test_when_false_on_a_two_input_instance_means_its_first_input() -> None:
    a = analyze_yaml("""
        inputs: {x: [2], y: [2]}
        blocks:
          pair: {inputs: [a, b], layers: [{op: add, inputs: [a, b]}]}
        layers:
          - {op: pair, name: p, inputs: [y, x], when: false}
          - {op: tanh, name: t}
    """)
    assert [x.name for x in a.layers] == ["x", "y", "t"]
    assert a.layer("t").inputs == ("y",)


def test_when_is_evaluated_in_the_callers_scope() -> None:
    # 'when' on an instance cannot see the block's own parameters
    e = error_of(
        spec(
            "inputs: {x: [2, 4, 4]}",
            "blocks:",
            "  b: {params: {enabled: true}, layers: [relu]}",
            "layers:",
            "  - {op: b, name: blk, enabled: false, when: $enabled}",
        )
    )
    assert_at(e, 5, 46)
    assert_says(e, "undefined variable '$enabled'")
    assert_layer(e, "blk")


@pytest.mark.parametrize(
    ("value", "shown"), [("1", "1"), ("$n", "2"), ("$n + 1", "3"), ("'yes'", "'yes'"), ("[true]", "[True]")]
)
def test_when_must_be_a_boolean(value: str, shown: str) -> None:
    e = error_of(
        spec(
            "params: {n: 2}",
            "inputs: {x: [2, 4, 4]}",
            "layers:",
            f"  - {{op: relu, name: r, when: {value}}}",
        )
    )
    assert_at(e, 4, 31)
    assert_says(e, "'when' must be true or false", f"got {shown}", "layer 'r'")
    assert e.layer == "r"


def test_when_must_be_a_boolean_inside_a_block_instance() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2, 4, 4]}",
            "blocks:",
            "  b:",
            "    params: {k: 1}",
            "    layers: [{op: relu, name: r, when: $k}]",
            "layers:",
            "  - {op: b, name: blk, repeat: 2}",
        )
    )
    assert_at(e, 5, 40)
    assert_says(e, "'when' must be true or false, got 1")
    assert_layer(e, "blk.0.r")
    assert e.notes == ["in block instance 'blk.0' (written at spec.yaml:7:5)"]


def test_a_left_out_layer_that_refers_to_itself() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2, 4, 4]}",
            "layers:",
            "  - {op: relu, name: a, inputs: a, when: false}",
            "  - {op: relu, name: b, inputs: a}",
        )
    )
    assert_at(e, 3, 33)  # the self-reference
    assert_says(e, "'a' is left out ('when') and refers to itself")


def test_left_out_layers_that_refer_to_each_other() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2, 4, 4]}",
            "layers:",
            "  - {op: relu, name: a, inputs: b, when: false}",
            "  - {op: relu, name: b, inputs: a, when: false}",
            "  - {op: relu, name: c, inputs: a}",
        )
    )
    assert e.location is not None and e.location.line in (3, 4), e.format()
    assert_says(e, "left out ('when')")


# --- variants and scaling --------------------------------------------------------

SCALED = """\
params:
  variant: b0
  width: 1.0
  depth: 1.0
  resolution: 32
variants:
  b0: {width: 1.0, depth: 1.0, resolution: 32}
  b1: {width: 1.5, depth: 2.0, resolution: 40}
  slim: {width: 0.35}
  deep: {depth: 1.1}
inputs: {x: [3, $resolution, $resolution]}
blocks:
  unit:
    params: {out: ~}
    layers: [{op: conv2d, name: conv, out: $out, kernel: 3, padding: 1}]
layers:
  - {op: conv2d, name: stem, out: make_divisible(16 * $width), kernel: 3, stride: 2, padding: 1}
  - {op: unit, name: stage, repeat: ceil(2 * $depth), out: make_divisible(32 * $width)}
  - {op: conv2d, name: more, out: 8, kernel: 1, repeat: ceil(3 * $depth)}
"""


def _scaled(a: netspec.Analysis) -> tuple[Any, ...]:
    stages = sorted({x.name.split(".")[1] for x in a.layers if x.name.startswith("stage.")})
    more = [x for x in a.layers if x.name.startswith("more")]
    return (
        a.inputs["x"],
        a.layer("stem").output_shape[0],
        a.layer("stage.0.conv").output_shape[0],
        len(stages),
        len(more),
    )


def test_variants_select_values(tmp_path: Path) -> None:
    path = tmp_path / "scaled.yaml"
    path.write_text(SCALED)
    # b0: 16, 32 channels; ceil(2) = 2 stages, ceil(3) = 3 copies
    assert _scaled(netspec.analyze(path)) == ((3, 32, 32), 16, 32, 2, 3)
    # b1: make_divisible(24) = 24, make_divisible(48) = 48; ceil(4) stages, ceil(6) copies
    assert _scaled(netspec.analyze(path, {"variant": "b1"})) == ((3, 40, 40), 24, 48, 4, 6)
    # a variant sets only some values; the others keep their defaults.
    # 16 * 0.35 = 5.6 -> 8 (the least); 32 * 0.35 = 11.2 -> 8, which is more than 10% below, so 16
    assert _scaled(netspec.analyze(path, {"variant": "slim"})) == ((3, 32, 32), 8, 16, 2, 3)
    # depth 1.1: ceil(2.2) = 3 stages, ceil(3.3) = 4 copies
    assert _scaled(netspec.analyze(path, {"variant": "deep"})) == ((3, 32, 32), 16, 32, 3, 4)


def test_explicit_params_beat_the_variant() -> None:
    a = netspec.analyze_text(SCALED, {"variant": "b1", "resolution": 48, "depth": 0.5})
    # width 1.5 from b1; depth 0.5: ceil(1) = 1 stage (no '.0' for a single instance), ceil(1.5) = 2 copies
    assert a.inputs["x"] == (3, 48, 48)
    assert a.layer("stem").output_shape == (24, 24, 24)
    assert a.layer("stage.conv").output_shape == (48, 24, 24)
    assert [x.name for x in a.layers if x.name.startswith("more")] == ["more.0", "more.1"]


def test_a_variant_value_may_be_an_expression_of_earlier_params() -> None:
    a = analyze_yaml(
        """
        params: {base: 8, variant: small, c: 1}
        variants:
          small: {c: $base}
          large: {c: $base * 4}
        inputs: {x: [2]}
        layers: [{op: linear, name: fc, out: $c}]
    """,
        variant="large",
    )
    assert a.layer("fc").output_shape == (32,)


def test_make_divisible_in_a_spec() -> None:
    a = analyze_yaml("""
        params: {w: 0.75}
        inputs: {x: [3, 4, 4]}
        layers:
          - {op: conv2d, name: a, kernel: 1, out: make_divisible(32 * $w)}
          - {op: conv2d, name: b, kernel: 1, out: "make_divisible(20 * $w, 8)"}
          - {op: conv2d, name: c, kernel: 1, out: "make_divisible(10 * $w, 4, 12)"}
          - {op: conv2d, name: d, kernel: 1, out: "make_divisible(100 * $w, 16)"}
    """)
    # 24 -> 24; 15 -> int(19) // 8 * 8 = 16; 7.5 -> 8 but least 12; 75 -> int(83) // 16 * 16 = 80
    assert [a.layer(n).output_shape[0] for n in "abcd"] == [24, 16, 12, 80]


# --- bad input --------------------------------------------------------------------

RES_BLOCK = (
    "inputs: {x: [4, 8, 8]}",
    "blocks:",
    "  res:",
    "    params: {out: ~, stride: 1}",
    "    layers:",
    "      - {op: conv2d, name: conv, out: $out, kernel: 3, stride: $stride, padding: 1}",
    "      - {op: add, name: add, inputs: [conv, x]}",
)
RES = (*RES_BLOCK, "layers:")  # instances start on line 9

PAIR = (
    "inputs: {x: [4, 8, 8]}",
    "blocks:",
    "  pair:",
    "    inputs: [a, b]",
    "    layers: [{op: add, inputs: [a, b]}]",
    "layers:",
)


def test_residual_add_of_different_shapes_names_the_instance_and_both_shapes() -> None:
    e = error_of(
        spec(
            *RES,
            "  - {op: res, name: layer1, out: 4}",
            "  - {op: res, name: layer2, repeat: 2, out: 8, overrides: {0: {stride: 2}}}",
        )
    )
    assert_at(e, 7, 9)  # the add in the block's definition
    assert_says(e, "cannot add tensors of different shapes", "'layer2.0.conv' gives [8, 4, 4]")
    assert_says(e, "'layer1.add' gives [4, 8, 8]")  # the instance's input, x
    assert_layer(e, "layer2.0.add")
    assert e.notes == ["in block instance 'layer2.0' (written at spec.yaml:10:5)"]
    assert e.format().splitlines()[1] == "  note: in block instance 'layer2.0' (written at spec.yaml:10:5)"


def test_shape_error_in_a_nested_instance_notes_every_instance() -> None:
    e = error_of(
        spec(
            *RES_BLOCK,
            "  wrap:",
            "    layers: [{op: res, name: inner, out: 4, overrides: {0: {stride: 2}}}]",
            "layers:",
            "  - {op: wrap, name: stage, repeat: 2}",
        )
    )
    assert_at(e, 7, 9)
    assert_says(e, "'stage.0.inner.conv' gives [4, 4, 4]", "'x' gives [4, 8, 8]")
    assert_layer(e, "stage.0.inner.add")
    assert e.notes == [
        "in block instance 'stage.0.inner' (written at spec.yaml:9:14)",
        "in block instance 'stage.0' (written at spec.yaml:11:5)",
    ]


def test_concat_of_different_spatial_sizes_names_both_shapes() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4, 8, 8]}",
            "layers:",
            "  - {op: conv2d, name: down, out: 4, kernel: 3, stride: 2, padding: 1}",
            "  - {op: concat, name: cat, inputs: [x, down]}",
        )
    )
    assert_at(e, 4, 5)
    assert_says(e, "cannot concatenate", "spatial sizes differ", "'x' gives [4, 8, 8]", "'down' gives [4, 4, 4]")
    assert_layer(e, "cat")


def test_concat_of_different_spatial_sizes_inside_a_block() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  branchy:",
            "    layers:",
            "      - {op: maxpool2d, name: pool, kernel: 2}",
            "      - {op: concat, name: cat, inputs: [pool, x]}",
            "layers:",
            "  - {op: branchy, name: mixed}",
        )
    )
    assert_at(e, 6, 9)
    assert_says(e, "spatial sizes differ", "'mixed.pool' gives [4, 4, 4]", "'x' gives [4, 8, 8]")
    assert_layer(e, "mixed.cat")
    assert e.notes == ["in block instance 'mixed' (written at spec.yaml:8:5)"]


def bad(
    case_id: str,
    text: str,
    at: tuple[int, int],
    *fragments: str,
    hint: str | None = None,
    layer: str | None = None,
    notes: tuple[str, ...] = (),
    named: str | None = None,
) -> Any:
    """A bad spec, where its error points, what the message (and hint) says, the layer
    it names (``SpecError.layer``; the message names it too, as ``named`` if given) and
    its notes."""
    return pytest.param(text, at, fragments, hint, layer, named, list(notes), id=case_id)


def note(instance: str, line: int, col: int = 5) -> str:
    return f"in block instance '{instance}' (written at spec.yaml:{line}:{col})"


CASES = [
    # --- block parameters
    bad(
        "unknown-block-param",
        spec(*RES, "  - {op: res, name: l1, out: 4, strid: 2}"),
        (9, 33),
        "layer 'l1' (block res)",
        "block 'res' has no parameter 'strid'",
        hint="did you mean 'stride'?",
        layer="l1",
    ),
    bad(
        "unknown-block-param-in-overrides",
        spec(*RES, "  - {op: res, name: l1, repeat: 2, out: 4, overrides: {1: {strde: 2}}}"),
        (9, 60),
        "block 'res' has no parameter 'strde'",
        hint="did you mean 'stride'?",
        layer="l1",
    ),
    bad(
        "unknown-block-param-no-match",
        spec(*RES, "  - {op: res, name: l1, colour: red, out: 4}"),
        (9, 25),
        "block 'res' has no parameter 'colour'",
        hint="its parameters: out, stride",
        layer="l1",
    ),
    bad(
        "missing-block-param",
        spec(*RES, "  - {op: res, name: l1}"),
        (9, 5),
        "layer 'l1' (block res)",
        "missing block parameter 'out'",
        hint="add 'out: ...' to the layer",
        layer="l1",
    ),
    bad(
        "missing-block-param-of-one-instance",
        spec(*RES, "  - {op: res, name: l1, repeat: 2, overrides: {0: {out: 4}}}"),
        (9, 5),
        "layer 'l1.1' (block res)",
        "missing block parameter 'out'",
        layer="l1.1",
    ),
    bad(
        "param-on-the-layer-cannot-use-block-params",
        spec(*RES, "  - {op: res, name: l1, repeat: 2, out: 4, overrides: {1: {out: $out * 2}}}"),
        (9, 65),
        "layer 'l1' (block res)",
        "undefined variable '$out'",
        layer="l1",
    ),
    # --- recursion
    bad(
        "recursive-block",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  loop:",
            "    layers:",
            "      - {op: conv2d, out: 4, kernel: 1}",
            "      - {op: loop, name: again}",
            "layers:",
            "  - {op: loop, name: top}",
        ),
        (6, 14),
        "layer 'top.again' (block loop)",
        "block 'loop' contains itself (loop -> loop)",
        hint="not itself",
        layer="top.again",
        notes=(note("top", 8),),
    ),
    bad(
        "recursive-block-through-another",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  ping:",
            "    layers: [{op: pong, name: b}]",
            "  pong:",
            "    layers: [{op: relu}, {op: ping, name: a}]",
            "layers:",
            "  - {op: relu}",
            "  - {op: ping, name: top}",
        ),
        (6, 31),
        "layer 'top.b.a' (block ping)",
        "contains itself (ping -> pong -> ping)",
        layer="top.b.a",
        notes=(note("top.b", 4, 14), note("top", 9)),
    ),
    # --- sizes that fall below 1
    bad(
        "width-makes-channels-zero",
        spec(
            "params: {width: 1}",
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    params: {c: ~}",
            "    layers: [{op: conv2d, name: conv, out: $c * $width // 8, kernel: 1}]",
            "layers:",
            "  - {op: relu}",
            "  - {op: b, name: stage, repeat: 2, c: 4}",
        ),
        (6, 44),
        "layer 'stage.0.conv' (conv2d)",
        "attribute 'out'",
        "expected a positive integer, got 0",
        layer="stage.0.conv",
        notes=(note("stage.0", 9),),
    ),
    bad(
        "float-width-makes-channels-zero",
        spec(
            "params: {width: 0.5}",
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    params: {c: ~}",
            "    layers: [{op: conv2d, name: conv, out: $c * $width // 8, kernel: 1}]",
            "layers:",
            "  - {op: b, name: stage, repeat: 2, c: 8}",
        ),
        (6, 44),
        "layer 'stage.0.conv' (conv2d)",
        "attribute 'out'",
        "expected a positive integer, got 0.0",
        layer="stage.0.conv",
        notes=(note("stage.0", 8),),
    ),
    bad(
        "repeat-shrinks-spatial-size-below-1",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  down:",
            "    layers: [{op: conv2d, name: conv, out: 4, kernel: 3, stride: 2}]",
            "layers:",
            "  - {op: down, name: stage, repeat: 3}",
        ),
        (4, 14),
        "layer 'stage.2.conv' (conv2d)",
        "output size would be 0x0",
        "input is 1x1",
        "'stage.1.conv' is [4, 1, 1]",
        layer="stage.2.conv",
        notes=(note("stage.2", 6),),
    ),
    bad(
        "depth-makes-repeat-zero",
        spec(
            "params: {depth: 0.4}",
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    params: {n: 2}",
            "    layers: [{op: relu, name: acts, repeat: floor($n * $depth)}]",
            "layers:",
            "  - {op: b, name: stage}",
        ),
        (6, 45),
        "layer 'stage.acts' (relu)",
        "'repeat' must be an integer from 1",
        "got 0",
        layer="stage.acts",
        notes=(note("stage", 8),),
    ),
    # --- overrides
    bad(
        "overrides-index-out-of-range",
        spec(*RES, "  - {op: res, name: l1, repeat: 2, out: 4, overrides: {2: {stride: 2}}}"),
        (9, 56),
        "layer 'l1' (block res)",
        "'overrides' names instance 2, but there are 2 (0 to 1)",
        layer="l1",
    ),
    bad(
        "overrides-negative-index-out-of-range",
        spec(*RES, "  - {op: res, name: l1, repeat: 2, out: 4, overrides: {-3: {stride: 2}}}"),
        (9, 56),
        "'overrides' names instance -3, but there are 2 (0 to 1)",
        layer="l1",
    ),
    bad(
        "overrides-without-repeat",
        spec(*RES, "  - {op: res, name: l1, out: 4, overrides: {1: {stride: 2}}}"),
        (9, 45),
        "'overrides' names instance 1",
        layer="l1",
    ),
    bad(
        "overrides-on-an-op",
        spec(*RES, "  - {op: conv2d, name: c, out: 4, kernel: 1, repeat: 2, overrides: {0: {stride: 2}}}"),
        (9, 57),
        "layer 'c' (conv2d)",
        "'overrides' sets block parameters, and 'conv2d' is an op, not a block",
        layer="c",
    ),
    # --- block definitions
    bad(
        "block-named-like-an-op",
        spec("inputs: {x: [4, 8, 8]}", "blocks:", "  relu:", "    layers: [{op: sigmoid}]", "layers: [relu]"),
        (3, 3),
        "block 'relu' has the name of an op",
        hint="rename the block",
    ),
    bad(
        "undefined-block-output",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    layers: [{op: relu, name: act}]",
            "    output: akt",
            "layers:",
            "  - {op: b, name: blk}",
        ),
        (5, 13),
        "block 'b': output 'akt' is not one of its layers",
        hint="did you mean 'act'?",
    ),
    bad(
        "duplicate-name-inside-a-block",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    layers:",
            "      - {op: conv2d, name: conv, out: 4, kernel: 1}",
            "      - {op: conv2d, name: conv, out: 4, kernel: 1}",
            "layers:",
            "  - {op: b, name: blk}",
        ),
        (6, 28),
        "duplicate layer name 'conv' (first used at line 5)",
        hint="rename",
        layer="blk.conv",
        named="'conv'",  # the name as written; the note names the instance
        notes=(note("blk", 8),),
    ),
    bad(
        "layer-named-like-the-block-input",
        spec(
            "inputs: {x: [4]}", "blocks:", "  b:", "    layers: [{op: relu, name: x}]", "layers: [{op: b, name: blk}]"
        ),
        (4, 31),
        "duplicate layer name 'x'",
        layer="blk.x",
        named="'x'",
        notes=(note("blk", 5, 10),),
    ),
    bad(
        "instance-named-like-a-layer",
        spec(
            "inputs: {x: [4]}",
            "blocks:",
            "  b:",
            "    layers: [relu]",
            "layers:",
            "  - {op: relu, name: stage}",
            "  - {op: b, name: stage, repeat: 2}",
        ),
        (7, 19),
        "duplicate layer name 'stage' (first used at line 6)",
        layer="stage",
    ),
    # --- references and inputs
    bad(
        "block-refers-to-a-top-level-layer",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    layers: [{op: add, name: add, inputs: [x, stem]}]",
            "layers:",
            "  - {op: conv2d, name: stem, out: 4, kernel: 1}",
            "  - {op: b, name: blk}",
        ),
        (4, 47),
        "layer 'blk.add' takes input 'stem', which is not defined",
        layer="blk.add",
        notes=(note("blk", 7),),
    ),
    bad(
        "reference-to-a-missing-instance",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    layers: [{op: relu, name: act}]",
            "layers:",
            "  - {op: b, name: stage, repeat: 2}",
            "  - {op: relu, inputs: stage.2}",
        ),
        (7, 24),
        "layer 'relu_1' takes input 'stage.2', which is not defined",
        layer="relu_1",
    ),
    bad(
        "too-few-block-inputs",
        spec(*PAIR, "  - {op: pair, name: p}"),
        (7, 5),
        "layer 'p' (block pair)",
        "the block takes 2 input(s) (a, b), got 1",
        layer="p",
    ),
    bad(
        "too-many-block-inputs",
        spec(*PAIR, "  - {op: pair, name: p, inputs: [x, x, x]}"),
        (7, 33),
        "layer 'p' (block pair)",
        "the block takes 2 input(s) (a, b), got 3",
        layer="p",
    ),
    bad(
        "repeated-two-input-block",
        spec(*PAIR, "  - {op: pair, name: p, inputs: [x, x], repeat: 2}"),
        (7, 49),
        "layer 'p' (block pair)",
        "only a block with one input can be repeated",
        layer="p",
    ),
    bad(
        "cycle-through-instances",
        spec(
            "inputs: {x: [4]}",
            "blocks:",
            "  b: {layers: [{op: relu, name: r}]}",
            "layers:",
            "  - {op: b, name: one, inputs: two}",
            "  - {op: b, name: two, inputs: one}",
        ),
        (5, 32),  # the instance's reference that closes the loop, not the block's definition
        "the layers form a cycle: one.r -> two.r -> one.r",
        layer="one.r",
        named="one.r",
    ),
    # --- ops and blocks share 'op'
    bad(
        "unknown-op-suggests-a-block",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  resblock:",
            "    layers: [{op: relu}]",
            "layers:",
            "  - {op: resblok}",
        ),
        (6, 10),
        "unknown op 'resblok'",
        hint="did you mean 'resblock'?",
    ),
    bad(
        "unknown-op-lists-the-blocks",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  bottleneck:",
            "    layers: [{op: relu}]",
            "layers: [{op: transformer}]",
        ),
        (5, 15),
        "unknown op 'transformer'",
        hint="tanh, bottleneck",
    ),
    # --- variants
    bad(
        "variant-sets-undeclared-variable",
        spec("inputs: {x: [4, 8, 8]}", "params: {variant: b0}", "variants:", "  b0: {widht: 1.0}", "layers: [relu]"),
        (4, 8),
        "variant 'b0' sets 'widht', which is not a variable in 'params'",
    ),
    bad(
        "variant-sets-misspelt-variable",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "params: {width: 1.0, variant: b0}",
            "variants:",
            "  b0: {widht: 1.0}",
            "layers: [relu]",
        ),
        (4, 8),
        "variant 'b0' sets 'widht'",
        hint="did you mean 'width'?",
    ),
    bad(
        "variant-sets-variant",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "params: {width: 1.0, variant: b0}",
            "variants:",
            "  b0: {width: 1.0, variant: b1}",
            "  b1: {width: 2.0}",
            "layers: [relu]",
        ),
        (4, 20),
        "variant 'b0' sets 'variant'",
    ),
    bad(
        "variants-without-variant-param",
        spec("inputs: {x: [4, 8, 8]}", "params: {width: 1.0}", "variants:", "  b0: {width: 1.0}", "layers: [relu]"),
        (3, 1),
        "'variants' needs a variable 'variant' in 'params'",
        hint="add 'variant: b0' to 'params'",
    ),
    bad(
        "unknown-default-variant",
        spec(
            "inputs: {x: [4, 8, 8]}",
            "params: {width: 1.0, variant: b3}",
            "variants:",
            "  b0: {width: 1.0}",
            "  b1: {width: 2.0}",
            "layers: [relu]",
        ),
        (2, 31),
        "unknown variant 'b3'; the spec has b0, b1",
    ),
]


@pytest.mark.parametrize(("text", "at", "fragments", "hint", "layer", "named", "notes"), CASES)
def test_bad_block_spec_gives_one_located_error(
    text: str,
    at: tuple[int, int],
    fragments: tuple[str, ...],
    hint: str | None,
    layer: str | None,
    named: str | None,
    notes: list[str],
) -> None:
    e = error_of(text)
    assert_at(e, *at)
    assert_says(e, *fragments, hint=hint)
    if layer is None:
        assert e.layer is None, e.format()
    else:
        assert_layer(e, layer, named)
    assert e.notes == notes, e.format()


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_unknown_variant_from_the_caller_names_the_known_ones() -> None:
    e = error_of(SCALED, {"variant": "b11"})
    assert_at(e, 1, 1)
    assert_says(e, "unknown variant 'b11'", "b0, b1, slim, deep", hint="did you mean 'b1'?")


# --- behaviours a demanding user would expect (to be fixed in netspec) --------------


def test_a_left_out_layer_that_refers_to_itself_is_the_layer_at_fault() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2, 4, 4]}",
            "layers:",
            "  - {op: relu, name: a, inputs: a, when: false}",
            "  - {op: relu, name: b, inputs: a}",
        )
    )
    assert_layer(e, "a")


def test_every_output_left_out_is_an_error() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2]}",
            "layers:",
            "  - {op: relu, name: a}",
            "  - {op: relu, name: aux, when: false}",
            "outputs: [aux]",
        )
    )
    assert_at(e, 5, 11)
    assert_says(e, "aux")


def test_optional_output_inside_a_block_instance_is_dropped() -> None:
    a = analyze_yaml("""
        params: {aux: false}
        inputs: {x: [2]}
        blocks:
          b:
            layers:
              - {op: relu, name: main}
              - {op: sigmoid, name: aux, inputs: main, when: $aux}
            output: main
        layers: [{op: b, name: blk}]
        outputs: [blk, blk.aux]
    """)
    assert a.outputs == ["blk.main"]


def test_dotted_reference_to_a_left_out_layer_means_its_input() -> None:
    a = analyze_yaml("""
        inputs: {x: [2]}
        blocks:
          b:
            layers:
              - {op: relu, name: main}
              - {op: sigmoid, name: aux, when: false}
        layers:
          - {op: b, name: blk}
          - {op: tanh, name: t, inputs: blk.aux}
    """)
    assert a.layer("t").inputs == ("blk.main",)


def test_overrides_setting_one_parameter_twice_for_one_instance_is_an_error() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2, 16, 16]}",
            "blocks:",
            "  b:",
            "    params: {out: 4}",
            "    layers: [{op: conv2d, name: conv, out: $out, kernel: 1}]",
            "layers:",
            "  - {op: b, name: s, repeat: 3, overrides: {2: {out: 9}, -1: {out: 5}}}",
        )
    )
    assert_at(e, 7, 58)
    assert_says(e, "instance 2", "out")
    assert_layer(e, "s")


@pytest.mark.parametrize(
    ("key", "value"),
    [("repeat", "2"), ("when", "true"), ("name", "n1"), ("inputs", "x"), ("trainable", "false"), ("overrides", "{}")],
)
def test_a_block_parameter_named_like_a_layer_key_is_refused_where_declared(key: str, value: str) -> None:
    e = error_of(
        spec(
            "inputs: {x: [2]}",
            "blocks:",
            "  b:",
            f"    params: {{{key}: ~}}",
            "    layers: [relu]",
            "layers:",
            f"  - {{op: b, {key}: {value}}}",
        )
    )
    assert_at(e, 4, 14)
    assert_says(e, f"'{key}'")


def test_a_block_parameter_default_using_a_later_parameter() -> None:
    e = error_of(
        spec(
            "inputs: {x: [2]}",
            "blocks:",
            "  b:",
            "    params: {a: $later, later: 3}",
            "    layers: [{op: linear, out: $a}]",
            "layers:",
            "  - {op: b, name: s}",
        )
    )
    assert_at(e, 4, 17)
    assert_says(e, "'$later'", "defined after it")
    assert_layer(e, "s")


def test_a_reference_to_a_top_level_layer_from_a_block_explains_scoping() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b:",
            "    layers: [{op: add, name: add, inputs: [x, stem]}]",
            "layers:",
            "  - {op: conv2d, name: stem, out: 4, kernel: 1}",
            "  - {op: b, name: blk}",
        )
    )
    assert e.hint is not None and "input" in e.hint, e.format()


def test_a_cycle_through_instances_points_at_the_instance_reference() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4]}",
            "blocks:",
            "  b: {layers: [{op: relu, name: r}]}",
            "layers:",
            "  - {op: b, name: one, inputs: two}",
            "  - {op: b, name: two, inputs: one}",
        )
    )
    assert_at(e, 5, 32)


def test_a_function_call_cut_by_a_flow_mapping_comma_hints_to_quote_it() -> None:
    e = error_of(
        spec(
            "params: {w: 0.75}",
            "inputs: {x: [3, 4, 4]}",
            "layers:",
            "  - {op: conv2d, name: b, kernel: 1, out: make_divisible(20 * $w, 8)}",
        )
    )
    assert_at(e, 4, 65)
    assert_layer(e, "b")
    assert e.hint is not None and "quote" in e.hint, e.format()


def test_a_float_channel_count_after_floor_division_gets_useful_advice() -> None:
    e = error_of(
        spec(
            "params: {width: 0.5}",
            "inputs: {x: [4, 8, 8]}",
            "layers:",
            "  - {op: conv2d, name: conv, out: 32 * $width // 8, kernel: 1}",
        )
    )
    assert_at(e, 4, 35)
    assert_layer(e, "conv")
    assert "use // for integer division" not in e.format()
    assert "floor" in e.format() or "round" in e.format()


def test_a_parameter_named_on_gets_a_readable_error() -> None:
    e = error_of(spec("inputs: {x: [2]}", "blocks:", "  b: {params: {on: true}, layers: [relu]}", "layers: [{op: b}]"))
    assert_at(e, 3, 16)
    assert "[key]" not in e.message and "'on'" in e.format(), e.format()


# --- names as torchvision writes them; ops from variables; checking what is left out ----

DIGIT_NAMES = """
inputs: {x: [3, 8, 8]}
blocks:
  conv_bn:
    params: {out: ~}
    layers:
      - {op: conv2d, name: 0, out: $out, kernel: 3, padding: 1, bias: false}
      - {op: batchnorm, name: 1}
  inverted:
    layers:
      - {op: conv_bn, name: block, out: 4}
      - {op: relu, inputs: block.1}
layers:
  - {op: inverted, name: features, repeat: 2}
"""


def test_digit_names_inside_blocks_make_torchvision_keys() -> None:
    a = analyze_yaml(DIGIT_NAMES)
    assert "features.1.block.0" in a.graph.nodes and a.layer("features.1.block.0").inputs == ("features.0.relu_1",)
    torch = pytest.importorskip("torch")
    model = netspec.compile(a)
    keys = set(model.state_dict())
    assert {"features.0.block.0.weight", "features.1.block.1.running_mean"} <= keys
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 8, 8)


def test_a_top_level_name_may_not_start_with_a_digit() -> None:
    e = error_of(spec("inputs: {x: [3]}", "layers:", "  - {op: relu, name: 0}"))
    assert_at(e, 3, 22)
    assert "starts with a digit" in e.message


def test_op_may_be_a_block_parameter() -> None:
    text = (
        "inputs: {x: [3, 4, 4]}\nblocks:\n  unit:\n    params: {act: relu}\n"
        "    layers: [{op: conv2d, name: c, out: 3, kernel: 1}, {op: $act, name: a}]\n"
        "layers:\n  - {op: unit, name: u1}\n  - {op: unit, name: u2, act: hardswish}\n  - {op: unit, name: u3, act: unit2}\n"
        "  - {op: relu}\n"
    )
    e = error_of(text.replace("unit2", "sigmiod"))
    assert "unknown op 'sigmiod' (the value of '$act')" in e.message and e.hint == "did you mean 'sigmoid'?", e.format()
    a = analyze_yaml(text.replace("unit2", "sigmoid"))
    assert [a.layer(f"u{k}.a").op for k in (1, 2, 3)] == ["relu", "hardswish", "sigmoid"]


@pytest.mark.parametrize(
    ("lines", "at", "says"),
    [
        (
            ["params: {use: false}", "layers:", "  - {op: conv2d, out: 4, kernel: 1, strid: 2, when: $use}"],
            (4, 37),
            "'strid'",
        ),
        (
            ["blocks:", "  spare: {layers: [{op: conv2d, out: 4, kernel: 1, strid: 2}]}", "layers: [relu]"],
            (3, 52),
            "'strid'",
        ),
        (["blocks:", "  spare: {layers: [{op: cnov2d}]}", "layers: [relu]"], (3, 25), "'cnov2d'"),
        (
            ["blocks:", "  b: {params: {out: 1}, layers: [relu]}", "layers:", "  - {op: b, outt: 2, when: false}"],
            (5, 13),
            "'outt'",
        ),
    ],
    ids=["left-out-layer", "unused-block", "unknown-op-in-unused-block", "left-out-instance"],
)
def test_check_sees_attribute_and_op_names_of_layers_it_leaves_out(
    lines: list[str], at: tuple[int, int], says: str
) -> None:
    e = error_of(
        spec(lines[0], "inputs: {x: [4, 8, 8]}", *lines[1:])
        if lines[0].startswith("params")
        else spec("inputs: {x: [4, 8, 8]}", *lines)
    )
    assert_at(e, *at)
    assert says in e.message and e.hint is not None and "did you mean" in e.hint, e.format()
