"""Shape expressions: ``channels(x)``, ``height(x)`` and ``width(x)`` read the per-sample
shape of a layer, a spec input or a block input, wherever a layer's values are
written. Expected figures are worked out by hand (or are the papers' / torchvision's
channel counts), never read back from netspec."""

from __future__ import annotations

import pytest
from conftest import analyze_yaml
from test_errors import assert_at, error_of, spec

import netspec

TRANSITION = """
inputs: {x: [256, 8, 8]}
blocks:
  transition:
    params: {out: channels(x) // 2}
    layers:
      - {op: conv2d, name: conv, out: $out, kernel: 1, bias: false}
      - {op: avgpool2d, name: pool, kernel: 2}
layers:
  - {op: transition, name: t1}
  - {op: transition, name: t2}
"""


def test_a_block_parameter_default_reads_the_block_input() -> None:
    a = analyze_yaml(TRANSITION)
    assert a.layer("t1.conv").output_shape == (128, 8, 8)
    assert a.layer("t2.conv").output_shape == (64, 4, 4)
    assert a.layer("t1.conv").params == 256 * 128 and a.layer("t2.conv").params == 128 * 64


INVERTED = """
inputs: {x: [16, 8, 8]}
blocks:
  ir:
    params: {out: ~, stride: 1}
    layers:
      - {op: conv2d, name: expand, out: channels(x) * 6, kernel: 1, bias: false}
      - {op: conv2d, name: dw, kernel: 3, stride: $stride, padding: 1, groups: depthwise, bias: false}
      - {op: conv2d, name: project, out: $out, kernel: 1, bias: false}
      - {op: add, name: add, inputs: [project, x], when: $stride == 1 and channels(x) == $out}
layers:
  - {op: ir, name: a, out: 16}
  - {op: ir, name: b, out: 24}
  - {op: ir, name: c, out: 24, stride: 2}
  - {op: ir, name: d, out: 24}
"""


def test_the_inverted_residual_shortcut_follows_the_input_channels() -> None:
    a = analyze_yaml(INVERTED)
    names = {x.name for x in a.layers}
    assert {"a.add", "d.add"} <= names and not {"b.add", "c.add"} & names
    # the expansion is sized by each block's own input: 16 -> 96, then 24 -> 144
    assert a.layer("a.expand").params == 16 * 96 and a.layer("b.expand").params == 16 * 96
    assert a.layer("c.expand").params == 24 * 144 and a.layer("d.expand").params == 24 * 144


def test_height_and_width_read_the_spatial_size() -> None:
    a = analyze_yaml(
        "inputs: {x: [3, 6, 10]}\nlayers:\n"
        "  - {op: conv2d, name: c, out: 4, kernel: 1}\n"
        "  - {op: avgpool2d, name: p, kernel: [height(c), width(c)]}\n"
        "  - {op: conv2d, name: fc, out: height(x) * width(x), kernel: 1}\n"
    )
    assert a.layer("p").output_shape == (4, 1, 1)
    assert a.layer("fc").output_shape == (60, 1, 1)


def test_a_layer_reads_a_named_layer_and_a_dotted_instance() -> None:
    a = analyze_yaml(
        "inputs: {x: [3, 4, 4]}\n"
        "blocks:\n  b: {params: {out: ~}, layers: [{op: conv2d, name: c, out: $out, kernel: 1}]}\n"
        "layers:\n"
        "  - {op: b, name: stage, repeat: 2, out: 5}\n"
        "  - {op: conv2d, name: head, out: channels(stage.0.c) + channels(x), kernel: 1}\n"
    )
    assert a.layer("head").output_shape == (8, 4, 4)


def test_when_and_trainable_accept_expressions() -> None:
    text = (
        "params: {finetune: false, bn: true}\ninputs: {x: [3, 4, 4]}\nlayers:\n"
        "  - {op: conv2d, name: c, out: 4, kernel: 1, bias: not $bn, trainable: $finetune}\n"
        "  - {op: batchnorm, name: n, when: $bn and channels(c) == 4}\n"
    )
    a = analyze_yaml(text)
    assert a.layer("c").params == 3 * 4 and a.layer("c").trainable_params == 0
    assert a.layer("n").params == 2 * 4
    b = analyze_yaml(text, finetune=True, bn=False)
    assert b.layer("c").params == 3 * 4 + 4 and b.layer("c").trainable_params == 16
    assert "n" not in {x.name for x in b.layers}


def test_an_unknown_name_has_a_did_you_mean_at_its_column() -> None:
    e = error_of(spec("inputs: {image: [3, 4, 4]}", "layers:", "  - {op: conv2d, out: channels(imag), kernel: 1}"))
    assert_at(e, 3, 23)
    assert "'imag'" in e.message and e.hint is not None and "'image'" in e.hint, e.format()


def test_a_cycle_through_a_forward_reference_is_named() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4, 8, 8]}",
            "blocks:",
            "  b: {layers: [{op: conv2d, name: c, out: channels(x), kernel: 1}]}",
            "layers:",
            "  - {op: b, name: one, inputs: two}",
            "  - {op: relu, name: two, inputs: one}",
        )
    )
    assert_at(e, 3, 43)  # the expression that needs the shape
    assert "one -> two -> one" in e.message and "not known yet" in e.message, e.format()


def test_a_forward_reference_without_a_cycle_says_it_is_written_later() -> None:
    e = error_of(
        spec(
            "inputs: {x: [4, 8, 8]}",
            "layers:",
            "  - {op: conv2d, name: a, inputs: x, out: channels(b), kernel: 1}",
            "  - {op: relu, name: b, inputs: x}",
        )
    )
    assert_at(e, 3, 43)
    assert "'b'" in e.message and "written after 'a'" in e.message and "->" not in e.message, e.format()


def test_a_shape_function_where_no_layer_is_in_sight_is_an_error() -> None:
    e = error_of(spec("params: {w: channels(x)}", "inputs: {x: [4, 8, 8]}", "layers: [relu]"))
    assert_at(e, 1, 13)
    assert "channels(x)" in e.message, e.format()


def test_height_of_a_flat_tensor_is_an_error() -> None:
    e = error_of(
        spec(
            "inputs: {x: [12]}",
            "layers:",
            "  - {op: linear, name: a, out: 4}",
            "  - {op: linear, name: b, out: height(a)}",
        )
    )
    assert "[4]" in e.message and "height" in e.message, e.format()


def test_a_block_no_longer_needs_its_input_channels_passed() -> None:
    # DenseNet-121's transitions keep half the channels: 256 -> 128, 512 -> 256, 1024 -> 512
    # (Huang et al., table 1; torchvision's num_features // 2), read from their inputs.
    a = netspec.analyze("densenet121", {"resolution": 64})
    assert [a.layer(f"features.transition{k}.conv").output_shape[0] for k in (1, 2, 3)] == [128, 256, 512]
    assert [a.layer(f"features.transition{k}.norm").output_shape[0] for k in (1, 2, 3)] == [256, 512, 1024]


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_mobilenet_v2_shortcuts_are_where_the_paper_puts_them(width: float) -> None:
    # the (t, c, n, s) table: a residual on every block but the first of each stage
    # (none on the stages of one block); torchvision numbers the 17 blocks of all
    # stages in one Sequential, features.1 .. features.17
    a = netspec.analyze("mobilenet_v2", {"resolution": 32, "width": width})
    adds = sorted(x.name for x in a.layers if x.op == "add")
    blocks = [1, 2, 3, 4, 3, 3, 1]
    first = [1 + sum(blocks[:k]) for k in range(len(blocks))]
    assert adds == sorted(f"features.{f + i}.add" for f, n in zip(first, blocks) for i in range(1, n))


def test_a_layer_cannot_read_its_own_shape() -> None:
    e = error_of(spec("inputs: {x: [4, 8, 8]}", "layers:", "  - {op: conv2d, name: c, out: channels(c), kernel: 1}"))
    assert_at(e, 3, 32)
    assert "'c' is the layer being defined" in e.message, e.format()
