"""Graphs beyond a chain: residual, dense and parallel connections, gating, depthwise
convolutions, forward references, several and optional outputs.

Every expected shape and count is worked out by hand in the comments beside it
(conv params: out * in/groups * kh * kw + bias; MACs: output elements * in/groups * kh * kw).
"""

from __future__ import annotations

from conftest import analyze_yaml

import netspec


def params_of(a: netspec.Analysis, *names: str) -> int:
    return sum(a.layer(n).params for n in names)


def test_residual_identity_and_projection_shortcuts() -> None:
    a = analyze_yaml("""
        inputs: {x: [4, 8, 8]}
        blocks:
          res:
            params: {out: ~, stride: 1, project: false}
            layers:
              - {op: conv2d, name: conv1, out: $out, kernel: 3, stride: $stride, padding: 1, bias: false}
              - {op: conv2d, name: conv2, out: $out, kernel: 3, padding: 1, bias: false}
              - {op: conv2d, name: downsample, inputs: x, out: $out, kernel: 1, stride: $stride, bias: false, when: $project}
              - {op: add, name: add, inputs: [conv2, downsample]}
        layers:
          - {op: res, name: layer1, out: 4}
          - {op: res, name: layer2, repeat: 2, out: 8, overrides: {0: {stride: 2, project: true}}}
    """)
    names = {x.name for x in a.layers}
    assert "layer1.downsample" not in names and "layer2.1.downsample" not in names
    # identity: the shortcut is the block's input
    assert a.layer("layer1.add").inputs == ("layer1.conv2", "x")
    assert a.layer("layer1.add").output_shape == (4, 8, 8)
    # projection: a strided 1x1 convolution of the block's input
    assert a.layer("layer2.0.downsample").inputs == ("layer1.add",)
    assert a.layer("layer2.0.downsample").output_shape == (8, 4, 4)
    assert a.layer("layer2.0.add").inputs == ("layer2.0.conv2", "layer2.0.downsample")
    assert a.layer("layer2.1.add").inputs == ("layer2.1.conv2", "layer2.0.add")
    assert a.layer("layer2.1.add").output_shape == (8, 4, 4)
    assert a.outputs == ["layer2.1.add"]
    # params: layer1 2 * 4*4*9; layer2.0 8*4*9 + 8*8*9 + 8*4; layer2.1 2 * 8*8*9
    assert a.layer("layer2.0.downsample").params == 32
    assert a.totals.params == 2 * 144 + (288 + 576 + 32) + 2 * 576 == 2336
    # MACs: layer1 2 * (4*8*8 * 4*9); layer2.0 (8*4*4 * 4*9) + (8*4*4 * 8*9) + (8*4*4 * 4);
    # layer2.1 2 * (8*4*4 * 8*9)
    assert a.totals.macs == 2 * 9216 + 4608 + 9216 + 512 + 2 * 9216 == 51200


def test_dense_connectivity_grows_channels_by_the_growth_rate() -> None:
    a = analyze_yaml("""
        params: {growth: 3}
        inputs: {x: [5, 6, 6]}
        blocks:
          dense:
            layers:
              - {op: conv2d, name: conv, out: $growth, kernel: 3, padding: 1}
              - {op: concat, name: cat, inputs: [x, conv]}
        layers:
          - {op: dense, name: block, repeat: 4}
    """)
    # c0 + n * g = 5 + 4 * 3
    assert a.layer("block.3.cat").output_shape == (17, 6, 6)
    assert [a.layer(f"block.{i}.cat").output_shape[0] for i in range(4)] == [8, 11, 14, 17]
    assert a.layer("block.2.cat").inputs == ("block.1.cat", "block.2.conv")
    # conv i sees 5 + 3i channels: sum of 3 * (5 + 3i) * 9 + 3 over i = 0..3
    assert a.totals.params == 27 * (5 + 8 + 11 + 14) + 4 * 3 == 1038


def test_inception_branches_concatenate_their_channels() -> None:
    a = analyze_yaml("""
        inputs: {x: [8, 12, 12]}
        blocks:
          inception:
            params: {c1: ~, c3r: ~, c3: ~, c5r: ~, c5: ~, pool: ~}
            layers:
              - {op: conv2d, name: b1, out: $c1, kernel: 1}
              - {op: conv2d, name: b2a, inputs: x, out: $c3r, kernel: 1}
              - {op: conv2d, name: b2b, out: $c3, kernel: 3, padding: 1}
              - {op: conv2d, name: b3a, inputs: x, out: $c5r, kernel: 1}
              - {op: conv2d, name: b3b, out: $c5, kernel: 5, padding: 2}
              - {op: maxpool2d, name: b4a, inputs: x, kernel: 3, stride: 1, padding: 1}
              - {op: conv2d, name: b4b, out: $pool, kernel: 1}
              - {op: concat, name: cat, inputs: [b1, b2b, b3b, b4b]}
        layers:
          - {op: inception, name: mixed1, c1: 2, c3r: 3, c3: 4, c5r: 1, c5: 5, pool: 6}
          - {op: inception, name: mixed2, c1: 1, c3r: 1, c3: 1, c5r: 1, c5: 1, pool: 1}
    """)
    assert a.layer("mixed1.cat").output_shape == (2 + 4 + 5 + 6, 12, 12)
    assert a.layer("mixed1.b4a").inputs == ("x",)
    assert a.layer("mixed2.b2a").inputs == ("mixed1.cat",)
    assert a.layer("mixed2.cat").output_shape == (4, 12, 12)
    # b1 2*8+2, b2a 3*8+3, b2b 4*3*9+4, b3a 1*8+1, b3b 5*1*25+5, b4b 6*8+6
    mixed1 = [n for n in (x.name for x in a.layers) if n.startswith("mixed1.")]
    assert params_of(a, *mixed1) == 18 + 27 + 112 + 9 + 130 + 54 == 350


def test_squeeze_and_excitation_keeps_the_input_shape() -> None:
    a = analyze_yaml("""
        inputs: {x: [16, 5, 5]}
        blocks:
          se:
            params: {c: ~, reduce: 4}
            layers:
              - {op: global_avgpool, name: squeeze}
              - {op: conv2d, name: fc1, out: $c // $reduce, kernel: 1}
              - {op: relu, name: act}
              - {op: conv2d, name: fc2, out: $c, kernel: 1}
              - {op: sigmoid, name: gate}
              - {op: multiply, name: scale, inputs: [x, gate]}
        layers:
          - {op: se, name: se, c: 16}
    """)
    assert a.layer("se.squeeze").output_shape == (16, 1, 1)
    assert a.layer("se.fc1").output_shape == (4, 1, 1)
    assert a.layer("se.gate").output_shape == (16, 1, 1)
    assert a.layer("se.scale").inputs == ("x", "se.gate")
    assert a.layer("se.scale").output_shape == (16, 5, 5)
    # fc1 4*16+4, fc2 16*4+16; MACs 4*16 + 16*4 (pooling and gating count none)
    assert a.totals.params == 68 + 80
    assert a.totals.macs == 64 + 64


def test_depthwise_separable_convolution() -> None:
    a = analyze_yaml("""
        inputs: {x: [8, 10, 10]}
        layers:
          - {op: conv2d, name: dw, groups: depthwise, kernel: 3, padding: 1, bias: false}
          - {op: conv2d, name: pw, out: 16, kernel: 1, bias: false}
          - {op: conv2d, name: dw2, groups: depthwise, kernel: 3, stride: 2, padding: 1}
          - {op: conv2d, name: dw_mult, groups: depthwise, out: 32, kernel: 3, padding: 1, bias: false}
    """)
    dw, pw, dw2, mult = (a.layer(n) for n in ("dw", "pw", "dw2", "dw_mult"))
    assert dw.output_shape == (8, 10, 10)  # out defaults to the input channels
    assert (dw.params, dw.macs) == (8 * 1 * 9, 8 * 100 * 9)
    assert (pw.params, pw.macs) == (16 * 8, 16 * 100 * 8)
    assert dw2.output_shape == (16, 5, 5)
    assert (dw2.params, dw2.macs) == (16 * 9 + 16, 16 * 25 * 9)
    # a channel multiplier of 2: each of the 16 groups makes 2 channels from 1
    assert mult.output_shape == (32, 5, 5)
    assert (mult.params, mult.macs) == (32 * 1 * 9, 32 * 25 * 9)


def test_inverted_residual_adds_only_when_stride_1_and_channels_equal() -> None:
    a = analyze_yaml("""
        inputs: {x: [8, 8, 8]}
        blocks:
          mbconv:
            params: {cin: ~, out: ~, stride: 1, expand: 4}
            layers:
              - {op: conv2d, name: expand, out: $cin * $expand, kernel: 1, bias: false, when: $expand != 1}
              - {op: relu6, name: act1}
              - {op: conv2d, name: dw, groups: depthwise, kernel: 3, stride: $stride, padding: 1, bias: false}
              - {op: relu6, name: act2}
              - {op: conv2d, name: project, out: $out, kernel: 1, bias: false}
              - {op: add, name: add, inputs: [project, x], when: $stride == 1 and $cin == $out}
        layers:
          - {op: mbconv, name: b1, cin: 8, out: 8}
          - {op: mbconv, name: b2, cin: 8, out: 12}
          - {op: mbconv, name: b3, cin: 12, out: 12, stride: 2}
          - {op: mbconv, name: b4, cin: 12, out: 12, expand: 1}
    """)
    names = {x.name for x in a.layers}
    assert {"b1.add", "b4.add"} <= names
    assert not {"b2.add", "b3.add", "b4.expand"} & names
    assert a.layer("b1.add").inputs == ("b1.project", "x")
    assert a.layer("b2.expand").inputs == ("b1.add",)  # b1's output is its add
    assert a.layer("b3.expand").inputs == ("b2.project",)  # b2's output is its projection
    assert a.layer("b4.act1").inputs == ("b3.project",)  # no expansion: act1 reads the block input
    assert a.layer("b4.add").inputs == ("b4.project", "b3.project")
    assert a.layer("b3.dw").output_shape == (48, 4, 4)
    assert a.layer("b4.add").output_shape == (12, 4, 4)
    # b1: 32*8 + 32*9 + 8*32; b2: 32*8 + 32*9 + 12*32; b3: 48*12 + 48*9 + 12*48; b4: 12*9 + 12*12
    assert a.totals.params == (256 + 288 + 256) + (256 + 288 + 384) + (576 + 432 + 576) + (108 + 144) == 3564


def test_dag_with_forward_references() -> None:
    a = analyze_yaml("""
        inputs: {x: [4, 6, 6]}
        layers:
          - {op: concat, name: out, inputs: [a, c]}
          - {op: conv2d, name: c, inputs: b, out: 3, kernel: 1}
          - {op: conv2d, name: a, inputs: x, out: 2, kernel: 3, padding: 1}
          - {op: relu, name: b, inputs: a}
        outputs: [out]
    """)
    assert [x.name for x in a.layers] == ["x", "a", "b", "c", "out"]
    assert a.layer("out").output_shape == (5, 6, 6)
    assert a.outputs == ["out"]


def test_forward_references_inside_a_block() -> None:
    a = analyze_yaml("""
        inputs: {x: [4, 6, 6]}
        blocks:
          b:
            layers:
              - {op: add, name: sum, inputs: [left, right]}
              - {op: conv2d, name: left, inputs: x, out: 4, kernel: 1}
              - {op: relu, name: right, inputs: x}
            output: sum
        layers:
          - {op: b, name: blk, repeat: 2}
    """)
    assert [x.name for x in a.layers] == [
        "x",
        "blk.0.left",
        "blk.0.right",
        "blk.0.sum",
        "blk.1.left",
        "blk.1.right",
        "blk.1.sum",
    ]
    assert a.layer("blk.1.left").inputs == ("blk.0.sum",)
    assert a.outputs == ["blk.1.sum"]


def test_several_outputs_name_layers_and_block_instances() -> None:
    a = analyze_yaml("""
        inputs: {x: [4, 6, 6]}
        blocks:
          b:
            layers:
              - {op: conv2d, name: conv, out: 2, kernel: 1}
              - {op: relu, name: act}
        layers:
          - {op: b, name: stage, repeat: 2}
          - {op: global_avgpool, name: head, flatten: true}
        outputs: [head, stage.0, stage, stage.1.conv]
    """)
    assert a.outputs == ["head", "stage.0.act", "stage.1.act", "stage.1.conv"]


def test_the_same_output_twice_is_kept_once() -> None:
    a = analyze_yaml("""
        inputs: {x: [4]}
        blocks:
          b: {layers: [{op: relu, name: act}]}
        layers:
          - {op: b, name: blk}
        outputs: [blk, blk.act]
    """)
    assert a.outputs == ["blk.act"]


def test_optional_outputs_are_dropped_when_left_out() -> None:
    text = """
        params: {aux: false}
        inputs: {x: [4, 8, 8]}
        blocks:
          head:
            layers:
              - {op: global_avgpool, name: pool, flatten: true}
              - {op: linear, name: fc, out: 3}
        layers:
          - {op: conv2d, name: body, out: 4, kernel: 1}
          - {op: head, name: aux_head, when: $aux}
          - {op: global_avgpool, name: aux_pool, inputs: body, flatten: true, when: $aux}
          - {op: head, name: main_head, inputs: body}
        outputs: [main_head, aux_head, aux_pool]
    """
    off = analyze_yaml(text)
    assert off.outputs == ["main_head.fc"]
    assert off.totals.params == (4 * 4 + 4) + (3 * 4 + 3)
    on = analyze_yaml(text, aux=True)
    assert on.outputs == ["main_head.fc", "aux_head.fc", "aux_pool"]
    assert on.layer("aux_head.pool").inputs == ("body",)
    assert on.totals.params == (4 * 4 + 4) + 2 * (3 * 4 + 3)
