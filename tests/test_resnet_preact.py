"""The pre-activation ResNet-50 spec (He et al., 2016, "Identity Mappings in Deep
Residual Networks"). It has no reference implementation to measure, so its shapes,
wiring and totals are checked against the architecture itself: the counts are
computed here from channel counts and spatial sizes, independently of netspec's ops."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import REPO

import netspec

SPEC = REPO / "specs" / "resnet50_preact.yaml"
STAGES = [(64, 3), (128, 4), (256, 6), (512, 3)]  # (bottleneck width, units) per stage
EXPANSION = 4


@pytest.fixture(scope="module")
def analysis() -> netspec.Analysis:
    return netspec.analyze(SPEC)


def hand_count(classes: int = 1000, resolution: int = 224) -> tuple[int, int]:
    """Params and MACs of the pre-activation ResNet-50 from its formulas: bias-free
    convs (params cout*cin*k*k, MACs that times the output's H*W), BN 2*C params."""
    params = macs = 0

    def conv(cin: int, cout: int, k: int, size_out: int) -> None:
        nonlocal params, macs
        params += cout * cin * k * k
        macs += cout * size_out * size_out * cin * k * k

    def bn(c: int) -> None:
        nonlocal params
        params += 2 * c

    size = (resolution + 2 * 3 - 7) // 2 + 1  # conv1 7x7/2, padding 3
    conv(3, 64, 7, size)
    bn(64)  # the stem's activation, which is also layer1.0's pre-activation
    size = (size + 2 * 1 - 3) // 2 + 1  # maxpool 3x3/2, padding 1
    cin = 64
    for stage, (mid, units) in enumerate(STAGES):
        out = mid * EXPANSION
        for unit in range(units):
            stride = 2 if unit == 0 and stage > 0 else 1
            size_out = (size - 1) // stride + 1  # 3x3 conv, padding 1
            if (stage, unit) != (0, 0):
                bn(cin)  # pre-activation of the unit
            conv(cin, mid, 1, size)
            bn(mid)
            conv(mid, mid, 3, size_out)  # the stride is on the 3x3
            bn(mid)
            conv(mid, out, 1, size_out)
            if unit == 0:
                conv(cin, out, 1, size_out)  # projection shortcut, no BN
            cin, size = out, size_out
    bn(cin)  # final BN before pooling
    params += cin * classes + classes  # fc with bias
    macs += cin * classes
    return params, macs


def test_hand_count_figures() -> None:
    assert hand_count() == (25_549_352, 4_089_184_256)


def test_totals_match_the_hand_count(analysis: netspec.Analysis) -> None:
    params, macs = hand_count()
    assert analysis.totals.params == params
    assert analysis.totals.macs == macs


def test_totals_follow_the_scaling_params() -> None:
    a = netspec.analyze(SPEC, {"classes": 10, "resolution": 160})
    assert (a.totals.params, a.totals.macs) == hand_count(classes=10, resolution=160)


def test_relation_to_torchvision_resnet50(analysis: netspec.Analysis, reference_models: dict[str, Any]) -> None:
    # the same convolutions; BNs moved before the convs (same channel total), and the
    # projection shortcuts lose their BN
    ref = reference_models["resnet50"]
    assert analysis.totals.macs == ref["macs"]
    assert analysis.totals.params == ref["params"] - 2 * (256 + 512 + 1024 + 2048)


def stage_layers(analysis: netspec.Analysis, prefix: str) -> list[netspec.LayerInfo]:
    return [x for x in analysis.layers if x.name.startswith(prefix + ".")]


def test_shapes_at_the_stage_boundaries(analysis: netspec.Analysis) -> None:
    assert analysis.layer("maxpool").output_shape == (64, 56, 56)
    expected = {"layer1": (256, 56, 56), "layer2": (512, 28, 28), "layer3": (1024, 14, 14), "layer4": (2048, 7, 7)}
    for stage, shape in expected.items():
        assert stage_layers(analysis, stage)[-1].output_shape == shape, stage
    assert analysis.layer("final_relu").output_shape == (2048, 7, 7)
    assert analysis.layer("avgpool").output_shape == (2048,)
    assert analysis.layer("fc").output_shape == (1000,)


def units(analysis: netspec.Analysis) -> list[str]:
    return [f"layer{s + 1}.{u}" for s, (_, n) in enumerate(STAGES) for u in range(n)]


def test_every_unit_ends_in_its_add(analysis: netspec.Analysis) -> None:
    names = [x.name for x in analysis.layers]
    for unit in units(analysis):
        last = stage_layers(analysis, unit)[-1]
        assert last.op == "add", unit  # nothing (no ReLU) after the addition
        follower = analysis.layers[names.index(last.name) + 1]
        assert follower.op == "batchnorm", unit  # the next unit's pre-activation, or the final BN
    assert len(units(analysis)) == 16
    assert not any(x.op == "relu" and x.inputs[0].endswith(("add", "add_identity")) for x in analysis.layers)


def test_summary_of_a_unit_ends_with_the_add(analysis: netspec.Analysis) -> None:
    table = netspec.format_analysis(analysis, "table").splitlines()
    rows = [line.split()[:2] for line in table if line.startswith("layer2.1.")]
    assert rows[0] == ["layer2.1.bn1", "batchnorm"]
    assert rows[-1][1] == "add"


def test_shortcuts(analysis: netspec.Analysis) -> None:
    previous = "maxpool"
    for unit in units(analysis):
        layers = stage_layers(analysis, unit)
        add = layers[-1]
        if unit.endswith(".0"):
            # projection: a bare 1x1 conv on the unit's pre-activated input
            preact = "maxpool" if unit == "layer1.0" else f"{unit}.relu1"
            assert analysis.layer(f"{unit}.downsample").inputs == (preact,)
            assert sorted(add.inputs) == sorted((f"{unit}.conv3", f"{unit}.downsample"))
            assert not any(x.name.startswith(f"{unit}.downsample") and x.op == "batchnorm" for x in layers)
        else:
            # identity: the previous unit's output, untouched
            assert sorted(add.inputs) == sorted((f"{unit}.conv3", previous))
            assert analysis.layer(f"{unit}.bn1").inputs == (previous,)
        previous = add.name
    assert analysis.layer("final_bn").inputs == (previous,)


def test_layer1_0_takes_the_activated_stem(analysis: netspec.Analysis) -> None:
    # the paper's first activation sits right after conv1, before the first split
    assert analysis.layer("layer1.0.conv1").inputs == ("maxpool",)
    assert analysis.layer("maxpool").inputs == ("relu",)
    assert analysis.layer("relu").inputs == ("bn1",)
    with pytest.raises(KeyError):
        analysis.layer("layer1.0.bn1")
