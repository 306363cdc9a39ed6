"""The variants of specs/efficientnet_b0.yaml against the reference figures of the
other EfficientNets (test_zoo checks each spec's default only, by file stem)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import REPO

import netspec

EFFICIENTNET = REPO / "specs" / "efficientnet_b0.yaml"


@pytest.mark.parametrize("variant", ["b0", "b1", "b3"])
def test_efficientnet_variant_matches_reference(variant: str, reference_models: dict[str, Any]) -> None:
    ref = reference_models[f"efficientnet_{variant}"]
    a = netspec.analyze(EFFICIENTNET, {"variant": variant})
    assert list(a.inputs["image"]) == ref["input"]
    assert a.totals.params == ref["params"]
    assert a.totals.macs == ref["macs"]


def test_efficientnet_variant_values_can_be_overridden() -> None:
    a = netspec.analyze(EFFICIENTNET, {"variant": "b3", "resolution": 320, "classes": 10})
    assert a.inputs["image"] == (3, 320, 320)
    assert a.layers[-1].output_shape == (10,)


def test_efficientnet_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(netspec.SpecError) as info:
        netspec.analyze(EFFICIENTNET, {"variant": "b9"})
    message = info.value.message
    assert "b9" in message
    for known in ("b0", "b1", "b3"):
        assert known in message
