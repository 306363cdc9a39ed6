"""Transfer learning: partial weight loading with its report, freezing by name and
the backbone read from the graph, learning-rate groups, gradual unfreezing and its
resume (``backends/train/transfer.py``, ``backends/layer_names.py``,
``backends.torch.load_weights(strict=False)``)."""

from __future__ import annotations

import io
from typing import Any

import pytest

import netspec
from netspec.errors import Location

torch = pytest.importorskip("torch")
bt = pytest.importorskip("netspec.backends.torch")
from netspec.backends.layer_names import backbone, head  # noqa: E402
from netspec.backends.train import transfer  # noqa: E402
from netspec.names import picks  # noqa: E402

torch.set_num_threads(1)

SPEC = """
name: tiny
params:
  classes: 5
inputs:
  image: [1, 8, 8]
blocks:
  unit:
    params: {out: ~}
    layers:
      - {op: conv2d, name: conv, out: $out, kernel: 3, padding: 1}
      - {op: batchnorm, name: bn}
      - relu
layers:
  - {op: conv2d, name: conv1, out: 4, kernel: 3, padding: 1}
  - {op: batchnorm, name: bn1}
  - relu
  - {op: unit, name: block, out: 4}
  - {op: maxpool2d, name: pool, kernel: 2}
  - flatten
  - {op: linear, name: fc, out: $classes}
"""


def tiny(classes: int = 5) -> tuple[Any, Any]:
    a = netspec.analyze_text(SPEC, {"classes": classes})
    return a, bt.build(a)


# --- names and the head -------------------------------------------------------------


def test_prefixes_stop_at_dots_and_globs_match_prefixes() -> None:
    assert picks("layer4", "layer4.0.conv1") and picks("layer4", "layer4")
    assert not picks("layer4", "layer40.conv")
    assert picks("classifier.*", "classifier.6") and not picks("classifier.*", "classifier")
    assert picks("layer[34]", "layer3.1.bn2") and not picks("layer[34]", "layer2.0.conv1")


@pytest.mark.parametrize(("name", "expected"), [("resnet18", ["fc"]), ("vgg16", ["classifier.6"]), ("lenet5", ["fc3"])])
def test_the_head_is_read_from_the_graph(name: str, expected: list[str]) -> None:
    assert head(netspec.analyze(name)) == expected


def test_the_head_is_found_by_the_graph_not_by_the_name() -> None:
    text = SPEC.replace("name: fc,", "name: conv9,").replace("name: conv1,", "name: fc,")
    a = netspec.analyze_text(text)
    assert head(a) == ["conv9"]
    assert "fc" in backbone(a) and "conv9" not in backbone(a)


# --- partial loading ------------------------------------------------------------------


def test_strict_stays_strict_and_returns_the_mapping() -> None:
    _, pre = tiny(5)
    _, new = tiny(3)
    with pytest.raises(netspec.SpecError, match=r"model key 'fc.weight' has shape \[3, 64\]"):
        bt.load_weights(new, pre.state_dict())
    with pytest.raises(netspec.SpecError, match="exclude needs strict=False"):
        bt.load_weights(new, pre.state_dict(), exclude=["fc"])
    mapping = bt.load_weights(pre, pre.state_dict())
    assert mapping["conv1.weight"] == "conv1.weight" and len(mapping) == len(pre.state_dict())


def test_a_new_head_is_skipped_and_the_rest_loads() -> None:
    a, new = tiny(3)
    _, pre = tiny(5)
    fc_before = new.fc.weight.detach().clone()
    report = bt.load_weights(new, pre.state_dict(), strict=False, analysis=a)
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert report.skipped["fc.weight"][1:] == ([3, 64], [5, 64])
    assert not report.missing and not report.unexpected and not report.excluded
    for key, value in pre.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(new.state_dict()[key], value), key
    assert torch.equal(new.fc.weight, fc_before)  # the head keeps its initialisation
    rows = {what: (n, names) for what, n, names in report.rows()}
    assert rows["skipped for shape"] == (2, ["fc"]) and rows["loaded"][0] == len(pre.state_dict()) - 2
    text = str(report)
    assert ["skipped", "for", "shape", "2", "fc"] in [line.split() for line in text.splitlines()]
    assert ["missing", "0"] in [line.split() for line in text.splitlines()]


def test_renamed_checkpoints_pair_by_position_and_exclude_picks_by_glob() -> None:
    a, new = tiny(5)
    _, pre = tiny(5)
    renamed = {"features." + k: v for k, v in pre.state_dict().items()}
    report = bt.load_weights(new, renamed, strict=False, exclude=["block.*", "fc"], analysis=a)
    assert report.loaded["conv1.weight"] == "features.conv1.weight"
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in report.excluded} >= {"block.conv", "block.bn"}
    assert "fc.weight" in report.excluded and not report.skipped
    assert torch.equal(new.conv1.weight, pre.conv1.weight)
    assert not torch.equal(new.fc.weight, pre.fc.weight)
    one = bt.load_weights(new, pre.state_dict(), strict=False, exclude="fc", analysis=a)  # a name, not a list
    assert one.excluded == ["fc.weight", "fc.bias"]


def test_missing_and_unexpected_are_reported() -> None:
    a, new = tiny(5)
    _, pre = tiny(5)
    state = {k: v for k, v in pre.state_dict().items() if not k.startswith("block.bn")}
    report = bt.load_weights(new, state, strict=False, analysis=a)
    assert report.missing == [k for k in new.state_dict() if k.startswith("block.bn")]
    assert {what: names for what, _, names in report.rows()}["missing"] == ["block.bn"]
    assert not report.unexpected and not report.skipped
    report = bt.load_weights(new, {**pre.state_dict(), "extra.weight": torch.zeros(2)}, strict=False, analysis=a)
    assert report.unexpected == ["extra.weight"] and not report.missing
    # a tensor left over on each side pairs by position, as strict loading pairs them
    state["extra.weight"] = torch.zeros(4)
    report = bt.load_weights(new, state, strict=False, analysis=a)
    assert report.loaded["block.bn.weight"] == "extra.weight"
    assert report.missing == [k for k in new.state_dict() if k.startswith("block.bn")][1:]


def test_loading_nothing_is_an_error() -> None:
    _, new = tiny(5)
    junk = {"a.weight": torch.zeros(7, 7), "b.weight": torch.zeros(3)}
    with pytest.raises(netspec.SpecError, match="nothing in the checkpoint fits the model"):
        bt.load_weights(new, junk, strict=False)


def test_a_new_head_with_a_backbone_layer_unloaded_is_an_error() -> None:
    a, new = tiny(3)
    _, pre = tiny(5)
    state = dict(pre.state_dict())
    state["block.conv.weight"] = torch.zeros(4, 4, 5, 5)  # another architecture's layer
    with pytest.raises(netspec.SpecError, match=r"head \(fc\) changed size, and backbone layer 'block.conv' would"):
        bt.load_weights(new, state, strict=False, analysis=a)
    # the same without the analysis: the head is the layer of the last parameter
    with pytest.raises(netspec.SpecError, match=r"backbone layer 'block.conv'"):
        bt.load_weights(new, state, strict=False)
    # excluding it says it is meant
    report = bt.load_weights(new, state, strict=False, exclude=["block.conv"], analysis=a)
    assert "block.conv.weight" in report.excluded


def test_an_exclude_pattern_naming_no_layer_suggests_one() -> None:
    a, new = tiny(5)
    _, pre = tiny(5)
    with pytest.raises(netspec.SpecError, match="exclude pattern 'fcc' names no layer") as e:
        bt.load_weights(new, pre.state_dict(), strict=False, exclude=["fcc"], analysis=a)
    assert e.value.hint == "did you mean 'fc'?"


# --- freezing -------------------------------------------------------------------------


def test_freeze_backbone_leaves_the_head_trainable() -> None:
    a, model = tiny(5)
    summary = transfer.freeze(model, a, ["backbone"])
    assert [k for k, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert summary.trainable == 5 * 64 + 5
    assert summary.frozen == (4 * 9 + 4) + 8 + (4 * 4 * 9 + 4) + 8
    assert summary.frozen_layers == ("conv1", "bn1", "block.conv", "block.bn")
    assert str(summary).startswith(f"trainable 325 params, frozen {summary.frozen}")


def test_freeze_by_prefix_and_glob_and_all() -> None:
    a, model = tiny(5)
    transfer.freeze(model, a, "block")
    assert not model.block.conv.weight.requires_grad and model.conv1.weight.requires_grad
    a, model = tiny(5)
    transfer.freeze(model, a, ["*.bn", "conv1"])
    assert {k for k, p in model.named_parameters() if not p.requires_grad} == {
        "conv1.weight",
        "conv1.bias",
        "block.bn.weight",
        "block.bn.bias",
    }
    a, model = tiny(5)
    assert transfer.freeze(model, a, "all").trainable == 0


def test_freeze_errors_name_the_option_and_suggest() -> None:
    a, model = tiny(5)
    with pytest.raises(netspec.SpecError, match="freeze pattern 'blok' names no layer") as e:
        transfer.freeze(model, a, ["blok"])
    assert e.value.location == Location("--freeze") and e.value.hint == "did you mean 'block'?"
    with pytest.raises(netspec.SpecError, match="names only layers without parameters"):
        transfer.freeze(model, a, ["pool"])


def test_frozen_batch_norm_keeps_its_statistics() -> None:
    a, model = tiny(5)
    transfer.freeze(model, a, "backbone", freeze_bn=True)
    before = model.bn1.running_mean.clone()
    transfer.train_mode(model, True)
    assert not model.bn1.training and model.training and model.fc.training
    model(torch.randn(4, 1, 8, 8) + 3)
    assert torch.equal(model.bn1.running_mean, before)
    transfer.train_mode(model, False)  # without freeze_bn they follow the batch
    model(torch.randn(4, 1, 8, 8) + 3)
    assert not torch.equal(model.bn1.running_mean, before)


# --- learning-rate groups -------------------------------------------------------------


def test_param_groups_split_decay_and_scale_lr_by_the_longest_prefix() -> None:
    _, model = tiny(5)
    groups = transfer.param_groups(model, 0.1, {"block": 0.1, "block.bn": 0.5, "fc": 2.0}, lr=0.01)
    names = {id(p): k for k, p in model.named_parameters()}
    by = {(g["lr_scale"], g["weight_decay"]): sorted(names[id(p)] for p in g["params"]) for g in groups}
    assert by == {
        (1.0, 0.1): ["conv1.weight"],
        (1.0, 0.0): ["bn1.bias", "bn1.weight", "conv1.bias"],
        (0.1, 0.1): ["block.conv.weight"],
        (0.1, 0.0): ["block.conv.bias"],
        (0.5, 0.0): ["block.bn.bias", "block.bn.weight"],
        (2.0, 0.1): ["fc.weight"],
        (2.0, 0.0): ["fc.bias"],
    }
    assert all(g["lr"] == pytest.approx(0.01 * g["lr_scale"]) for g in groups)


def test_schedulers_scale_each_group() -> None:
    _, model = tiny(5)
    groups = transfer.param_groups(model, 0.0, {"fc": 10.0}, lr=0.01)
    opt = torch.optim.SGD(groups, lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([0.005, 0.05])
    opt = torch.optim.SGD(transfer.param_groups(model, 0.0, {"fc": 10.0}, lr=0.01), lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=10)
    peak = [0.0, 0.0]
    for _ in range(9):
        opt.step()
        sched.step()
        lrs = sorted(g["lr"] for g in opt.param_groups)
        assert lrs[1] == pytest.approx(10 * lrs[0])
        peak = [max(a, b) for a, b in zip(peak, lrs)]
    assert peak == pytest.approx([0.01, 0.1])


def test_lr_groups_errors() -> None:
    _, model = tiny(5)
    with pytest.raises(netspec.SpecError, match="lr_groups prefix 'blck' names no layer") as e:
        transfer.param_groups(model, 0.0, {"blck": 0.1})
    assert e.value.hint == "did you mean 'block'?"
    with pytest.raises(netspec.SpecError, match="multiplier must be a number >= 0"):
        transfer.param_groups(model, 0.0, {"fc": -1.0})


# --- gradual unfreezing -----------------------------------------------------------------


def test_parse_unfreeze_and_its_located_errors() -> None:
    assert transfer.parse_unfreeze("3:layer4,6:layer3,9:all") == {3: ["layer4"], 6: ["layer3"], 9: ["all"]}
    assert transfer.parse_unfreeze(" 3 : a , 3:b ") == {3: ["a", "b"]}
    with pytest.raises(netspec.SpecError, match="the epoch must be a whole number, not 'x'") as e:
        transfer.parse_unfreeze("3:layer4,x:all")
    assert e.value.location == Location("--unfreeze", 1, 10)
    with pytest.raises(netspec.SpecError, match="expects EPOCH:NAME") as e:
        transfer.parse_unfreeze("3:layer4,layer3")
    assert e.value.location == Location("--unfreeze", 1, 10)
    with pytest.raises(netspec.SpecError, match="no layer name after"):
        transfer.parse_unfreeze("3:")
    assert transfer.unfreeze_schedule({3: "block", "6": ["conv1", "bn1"]}) == {3: ["block"], 6: ["conv1", "bn1"]}


def test_unfreeze_errors() -> None:
    a, model = tiny(5)
    transfer.freeze(model, a, "backbone")
    opt = torch.optim.SGD(transfer.param_groups(model, 0.0), lr=0.1)
    with pytest.raises(netspec.SpecError, match=r"unfreeze epoch 12 is outside the run \(epochs 1 to 10\)") as e:
        transfer.Unfreezer(model, a, "3:block,12:all", opt, 10)
    assert e.value.location == Location("--unfreeze")
    with pytest.raises(netspec.SpecError, match="unfreeze pattern 'blok' names no layer") as e:
        transfer.Unfreezer(model, a, {3: "blok"}, opt, 10)
    assert e.value.hint == "did you mean 'block'?"


def make(schedule: str, lr_groups: dict[str, float]) -> tuple[Any, Any, Any, Any]:
    torch.manual_seed(0)
    a, model = tiny(5)
    transfer.freeze(model, a, "backbone")
    opt = torch.optim.SGD(transfer.param_groups(model, 0.01, lr_groups, lr=0.1), lr=0.1, momentum=0.9)
    return a, model, opt, transfer.Unfreezer(model, a, schedule, opt, 10, lr_groups, 0.01)


def steps(model: Any, opt: Any, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def test_unfreezing_adds_parameters_to_their_groups_at_their_epoch() -> None:
    lr_groups = {"block": 0.1}
    _, model, opt, unfreezer = make("3:block,6:all", lr_groups)
    assert unfreezer.step(1) == [] and unfreezer.step(2) == []
    assert transfer.trainable_names(model) == ["fc.weight", "fc.bias"]
    assert unfreezer.step(3) == ["block.conv", "block.bn"]
    named = dict(model.named_parameters())
    for key in ("block.conv.weight", "block.conv.bias", "block.bn.weight"):
        group = next(g for g in opt.param_groups if any(p is named[key] for p in g["params"]))
        assert group["lr_scale"] == 0.1 and group["lr"] == pytest.approx(0.01)
        assert group["weight_decay"] == (0.01 if key.endswith("conv.weight") else 0.0)
    assert unfreezer.step(6) == ["conv1", "bn1"]
    assert len(transfer.trainable_names(model)) == len(named)
    assert sorted(k for ks in transfer.optimizer_names(model, opt) for k in ks) == sorted(named)


def test_resume_restores_the_unfrozen_parameters_and_the_optimizer_state() -> None:
    lr_groups = {"block": 0.1}
    _, model, opt, unfreezer = make("3:block,6:conv1,9:all", lr_groups)
    for epoch in range(1, 7):  # epochs 1 to 6 done
        unfreezer.step(epoch)
        steps(model, opt, 2, epoch)
    buffer = io.BytesIO()  # as a checkpoint file keeps it
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "unfreeze": unfreezer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    _, model2, opt2, unfreezer2 = make("3:block,6:conv1,9:all", lr_groups)
    model2.load_state_dict(saved["model"])
    unfreezer2.load_state_dict(saved["unfreeze"])
    opt2.load_state_dict(saved["optimizer"])
    assert transfer.trainable_names(model2) == transfer.trainable_names(model)
    assert transfer.optimizer_names(model2, opt2) == transfer.optimizer_names(model, opt)
    # epoch 7 onwards: the same steps from the same state give the same weights
    for epoch in range(7, 10):
        assert unfreezer.step(epoch) == unfreezer2.step(epoch)
        steps(model, opt, 2, epoch)
        steps(model2, opt2, 2, epoch)
    for (k, v), w in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(v, w), k
    # a checkpoint of a stage this schedule lacks is refused
    *_, unfreezer3 = make("3:block", lr_groups)
    with pytest.raises(netspec.SpecError, match="stage of epoch 6, which this schedule lacks"):
        unfreezer3.load_state_dict(saved["unfreeze"])


# --- a real transfer experiment ---------------------------------------------------------

DIGITNET = """
name: digitnet
params:
  classes: 5
inputs:
  image: [1, 8, 8]
layers:
  - {op: conv2d, name: conv1, out: 16, kernel: 3, padding: 1}
  - relu
  - {op: conv2d, name: conv2, out: 32, kernel: 3, padding: 1}
  - relu
  - {op: maxpool2d, name: pool, kernel: 2}
  - flatten
  - {op: linear, name: fc, out: $classes}
"""

#: Held-out accuracy of transfer minus scratch, measured over seeds 0-15 of this
#: recipe: 0.015 to 0.093 (mean 0.05; transfer 0.935-0.970, scratch 0.863-0.947).
MARGIN = 0.005


def fit(model: Any, x: Any, y: Any, steps: int, lr: float, batch: int, g: Any) -> None:
    """SGD with momentum 0.9 and weight decay 1e-4 (not on biases), ``steps`` batches."""
    opt = torch.optim.SGD(transfer.param_groups(model, 1e-4, lr=lr), lr=lr, momentum=0.9)
    for _ in range(steps):
        transfer.train_mode(model, True)
        idx = torch.randint(len(x), (batch,), generator=g) if batch < len(x) else torch.arange(len(x))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model: Any, x: Any, y: Any) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def test_transfer_from_digits_0_to_4_beats_scratch_on_5_to_9_from_20_images_a_class() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()  # 1797 8x8 images, scikit-learn's bundled copy
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
    y = torch.tensor(digits.target)
    a = netspec.analyze_text(DIGITNET)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    # pre-train on digits 0-4 (about 900 images)
    low = y < 5
    pretrained = bt.build(a)
    fit(pretrained, x[low], y[low], 150, 0.05, 64, g)
    assert accuracy(pretrained, x[low], y[low]) > 0.95

    # 20 labelled images of each of 5-9; the other 5-9 images are held out
    high = torch.nonzero(~low).squeeze(1)
    high = high[torch.randperm(len(high), generator=g)]
    few = torch.cat([high[y[high] == c][:20] for c in range(5, 10)])
    held = high[~torch.isin(high, few)]
    assert len(few) == 100 and len(held) > 750

    # transfer: the backbone's weights, a new head (excluded from loading), backbone frozen
    tuned = bt.build(a)
    report = bt.load_weights(tuned, pretrained.state_dict(), strict=False, exclude=["fc"], analysis=a)
    assert sorted(report.loaded) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
    assert report.excluded == ["fc.weight", "fc.bias"] and not report.skipped and not report.missing
    summary = transfer.freeze(tuned, a, "backbone")
    assert summary.trainable == 5 * 512 + 5
    fit(tuned, x[few], y[few] - 5, 30, 0.02, 100, g)
    for key in report.loaded:  # frozen: still the pre-trained tensors
        assert torch.equal(tuned.state_dict()[key], pretrained.state_dict()[key]), key

    # scratch: the same network, the same images, the same steps and optimiser
    scratch = bt.build(a)
    fit(scratch, x[few], y[few] - 5, 30, 0.02, 100, g)

    ours, theirs = accuracy(tuned, x[held], y[held] - 5), accuracy(scratch, x[held], y[held] - 5)
    assert ours > theirs + MARGIN, f"transfer {ours:.3f}, scratch {theirs:.3f}"


# --- through netspec train -----------------------------------------------------------


def _digits_npz(path: Any, digits: range, classes: int) -> None:
    np = pytest.importorskip("numpy")
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, list(digits))
    x = (d.images[keep] * (255 / 16)).round().astype(np.uint8)
    y = (d.target[keep] - digits.start) % classes
    np.savez(path, x_train=x[:-40], y_train=y[:-40], x_test=x[-40:], y_test=y[-40:])


def test_netspec_train_fine_tunes_a_frozen_backbone_and_unfreezes_it_on_schedule(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--weights`` of a run trained on digits 0-4 into a 3-class head for digits 5-7:
    the report names the new head, the backbone stays as loaded while frozen, and the
    unfreezing at epoch 2 makes it train."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    _digits_npz(tmp_path / "a.npz", range(0, 5), 5)
    _digits_npz(tmp_path / "b.npz", range(5, 8), 3)
    small = {"epochs": 1, "batch_size": 32, "augment": [], "quiet": True, "out": tmp_path / "runs"}
    pre = netspec.train(spec, str(tmp_path / "a.npz"), name="pre", **small)
    start = {k: v.clone() for k, v in pre.module.state_dict().items()}
    frozen = netspec.train(
        spec,
        str(tmp_path / "b.npz"),
        name="frozen",
        classes=3,
        weights=pre.directory / "best.pt",
        freeze="backbone",
        freeze_bn=True,
        **{**small, "quiet": False},
    )
    out = capsys.readouterr().out
    head = 4 * 4 * 4 * 3 + 3  # fc: 4 channels of 4x4 to 3 classes, and its bias
    assert "skipped for shape   2  fc" in out and f"frozen: backbone: trainable {head} params" in out, out
    after = frozen.module.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if not k.startswith("fc."))  # BN statistics too
    assert not torch.equal(after["fc.bias"][:3], start["fc.bias"][:3])
    thawed = netspec.train(
        spec,
        str(tmp_path / "b.npz"),
        name="thawed",
        classes=3,
        weights=pre.directory / "best.pt",
        freeze="backbone",
        unfreeze="2:block",
        **{**small, "epochs": 2},
    )
    after = thawed.module.state_dict()
    assert torch.equal(after["conv1.weight"], start["conv1.weight"])  # never unfrozen
    assert not torch.equal(after["block.conv.weight"], start["block.conv.weight"])  # trained from epoch 2
    state = torch.load(thawed.directory / "last.pt", weights_only=False)
    assert state["unfreeze"] == {"done": [2]}


def test_netspec_train_errors_for_transfer_are_located(tmp_path: Any) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    with pytest.raises(netspec.SpecError, match="no such weights file") as e:
        netspec.train(spec, weights=tmp_path / "none.pt", quiet=True, out=tmp_path)
    assert "--weights" in e.value.format()
    with pytest.raises(netspec.SpecError, match="freeze pattern 'blok' names no layer") as e:
        netspec.train(spec, freeze="blok", classes=10, epochs=1, quiet=True, out=tmp_path)
    assert "did you mean 'block'" in e.value.format()
    with pytest.raises(netspec.SpecError, match="unfreeze epoch 4 is outside the run"):
        netspec.train(spec, freeze="all", unfreeze="4:all", classes=10, epochs=3, quiet=True, out=tmp_path)
    with pytest.raises(netspec.SpecError, match="nothing is left to train"):
        netspec.train(spec, freeze="all", classes=10, epochs=1, quiet=True, out=tmp_path)
    assert not (tmp_path / "tiny").exists()  # nothing written for a refused run
