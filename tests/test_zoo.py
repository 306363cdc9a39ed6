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
