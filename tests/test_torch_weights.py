"""Weights: ``netspec.load_weights`` against the reference implementations' key and
shape lists (``tests/reference/state_dict_keys.json``), and numerically against
hand-written torchvision-style modules (``torch_references.py``): same weights in,
same outputs out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, reference, small_zoo

import netspec

torch = pytest.importorskip("torch")
pytest.importorskip("netspec.backends.torch")
from torch_references import REFERENCES, build_reference  # noqa: E402 (needs torch)

ZOO = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))

#: reference name -> spec stem, where the stem is not the reference's own name
STEMS = {
    "timm.seresnet50": "se_resnet50",
    "timm.mobilenetv1_100": "mobilenet_v1",
    "timm.legacy_xception": "xception",
    "timm.nasnetalarge": "nasnet_a_large",
}


def stem(reference: str) -> str:
    return STEMS.get(reference, reference.split(".", 1)[1])


KEYS = {stem(name): [(k, list(s)) for k, s in entries] for name, entries in reference("state_dict_keys.json").items()}


@pytest.fixture(scope="module")
def keys() -> dict[str, list[tuple[str, list[int]]]]:
    return KEYS


def empty_model(name: str, **params: Any) -> Any:
    """The compiled model with uninitialised memory (built on meta: no init cost)."""
    return netspec.compile(name, device="meta", **params).to_empty(device="cpu")


def numbered(entries: list[tuple[str, list[int]]]) -> dict[str, Any]:
    """A checkpoint with the reference's keys and shapes, tensor i filled with i."""
    return {k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(entries)}


@pytest.mark.parametrize("name", [n for n in ZOO if n in KEYS] or ["(no reference keys)"])
def test_reference_checkpoint_loads(name: str, keys: dict[str, list[tuple[str, list[int]]]]) -> None:
    model = empty_model(name)
    entries = keys[name]
    mapping = netspec.load_weights(model, numbered(entries))
    state = model.state_dict()
    assert len(state) == len(entries)
    # The reference lists its tensors in module order, as PyTorch does: tensor i of the
    # model must have received tensor i of the reference.
    for i, (key, value) in enumerate(state.items()):
        assert list(value.shape) == entries[i][1], key
        assert float(value.reshape(-1)[0]) == i, f"'{key}' got '{mapping[key]}', expected '{entries[i][0]}'"


@pytest.mark.parametrize("name", [n for n in ZOO if n in KEYS])
def test_a_reference_checkpoint_loads_by_name(name: str, keys: dict[str, list[tuple[str, list[int]]]]) -> None:
    """Every zoo spec with a reference names its layers as the reference's modules, so
    its state_dict keys are the reference's, one for one (loading by order would check
    only the shapes: two swapped layers of one shape would load silently)."""
    assert list(empty_model(name).state_dict()) == [k for k, _ in keys[name]]


def test_a_mismatch_names_the_first_mismatching_key_and_both_shapes(keys: Any) -> None:
    model = empty_model("vgg11")
    entries = keys["vgg16"]
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    i = next(i for i, (a, b) in enumerate(zip(ours, entries)) if a[1] != b[1])
    with pytest.raises(netspec.SpecError) as e:
        netspec.load_weights(model, numbered(entries))
    message = e.value.message
    assert f"model key '{ours[i][0]}' has shape {ours[i][1]}" in message
    assert f"checkpoint key '{entries[i][0]}' (matched by position) has shape {entries[i][1]}" in message


def test_a_mismatch_by_name() -> None:
    model = netspec.compile("lenet5", classes=10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc3.weight"] = torch.zeros(7, 84)
    with pytest.raises(netspec.SpecError, match=r"model key 'fc3.weight' has shape \[10, 84\] but checkpoint key "
                       r"'fc3.weight' \(matched by name\) has shape \[7, 84\]"):  # fmt: skip
        netspec.load_weights(model, state)


def test_missing_and_extra_tensors_are_named() -> None:
    model = netspec.compile("lenet5")
    state = dict(model.state_dict())
    fewer = {k: v for k, v in state.items() if k != "fc3.bias"}
    with pytest.raises(netspec.SpecError, match=r"no tensor for model key 'fc3.bias' \(shape \[10\]\)"):
        netspec.load_weights(model, fewer)
    more = {**state, "extra.weight": torch.zeros(3)}
    with pytest.raises(netspec.SpecError, match=r"checkpoint key 'extra.weight' \(shape \[3\]\) has no counterpart"):
        netspec.load_weights(model, more)


def test_weights_from_a_file_and_compile_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a = netspec.compile("lenet5")
    path = tmp_path / "lenet.pt"
    torch.save({"state_dict": a.state_dict(), "epoch": 3}, path)  # a common checkpoint layout
    b = netspec.compile("lenet5", weights=path)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(netspec.SpecError, match="no such weights file") as e:
        netspec.compile("lenet5", weights=tmp_path / "missing.pt")
    assert e.value.location is not None and e.value.location.path.endswith("missing.pt")


def test_checkpoints_without_batch_counters_load() -> None:
    model = netspec.compile("vgg16_bn", classes=10, resolution=32, device="meta")
    state = {k: torch.zeros(v.shape) for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    model = model.to_empty(device="cpu")
    netspec.load_weights(model, state)


# --- numerical parity with hand-written modules -----------------------------------

# Models cheap enough for the test suite at a small resolution; the benchmark
# (benchmarks/bench_torch.py) runs the large ones at full size.
NUMERIC = [
    *("alexnet", "vgg16_bn", "resnet18", "mobilenet_v2", "densenet121", "squeezenet1_0", "squeezenet1_1"),
    *("resnext50_32x4d", "wide_resnet50_2", "mnasnet1_0", "mobilenet_v3_large", "mobilenet_v3_small"),
    *("shufflenet_v2_x1_0", "nasnet_a_large"),
]


def random_reference(name: str) -> Any:
    """The hand-written module with random weights and batch-norm statistics, built on
    the meta device and filled once (cheaper than initialising twice)."""
    with torch.device("meta"):
        ref = build_reference(name, classes=10)
    ref = ref.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.zero_()
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                bound = (3 / (m.weight[0].numel())) ** 0.5  # keeps activations in scale
                m.weight.uniform_(-bound, bound)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
    return ref


@pytest.mark.parametrize("name", [n for n in NUMERIC if n in ZOO and n in REFERENCES])
def test_same_weights_same_outputs_as_a_hand_written_module(name: str) -> None:
    ref = random_reference(name)
    a = small_zoo(name)  # 10 classes, the smallest resolution the architecture takes
    model = netspec.compile(a, device="meta").to_empty(device="cpu")
    netspec.load_weights(model, ref.state_dict())
    x = torch.randn(2, *a.inputs[a.graph.inputs[0]])
    ref.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)
    # training mode: batch statistics, dropout with the same random numbers
    ref.train()
    model.train()
    torch.manual_seed(1)
    y_ref = ref(x)
    torch.manual_seed(1)
    y = model(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for (k, v), w in zip(model.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)  # running statistics updated alike


def test_shufflenet_stage_widths_are_torchvisions_stages_out_channels() -> None:
    """The 0.5x ShuffleNetV2 through the spec's variables: same function as the
    hand-written module built with torchvision's stages_out_channels for 0.5x."""
    torch.manual_seed(0)
    ref = REFERENCES["shufflenet_v2_x1_0"](classes=10, channels=(24, 48, 96, 192, 1024)).eval()
    widths = {"stage2": 48, "stage3": 96, "stage4": 192, "classes": 10, "resolution": 64}
    model = netspec.compile("shufflenet_v2_x1_0", widths).eval()
    mapping = netspec.load_weights(model, ref.state_dict())
    assert all(k == v for k, v in mapping.items())  # by name
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)


def test_compile_says_when_a_checkpoint_loads_by_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint of another implementation, which names ResNet-18's projections
    'downsample.conv'/'.bn' where the spec (as torchvision) says 'downsample.0'/'.1':
    those load by order and shape, and compile says so; a checkpoint of the spec's own
    names loads silently."""
    from netspec.cli import main

    names = {".downsample.0.": ".downsample.conv.", ".downsample.1.": ".downsample.bn."}
    entries = []
    for key, shape in KEYS["resnet18"]:
        for old, new in names.items():
            key = key.replace(old, new)
        entries.append((key, shape))
    torch.save(numbered(entries), tmp_path / "other.pt")
    assert main(["compile", "resnet18", "-o", str(tmp_path / "a.pt"), "--weights", str(tmp_path / "other.pt")]) == 0
    differ = [k for k, _ in entries if k not in empty_model("resnet18").state_dict()]
    assert len(differ) == 3 * 6  # 3 projections: a conv weight and 5 batch-norm tensors each
    err = capsys.readouterr().err
    assert f"note: {len(differ)} of {len(entries)} tensors loaded by order and shape, not by name" in err, err
    assert main(["compile", "resnet18", "-o", str(tmp_path / "b.pt"), "--weights", str(tmp_path / "a.pt")]) == 0
    assert "by order" not in capsys.readouterr().err
    report = netspec.load_weights(empty_model("resnet18"), tmp_path / "other.pt", strict=False)
    assert ("  by order", len(differ)) == report.rows()[1][:2]
