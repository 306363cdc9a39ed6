"""The worked examples of the CNN lecture notes, reproduced through the public API."""

from __future__ import annotations

import pytest
from conftest import analyze_yaml


def test_6x6_input_with_3x3_filter_gives_4x4() -> None:
    a = analyze_yaml("""
        inputs: {x: [1, 6, 6]}
        layers: [{op: conv2d, out: 1, kernel: 3}]
    """)
    assert a.layers[-1].output_shape == (1, 4, 4)


def test_7x7_input_with_3x3_filter_and_stride_2_gives_3x3() -> None:
    a = analyze_yaml("""
        inputs: {x: [1, 7, 7]}
        layers: [{op: conv2d, out: 1, kernel: 3, stride: 2}]
    """)
    assert a.layers[-1].output_shape == (1, 3, 3)


@pytest.mark.parametrize("f", [1, 3, 5, 7])
def test_same_padding_keeps_the_size(f: int) -> None:
    p = (f - 1) // 2  # p = (f - 1) / 2 for odd f
    a = analyze_yaml(f"""
        inputs: {{x: [3, 6, 6]}}
        layers:
          - {{op: conv2d, name: same, out: 4, kernel: {f}, padding: same}}
          - {{op: conv2d, name: explicit, out: 4, kernel: {f}, padding: {p}}}
    """)
    assert a.layer("same").output_shape == (4, 6, 6)
    assert a.layer("explicit").output_shape == (4, 6, 6)


def test_10_filters_of_3x3x3_have_280_parameters() -> None:
    a = analyze_yaml("""
        inputs: {x: [3, 32, 32]}
        layers: [{op: conv2d, out: 10, kernel: 3}]
    """)
    assert a.layers[-1].params == 280  # (3*3*3 + 1) * 10


def test_6_filters_of_5x5_on_one_channel_have_156_parameters() -> None:
    a = analyze_yaml("""
        inputs: {x: [1, 32, 32]}
        layers: [{op: conv2d, out: 6, kernel: 5}]
    """)
    assert a.layers[-1].params == 156  # (5*5 + 1) * 6


def test_cost_of_a_5x5_convolution_and_of_a_1x1_bottleneck() -> None:
    direct = analyze_yaml("""
        inputs: {x: [192, 28, 28]}
        layers: [{op: conv2d, name: conv5x5, out: 32, kernel: 5, padding: same}]
    """)
    assert direct.layer("conv5x5").output_shape == (32, 28, 28)
    assert direct.layer("conv5x5").macs == 120_422_400

    bottleneck = analyze_yaml("""
        inputs: {x: [192, 28, 28]}
        layers:
          - {op: conv2d, name: reduce, out: 16, kernel: 1}
          - {op: conv2d, name: conv5x5, out: 32, kernel: 5, padding: same}
    """)
    assert bottleneck.layer("reduce").macs == 2_408_448
    assert bottleneck.layer("conv5x5").macs == 10_035_200
    assert bottleneck.totals.macs == 12_443_648


def test_depthwise_separable_convolution_costs_less() -> None:
    normal = analyze_yaml("""
        inputs: {x: [3, 6, 6]}
        layers: [{op: conv2d, out: 5, kernel: 3}]
    """)
    assert normal.layers[-1].output_shape == (5, 4, 4)
    assert normal.layers[-1].macs == 2_160

    separable = analyze_yaml("""
        inputs: {x: [3, 6, 6]}
        layers:
          - {op: conv2d, name: depthwise, kernel: 3, groups: depthwise}
          - {op: conv2d, name: pointwise, out: 5, kernel: 1}
    """)
    assert separable.layer("depthwise").output_shape == (3, 4, 4)
    assert separable.layer("depthwise").macs == 432
    assert separable.layer("pointwise").macs == 240
    assert separable.totals.macs == 672


def test_fully_connected_layer_from_32x32x3_to_28x28x6_units() -> None:
    a = analyze_yaml("""
        inputs: {x: [3, 32, 32]}
        layers:
          - flatten
          - {op: linear, name: fc, out: 4704, bias: false}    # 28 * 28 * 6 units
    """)
    assert a.layer("fc").params == 14_450_688
