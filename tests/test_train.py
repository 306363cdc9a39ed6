"""Training (``netspec train``): data, augmentations, the loop, the run directory and
resume. Small specs and data made here; one short lenet5 run on the bundled digits."""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import run

import netspec
from netspec import SpecError
from netspec.spec.augment import Crop, Cutout, Flip, Normalize
from netspec.spec.recipe import Recipe

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
from netspec.backends.train import augment, checkpoint, config_text, data, loop  # noqa: E402 (needs torch)
from netspec.backends.train.augment import Pipeline  # noqa: E402

TINY = """\
name: tiny
params: {classes: 3}
inputs: {image: [1, 8, 8]}
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - {op: dropout, p: 0.2}
  - flatten
  - {op: linear, out: $classes}
"""
QUICK = {"epochs": 2, "batch_size": 16, "device": "cpu", "quiet": True}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def images(n: int = 90, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[n, 8, 8] uint8 images whose class is where a bright bar is: learnable."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2] = 250
    return x, y


def npz(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


def analysis(text: str = TINY) -> Any:
    return netspec.analyze_text(text)


# --- data --------------------------------------------------------------------------


def test_digits_are_resized_replicated_and_split_by_class() -> None:
    spec = analysis(TINY.replace("[1, 8, 8]", "[3, 16, 16]").replace("classes: 3", "classes: 10"))
    d = data.load("digits", spec, 0.1, 0, {"classes": 10})
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (3, 16, 16)
    assert torch.equal(d.train.x[:, 0], d.train.x[:, 2])
    assert d.test is not None and len(d.train) + len(d.val) + len(d.test) == 1797
    assert len(d.test) == 360 and torch.bincount(d.val.y).min() >= 12  # every class in val, in proportion
    again = data.load("digits", spec, 0.1, 0, {})
    other = data.load("digits", spec, 0.1, 1, {})
    assert torch.equal(d.val.y, again.val.y) and not torch.equal(d.val.y, other.val.y)
    x, y = d.train.batch(torch.tensor([0, 1]))
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 and y.dtype == torch.int64


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC", "float"])
def test_npz_layouts_and_types(tmp_path: Path, layout: str) -> None:
    x, y = images()
    stored: np.ndarray = {
        "NHW": x,
        "NCHW": x[:, None],
        "NHWC": x[:, :, :, None],
        "float": x[:, None].astype(np.float32) / 255,
    }[layout]
    path = npz(tmp_path / "d.npz", x_train=stored, y_train=y, x_test=stored[:9], y_test=y[:9])
    d = data.load(path, analysis(), 0.2, 0, {})
    assert d.train.x.shape[1:] == (1, 8, 8) and len(d.train) + len(d.val) == 90
    assert d.test is not None and len(d.test) == 9
    got = d.test.batch(torch.arange(9))[0]
    assert torch.allclose(got[:, 0], torch.from_numpy(x[:9]).float() / 255)
    no_test = data.load(npz(tmp_path / "e.npz", x_train=stored, y_train=y), analysis(), 0.2, 0, {})
    assert no_test.test is None


@pytest.mark.parametrize(
    ("arrays", "message", "hint"),
    [
        (
            {"x_train": np.zeros((6, 3, 8, 8), np.uint8)},
            "holds images of shape [3, 8, 8], but the spec takes [1, 8, 8]",
            None,
        ),
        ({"x_train": np.zeros((6, 1, 9, 8), np.uint8)}, "holds images of shape [1, 9, 8]", None),
        ({"y_train": np.arange(6) % 5}, "the data has 5 classes, but spec 'tiny' outputs 3", "--set classes=5"),
        ({"y_train": np.zeros(6)}, "'y_train' must be 6 non-negative integer class indices", None),
        ({"x_train": np.zeros((6, 8, 8), np.int32)}, "'x_train' is int32; images are uint8", None),
        ({"x_test": np.zeros((6, 8, 8), np.uint8)}, "one of 'x_test' and 'y_test' without the other", None),
        ({"y_train": None}, "the .npz has no 'y_train' (it has: x_train)", None),
    ],
)
def test_npz_that_does_not_fit_the_spec(tmp_path: Path, arrays: dict[str, Any], message: str, hint: str | None) -> None:
    given = {"x_train": np.zeros((6, 8, 8), np.uint8), "y_train": np.arange(6) % 3, **arrays}
    path = npz(tmp_path / "d.npz", **{k: v for k, v in given.items() if v is not None})
    with pytest.raises(SpecError) as e:
        data.load(path, analysis(), 0.5, 0, {"classes": 3})
    assert message in e.value.message and e.value.location == (path, 0, 0)
    assert e.value.hint == hint or hint is None


def test_data_paths_and_specs_that_cannot_train(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(SpecError, match="no such data file") as e:
        netspec.train(tiny, str(tmp_path / "none.npz"), **QUICK)
    assert e.value.location is not None and e.value.location.path.endswith("none.npz")
    with pytest.raises(SpecError, match=r"output is \[N, classes\]; 'model' gives \[N, 4, 8, 8\]"):
        data.expected(analysis("inputs: {x: [1, 8, 8]}\nlayers: [{op: conv2d, out: 4, kernel: 3, padding: 1}]\n"))
    with pytest.raises(SpecError, match=r"one image input \[C, H, W\]; 'model' takes x \[4\]"):
        data.expected(analysis("inputs: {x: [4]}\nlayers: [{op: linear, out: 2}]\n"))
    assert not (tmp_path / "runs").exists()


# --- augmentations -------------------------------------------------------------------


def batch(b: int = 16, c: int = 2, h: int = 6, w: int = 7) -> torch.Tensor:
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w) + 1  # no zeros, all distinct


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("entry", [Flip(p=0), Crop(padding=2, p=0), Crop(padding=0), Cutout(size=3, p=0)])
def test_p0_is_the_identity(entry: Any) -> None:
    x = batch()
    assert torch.equal(augment.AUGMENT[entry.op](x, entry, gen()), x)


def test_flip_mirrors_the_chosen_images() -> None:
    x = batch()
    assert torch.equal(augment.flip(x, Flip(p=1), gen()), x.flip(3))
    assert torch.equal(augment.flip(x, Flip(p=1, direction="vertical"), gen()), x.flip(2))
    half = augment.flip(x, Flip(p=0.5), gen())
    mirrored = [bool(torch.equal(a, b.flip(2))) for a, b in zip(half, x)]
    assert 0 < sum(mirrored) < len(x)
    assert all(m or torch.equal(a, b) for m, a, b in zip(mirrored, half, x))


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    x = batch()
    out = augment.crop(x, Crop(padding=2), gen())
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for a, p in zip(out, padded):
        found = [(i, j) for i in range(5) for j in range(5) if torch.equal(a, p[:, i : i + 6, j : j + 7])]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 3


def test_cutout_zeroes_squares() -> None:
    x = batch(b=64, h=16, w=16)
    out = augment.cutout(x, Cutout(size=4, count=2, p=1), gen())
    zeros = (out == 0).all(1).flatten(1).sum(1)  # zeroed pixels per image (all channels alike)
    assert out.shape == x.shape and torch.equal(out[out != 0], x[out != 0])
    assert zeros.min() >= 4 and zeros.max() <= 2 * 16  # each square clipped at most to 2x2
    assert (zeros == 2 * 16).any()


def labels(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x.shape[0], dtype=torch.int64)


def test_normalize_given_or_measured_and_in_evaluation_too() -> None:
    train = torch.randint(0, 256, (50, 2, 4, 4), dtype=torch.uint8)
    x = train.float() / 255
    given = Pipeline([Normalize(mean=[0.5], std=[0.25])], train, 0, torch.device("cpu"))
    assert torch.allclose(given.eval(x), (x - 0.5) / 0.25)
    measured = Pipeline([Flip(p=1), Normalize()], train, 0, torch.device("cpu"))
    y = measured.eval(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-5)
    assert torch.allclose(measured.train(x, labels(x))[0], y.flip(3))  # flip only in training
    with pytest.raises(SpecError, match="mean has 3 values; the data has 2 channels"):
        Pipeline([Normalize(mean=[0.1, 0.2, 0.3])], train, 0, torch.device("cpu"))


def test_augmentations_are_reproducible_with_the_seed() -> None:
    entries = [Flip(), Crop(padding=2), Cutout(size=3)]
    train = torch.zeros((1, 2, 6, 7), dtype=torch.uint8)
    a, b, c = (Pipeline(entries, train, s, torch.device("cpu")) for s in (1, 1, 2))
    x = batch()
    first = a.train(x, labels(x))[0]
    assert torch.equal(first, b.train(x, labels(x))[0]) and not torch.equal(first, c.train(x, labels(x))[0])
    assert not torch.equal(first, a.train(x, labels(x))[0])  # the next batch draws anew


# --- the loop ------------------------------------------------------------------------


def test_no_weight_decay_on_biases_and_norm_parameters() -> None:
    model = netspec.compile(analysis())
    decay, none = loop.optimizer(model, Recipe(weight_decay=0.1)).param_groups
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 1, 3, 3), (3, 256)]
    assert len(none["params"]) == 4 and none["weight_decay"] == 0.0  # conv and linear biases, batchnorm scale and shift


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ({"schedule": "cosine", "warmup_epochs": 1}, [0.01, 0.505, 1.0, 0.933, 0.75, 0.5]),
        ({"schedule": "step", "warmup_epochs": 0, "step_epochs": 1, "gamma": 0.5}, [1, 1, 0.5, 0.5, 0.25, 0.25]),
        ({"schedule": "constant", "warmup_epochs": 0}, [1, 1, 1, 1, 1, 1]),
    ],
)
def test_schedules_per_step(recipe: dict[str, Any], expected: list[float]) -> None:
    r = Recipe.model_validate({"epochs": 4, "lr": 1.0, **recipe})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = loop.scheduler(opt, r, steps_per_epoch=2)
    lrs = []
    for _ in expected:
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(expected, abs=1e-3)


def test_onecycle_rises_for_the_warmup_then_falls() -> None:
    r = Recipe.model_validate({"epochs": 4, "lr": 1.0, "schedule": "onecycle", "warmup_epochs": 1})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    sched = loop.scheduler(opt, r, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 4 and lrs[-1] < 1e-3


def test_a_diverging_loss_stops_the_run_naming_epoch_and_step(tmp_path: Path, tiny: Path) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y)
    with pytest.raises(loop.Diverged, match=r"the loss became (nan|inf) in epoch \d, step \d+ of 5; the last good"):
        netspec.train(tiny, path, out=tmp_path, optimizer="sgd", lr=1e30, momentum=0, **{**QUICK, "epochs": 3})


def test_fp16_needs_cuda(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="fp16 needs a CUDA device"):
        netspec.train(
            tiny, npz(tmp_path / "d.npz", x_train=images()[0], y_train=images()[1]), precision="fp16", **QUICK
        )


def test_bf16_channels_last_grad_clip_and_adamw_train(tmp_path: Path, tiny: Path) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y)
    options = {"precision": "bf16", "channels_last": True, "grad_clip": 0.5, "optimizer": "adamw", "lr": 1e-2}
    r = netspec.train(tiny, path, out=tmp_path, **options, **QUICK)
    assert all(np.isfinite(list(row.values())).all() for row in r.history)
    assert r.recipe.precision == "bf16" and r.test is None


def test_compile_wraps_the_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny: Path) -> None:
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    x, y = images()
    r = netspec.train(tiny, npz(tmp_path / "d.npz", x_train=x, y_train=y), out=tmp_path, compile=True, **QUICK)
    assert compiled == [r.module]


def test_unknown_devices_are_user_errors(tiny: Path) -> None:
    with pytest.raises(SpecError, match="unknown device 'nodevice'"):
        netspec.train(tiny, **{**QUICK, "device": "nodevice"})


def test_options_that_are_neither_recipe_keys_nor_variables(tiny: Path) -> None:
    with pytest.raises(SpecError, match="'epocs' is neither a recipe key nor a variable of spec 'tiny'") as e:
        netspec.train(tiny, epocs=3)
    assert e.value.hint == "did you mean 'epochs'?"


# --- the run directory and resume ------------------------------------------------


def test_run_directory(tmp_path: Path, tiny: Path) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    out = tmp_path / "runs"
    first = netspec.train(tiny, path, out=out, classes=3, **QUICK)
    second = netspec.train(tiny, path, out=out, **QUICK)
    named = netspec.train(netspec.load(tiny), path, out=out, name="mine", **QUICK)  # a loaded Spec
    assert [first.directory, second.directory, named.directory] == [out / "tiny" / n for n in ("1", "2", "mine")]
    files = sorted(os.listdir(first.directory))
    assert files == [
        "best.pt",
        "config.yaml",
        "confusion.csv",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "spec.yaml",
        "test.json",
    ]  # no temporaries
    rows = list(csv.reader((first.directory / "metrics.csv").open()))
    assert rows[0] == list(loop.COLUMNS) and [r[0] for r in rows[1:]] == ["1", "2"]
    config = (first.directory / "config.yaml").read_text()
    assert "variables:\n  classes: 3\n" in config and "epochs: 2\n" in config
    assert (first.directory / "spec.yaml").read_text() == TINY
    assert yaml.safe_load((named.directory / "spec.yaml").read_text()) == yaml.safe_load(TINY)
    assert config_text(None, resume=first.directory) == config
    last = torch.load(first.directory / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "recipe", "classes", "history", "best", "spec"} <= set(
        last
    )
    assert last["epoch"] == 2 and last["classes"] == ["0", "1", "2"] and last["recipe"]["epochs"] == 2
    best = torch.load(first.directory / "best.pt", weights_only=True)
    assert best["epoch"] == first.best["epoch"]
    fresh = netspec.compile(tiny)
    netspec.load_weights(fresh, best["model"])  # an ordinary state_dict
    from_file = netspec.compile(
        tiny, weights=first.directory / "best.pt"
    )  # the checkpoint itself, as compile --weights
    assert all(torch.equal(v, best["model"][k]) for k, v in from_file.state_dict().items())
    onnx_file = tmp_path / "best.onnx"
    netspec.export_onnx(tiny, onnx_file, weights=first.directory / "best.pt")
    assert onnx_file.stat().st_size > 0
    assert first.test is not None and {"test_loss", "test_top1", "test_top5", "confusion", "per_class_top1"} <= set(
        first.test
    )
    with pytest.raises(SpecError, match="the run directory exists") as e:
        netspec.train(tiny, path, out=out, name="mine", **QUICK)
    assert e.value.hint is not None and "--resume" in e.value.hint


def test_checkpoints_are_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.pt"
    checkpoint.save(target, {"epoch": 1})

    def broken(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(SpecError, match="cannot write the checkpoint: No space left on device"):
        checkpoint.save(target, {"epoch": 2})
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


class Stop(Exception):
    pass


def test_a_stopped_run_resumed_ends_exactly_as_an_uninterrupted_one(tmp_path: Path, tiny: Path) -> None:
    x, y = images(120)
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:30], y_test=y[:30])
    options = {**QUICK, "epochs": 4, "augment": ["flip", "crop", "cutout", "normalize"], "out": tmp_path}
    whole = netspec.train(tiny, path, name="whole", **options)

    def stop_after_2(row: dict[str, float]) -> None:
        if row["epoch"] == 2:
            raise Stop  # as a kill after epoch 2's checkpoint

    with pytest.raises(Stop):
        netspec.train(tiny, path, name="cut", on_epoch=stop_after_2, **options)
    cut = tmp_path / "tiny" / "cut"
    assert torch.load(cut / "last.pt", weights_only=True)["epoch"] == 2
    torch.manual_seed(1234)  # the resumed run restores the RNG state itself
    resumed = netspec.train(resume=cut, quiet=True)
    for name, value in whole.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[name]), name
    timing = {"images_per_s", "seconds"}

    def strip(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]

    assert strip(resumed.history) == strip(whole.history) and len(resumed.history) == 4
    assert resumed.test == whole.test
    csv_rows = list(csv.DictReader((cut / "metrics.csv").open()))
    assert [r["val_loss"] for r in csv_rows] == [
        r["val_loss"] for r in csv.DictReader((whole.directory / "metrics.csv").open())
    ]


def test_resume_refuses_what_is_not_a_run_and_other_options(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(SpecError, match="not a run directory"):
        netspec.train(resume=tmp_path, quiet=True)
    (tmp_path / "last.pt").write_bytes(b"torn")
    (tmp_path / "config.yaml").write_text("{}")
    (tmp_path / "spec.yaml").write_text(TINY)
    with pytest.raises(SpecError, match="--resume: cannot read the run"):
        netspec.train(resume=tmp_path, quiet=True)
    with pytest.raises(SpecError, match="with its own spec, data and recipe"):
        netspec.train(resume=tmp_path, epochs=3)
    with pytest.raises(SpecError, match="give a spec to train, or --resume RUN_DIR"):
        netspec.train()
    with pytest.raises(SpecError, match="give a spec, or --resume RUN_DIR"):
        config_text(None)
    x, y = images()
    done = netspec.train(tiny, npz(tmp_path / "d.npz", x_train=x, y_train=y), out=tmp_path, **QUICK)
    again = netspec.train(resume=done.directory, quiet=True)  # a finished run: nothing left to do
    assert again.history == done.history


# --- the command line and the digits ----------------------------------------------


def test_cli_trains_prints_its_config_and_refuses_bad_input(tmp_path: Path, tiny: Path) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y)
    common = [str(tiny), "--data", path, "--out", str(tmp_path), "--device", "cpu", "--batch-size", "16"]
    r = run("train", *common, "--epochs", "1", "--augment", "flip,crop", "--optimizer", "sgd", "--no-nesterov")
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1  train loss" in r.stdout and (tmp_path / "tiny" / "1" / "last.pt").is_file()
    assert (
        "  optimizer: sgd\n  lr: 0.003\n  momentum: 0.9\n  nesterov: false\n"
        in (tmp_path / "tiny" / "1" / "config.yaml").read_text()
    )
    r = run("train", *common, "--print-config", "--lr", "0.2", "--augment", "none", "--set", "classes=3")
    assert r.returncode == 0 and "  lr: 0.2\n" in r.stdout and "  augment: []\n" in r.stdout
    assert not (tmp_path / "tiny" / "2").exists()
    r = run("train", *common, "--epochs", "0")
    assert r.returncode == 2 and r.stderr.startswith("--epochs: error: recipe key 'epochs': input should be greater")


def test_lenet5_learns_the_digits(tmp_path: Path) -> None:
    r = netspec.train("lenet5", out=tmp_path, epochs=3, lr=1e-2, device="cpu", quiet=True)
    assert r.test is not None and r.test["test_top1"] > 0.8  # 89% here in 3 epochs (chance: 10%); 30 reach 98%
    assert r.best["val_top1"] == max(row["val_top1"] for row in r.history)


# --- EMA, metrics, curves, progress ------------------------------------------------


def test_ema_follows_a_hand_written_average_of_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = images()
    d = data.load(npz(tmp_path / "d.npz", x_train=x, y_train=y), analysis(), 0.2, 0, {})
    model = netspec.compile(analysis())
    trainer = loop.Trainer(model, d, Recipe(ema=0.8, epochs=2, batch_size=16, augment=[]), torch.device("cpu"))
    params = dict(model.named_parameters())
    ref = {k: p.detach().clone() for k, p in params.items()}  # the average starts at the initial weights
    updates = [0]

    def step(done: int, loss: torch.Tensor) -> None:  # after each optimizer step
        decay = min(0.8, (1 + updates[0]) / (10 + updates[0]))
        for k, p in params.items():
            ref[k] = decay * ref[k] + (1 - decay) * p.detach()
        updates[0] += 1

    for _ in range(2):
        trainer.train_epoch(step)
    assert trainer.ema is not None and updates[0] == 2 * trainer.steps == trainer.ema.updates
    averaged = dict(trainer.ema.module.named_parameters())
    for k, v in ref.items():
        assert torch.allclose(averaged[k], v, atol=1e-6, rtol=0), k
        assert not torch.allclose(v, params[k])  # an average, not a copy
    for (k, b), own in zip(trainer.ema.module.named_buffers(), model.buffers()):
        assert torch.equal(b, own), k  # BatchNorm statistics copied
    assert trainer.evaluated is trainer.ema.module
    assert all(torch.equal(v, trainer.ema.module.state_dict()[k]) for k, v in trainer.state()["model"].items())


def test_a_run_with_ema_evaluates_and_saves_the_average(tmp_path: Path, tiny: Path) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:30], y_test=y[:30])
    r = netspec.train(tiny, path, out=tmp_path, ema=0.9, augment=[], **QUICK)
    last = torch.load(r.directory / "last.pt", weights_only=True)
    assert last["ema"]["decay"] == 0.9 and set(last["ema"]["trained"]) == set(last["model"])
    assert any(not torch.equal(last["model"][k], v) for k, v in last["ema"]["trained"].items())
    model = netspec.compile(tiny, weights=last["model"]).eval()  # the saved model: the average
    with torch.no_grad():
        logits = model(torch.from_numpy(x[:30, None]).float() / 255)
    assert r.test is not None
    assert r.test["test_loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[:30])).item()
    )
    assert r.test["confusion"] == confusion_by_hand(logits, torch.from_numpy(y[:30]), 3)


def confusion_by_hand(logits: torch.Tensor, y: torch.Tensor, k: int) -> list[list[int]]:
    m = [[0] * k for _ in range(k)]
    for t, p in zip(y.tolist(), logits.argmax(1).tolist()):
        m[t][p] += 1
    return m


def test_metrics_agree_with_sklearn_on_random_logits() -> None:
    from sklearn.metrics import confusion_matrix, recall_score  # type: ignore[import-untyped]

    from netspec.backends.train.metrics import Tally, confusion_csv

    g = torch.Generator().manual_seed(0)
    k = 7
    logits = torch.randn(500, k, generator=g)
    y = torch.randint(0, k - 1, (500,), generator=g)  # the last class has no images
    tally = Tally(k, torch.device("cpu"))
    for start in range(0, 500, 64):
        tally.add(logits[start : start + 64], y[start : start + 64])
    m = tally.result([f"c{i}" for i in range(k)])
    pred = logits.argmax(1).numpy()
    assert m.confusion == confusion_matrix(y.numpy(), pred, labels=list(range(k))).tolist()
    recall = recall_score(y.numpy(), pred, labels=list(range(k - 1)), average=None)
    assert list(m.per_class.values())[:-1] == pytest.approx(recall.tolist()) and m.per_class["c6"] is None
    assert m.top1 == pytest.approx((pred == y.numpy()).mean())
    top5 = (logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    assert m.top5 == pytest.approx(top5)
    assert m.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)
    rows = list(csv.reader(confusion_csv(m).splitlines()))
    assert rows[0][1:] == m.classes and [int(v) for v in rows[3][1:]] == m.confusion[2]


def test_curves_png_is_an_image(tmp_path: Path, tiny: Path) -> None:
    from PIL import Image

    x, y = images()
    r = netspec.train(tiny, npz(tmp_path / "d.npz", x_train=x, y_train=y), out=tmp_path, **QUICK)
    with Image.open(r.directory / "curves.png") as im:
        im.verify()
    with Image.open(r.directory / "curves.png") as im:
        assert im.format == "PNG" and im.size == (900, 360)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20  # drawn, not blank


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_lines_elsewhere_nothing_when_quiet(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = images()
    path = npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    options = {**QUICK, "out": tmp_path}
    netspec.train(tiny, path, **options)
    assert capsys.readouterr() == ("", "")  # quiet
    netspec.train(tiny, path, **{**options, "quiet": False})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines[1:3]] == ["epoch 1/2", "epoch 2/2"] and "\r" not in "".join(lines)
    assert lines[3].startswith("test: loss") and lines[4].startswith("per class:  0 ")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    netspec.train(tiny, path, **{**options, "quiet": False})
    shown = terminal.getvalue()
    assert "\repoch 1/2:" in shown and "5/5" in shown and "img/s" in shown and "loss " in shown
    assert "epoch 2/2  train loss" in shown
