"""Every built-in spec against the reference figures measured on reference
implementations (tests/reference/models.json). A new spec in specs/ needs a reference
entry or a place in NO_EXTERNAL_REFERENCE, where the tests that check it are named."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, SHARED, reference

import netspec
from netspec import zoo

SPECS = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))
MODELS = reference("models.json")

#: specs without a reference implementation to measure, and what checks them instead
NO_EXTERNAL_REFERENCE = {
    "alexnet_paper": "the lecture notes' layer shapes and parameter count (test_alexnet_paper_follows_the_lecture_notes)",
    "resnet50_preact": "a hand count of every stage (tests/test_resnet_preact.py)",
}


def test_every_spec_has_a_reference_or_says_what_checks_it() -> None:
    unchecked = [name for name in SPECS if name not in MODELS and name not in NO_EXTERNAL_REFERENCE]
    assert not unchecked, f"add reference figures (tests/reference/models.json) for {unchecked}"
    assert not set(NO_EXTERNAL_REFERENCE) & set(MODELS)


def test_zoo_lists_the_repository_specs() -> None:
    assert zoo.names() == SPECS
    assert {"lenet5", "alexnet", "alexnet_paper", "vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"} <= set(SPECS)


@pytest.mark.parametrize("name", [name for name in SPECS if name in MODELS])
def test_spec_matches_reference(name: str) -> None:
    a = netspec.analyze(REPO / "specs" / f"{name}.yaml")
    ref = MODELS[name]
    assert list(next(iter(a.inputs.values()))) == ref["input"]
    assert a.totals.params == ref["params"]
    assert a.totals.macs == ref["macs"]


def test_alexnet_paper_follows_the_lecture_notes() -> None:
    a = netspec.analyze("alexnet_paper")
    assert a.totals.params == 62_378_344
    shapes = {x.name: x.output_shape for x in a.layers}
    # the notes give H x W x C; netspec shapes are [C, H, W]
    assert shapes["conv1"] == (96, 55, 55)
    assert shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27)
    assert shapes["conv3"] == (384, 13, 13)
    assert shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13)
    assert shapes["pool5"] == (256, 6, 6)
    assert shapes["fc6"] == (4096,)


def test_vgg16_bn_counts_running_statistics_as_buffers() -> None:
    plain = netspec.analyze("vgg16").totals
    bn = netspec.analyze("vgg16_bn").totals
    channels = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512  # 13 batchnorm layers
    assert bn.params - plain.params == 2 * channels  # weight and bias
    assert bn.buffers == 2 * channels + 13  # running mean, var and num_batches_tracked
    assert plain.buffers == 0


def test_variables_rescale_a_zoo_model() -> None:
    a = netspec.analyze("vgg16", {"classes": 10, "resolution": 32})
    assert a.layers[-1].output_shape == (10,)
    assert a.layer("features.30").output_shape == (512, 1, 1)  # pool5
    assert a.layer("avgpool").output_shape == (512, 7, 7)  # adaptive pooling upsamples 1x1 to 7x7


@pytest.mark.parametrize("name", ["models.json", "state_dict_keys.json"])
def test_the_projects_copy_of_the_reference_figures_agrees_with_the_shared_one(name: str) -> None:
    upstream = SHARED / "reference" / name
    if not upstream.is_file():  # the tests need only the project's copy; this checks it has not drifted
        pytest.skip(f"no shared reference folder beside the clone ({upstream})")
    ours, theirs = reference(name), json.loads(upstream.read_text())
    assert {k: v for k, v in theirs.items() if k in ours} == ours


def test_nasnet_a_large_stages_are_timms_feature_maps() -> None:
    """timm's nasnetalarge lists its feature maps (feature_info: channels at strides 2,
    4, 8, 16, 32) and pools an 11x11 map (default_cfg pool_size) at 331x331."""
    shapes = {x.name: x.output_shape for x in netspec.analyze("nasnet_a_large").layers}
    assert shapes["conv0.bn"] == (96, 165, 165)  # stride 2
    assert shapes["cell_stem_0.concat"] == (168, 83, 83)  # stride 4
    assert shapes["cell_5.concat"] == (1008, 42, 42)  # stride 8
    assert shapes["cell_11.concat"] == (2016, 21, 21)  # stride 16
    assert shapes["act"] == (4032, 11, 11)  # stride 32


#: the convolutions per stage of VGG's configurations A, B, D and E (Simonyan &
#: Zisserman, 2014, table 1); the stages have 64, 128, 256, 512 and 512 channels
VGG_CONFIGURATIONS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}


def _labelled_layers(name: str) -> dict[str, netspec.LayerInfo]:
    """The layers by their labels (``conv5_3``)."""
    a = netspec.analyze(name)
    return {a.graph[x.name].label: x for x in a.layers if a.graph[x.name].label}


@pytest.mark.parametrize("name", [*VGG_CONFIGURATIONS, "vgg16_bn"])
def test_vgg_labels_give_the_papers_layer_names(name: str) -> None:
    # the specs number their layers as torchvision does (features.28); the label
    # of each names it as the paper does (conv5_3), and must name the right layer
    stages = VGG_CONFIGURATIONS[name.removesuffix("_bn")]
    named = _labelled_layers(name)
    for s, (convs, channels) in enumerate(zip(stages, (64, 128, 256, 512, 512)), 1):
        for k in range(1, convs + 1):
            conv = named.pop(f"conv{s}_{k}")
            assert (conv.op, conv.output_shape) == ("conv2d", (channels, 224 >> (s - 1), 224 >> (s - 1)))
            if name.endswith("_bn"):
                bn = named.pop(f"bn{s}_{k}")
                assert bn.op == "batchnorm" and bn.inputs == (conv.name,)
        pool = named.pop(f"pool{s}")
        assert (pool.op, pool.output_shape) == ("maxpool2d", (channels, 224 >> s, 224 >> s))
    fc6, fc7, fc8 = (named.pop(fc) for fc in ("fc6", "fc7", "fc8"))
    assert [(fc.op, fc.output_shape) for fc in (fc6, fc7, fc8)] == [("linear", (4096,))] * 2 + [("linear", (1000,))]
    assert fc8.name == "classifier.6"  # torchvision's last Linear
    assert not any(k.startswith(("conv", "bn", "pool", "fc")) for k in named)  # no name left over


def test_alexnet_labels_give_the_usual_layer_names() -> None:
    named = _labelled_layers("alexnet")
    # torchvision's variant: 64-192-384-256-256 channels, 55 -> 27 -> 13 -> 6 pixels
    expected = {
        "conv1": ("conv2d", (64, 55, 55)),
        "pool1": ("maxpool2d", (64, 27, 27)),
        "conv2": ("conv2d", (192, 27, 27)),
        "pool2": ("maxpool2d", (192, 13, 13)),
        "conv3": ("conv2d", (384, 13, 13)),
        "conv4": ("conv2d", (256, 13, 13)),
        "conv5": ("conv2d", (256, 13, 13)),
        "pool5": ("maxpool2d", (256, 6, 6)),
        "fc6": ("linear", (4096,)),
        "fc7": ("linear", (4096,)),
        "fc8": ("linear", (1000,)),
    }
    assert {k: (v.op, v.output_shape) for k, v in named.items() if k in expected} == expected
