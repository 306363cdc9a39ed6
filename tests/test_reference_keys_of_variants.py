"""A spec's variables reach the other reference models of its family with their
checkpoint keys too: efficientnet_b0 set to b1 or b3 has torchvision's efficientnet_b1
or _b3 keys, densenet121 with DenseNet-169's or -201's block sizes has theirs
(``tests/reference/state_dict_keys.json``), one for one and in order, so those
checkpoints load by name."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import reference

import netspec

torch = pytest.importorskip("torch")
pytest.importorskip("netspec.backends.torch")

KEYS = reference("state_dict_keys.json")


def keys_of(name: str, **params: Any) -> list[str]:
    return list(netspec.compile(name, device="meta", **params).state_dict())


def reference_keys(name: str) -> list[str]:
    return [k for k, _ in KEYS[name]]


@pytest.mark.parametrize("variant", ["b1", "b3"])
def test_an_efficientnet_variant_has_the_reference_keys(variant: str) -> None:
    assert keys_of("efficientnet_b0", variant=variant) == reference_keys(f"torchvision.efficientnet_{variant}")


# torchvision's block_config of DenseNet-169 and -201 (Huang et al., table 1)
@pytest.mark.parametrize(("other", "blocks"), [("densenet169", (6, 12, 32, 32)), ("densenet201", (6, 12, 48, 32))])
def test_densenet121_with_other_block_sizes_has_their_keys(other: str, blocks: tuple[int, ...]) -> None:
    sizes = {f"block{k + 1}": n for k, n in enumerate(blocks)}
    assert keys_of("densenet121", **sizes) == reference_keys(f"torchvision.{other}")


def test_a_dense_block_longer_than_any_torchvision_one_still_has_every_layer() -> None:
    # 50 layers of growth 32 on 64 stem channels: 64 + 50 * 32 = 1664 before transition1
    a = netspec.analyze("densenet121", {"block1": 50, "resolution": 32})
    dense = [x.name for x in a.layers if x.name.startswith("features.denseblock1.") and x.op == "concat"]
    assert dense == [f"features.denseblock1.denselayer{j}.concat" for j in range(1, 51)]  # torchvision's names, on
    assert a.layer("features.transition1.norm").output_shape[0] == 64 + 50 * 32
