"""The training recipe (a spec's ``train:`` section) in the torch-free core."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import BLOCK_HEAVY, run

from netspec import SpecError, load_text
from netspec.spec.augment import Crop, Cutout, Flip, Normalize
from netspec.spec.recipe import Recipe, resolve

NET = "inputs: {x: [1, 8, 8]}\nlayers: [flatten, {op: linear, out: 10}]\n"


def error(train: str) -> SpecError:
    with pytest.raises(SpecError) as e:
        load_text(NET + "train:\n" + train, "net.yaml")
    return e.value


def test_a_spec_without_train_has_no_recipe_and_the_defaults_are_valid() -> None:
    assert load_text(NET).model.train is None
    r = Recipe()
    assert (r.optimizer, r.schedule, r.precision, r.augment) == ("adamw", "cosine", "fp32", [Crop(padding=4)])


def test_the_train_section_is_validated_and_kept() -> None:
    spec = load_text(
        NET + "train:\n  epochs: 3\n  optimizer: adamw\n  grad_clip: 1.5\n"
        "  augment: [flip, {op: crop, padding: 1}, {op: cutout, size: 2, count: 3}, {op: normalize, mean: [0.5], std: [0.25]}]\n"
    )
    r = spec.model.train
    assert r is not None and (r.epochs, r.optimizer, r.grad_clip, r.lr) == (3, "adamw", 1.5, Recipe().lr)
    assert r.augment == [Flip(), Crop(padding=1), Cutout(size=2, count=3), Normalize(mean=[0.5], std=[0.25])]


def test_an_unknown_key_is_located_with_a_did_you_mean() -> None:
    e = error("  epochs: 3\n  epocs: 4\n")
    assert (e.location.line, e.location.col) == (5, 10)  # type: ignore[union-attr]
    assert e.message == "key 'train.epocs': unknown recipe key; did you mean 'epochs'?"


@pytest.mark.parametrize(
    ("train", "message", "line"),
    [
        ("  optimizer: adam\n", "key 'train.optimizer': input should be 'sgd' or 'adamw', got 'adam'", 4),
        ("  lr: -1\n", "key 'train.lr': input should be greater than 0, got -1", 4),
        ("  precision: fp8\n", "key 'train.precision': input should be 'fp32', 'bf16' or 'fp16', got 'fp8'", 4),
        ("  augment: [flip, flp]\n", "key 'train.augment.1': unknown augmentation 'flp'; did you mean 'flip'?", 4),
        (
            "  augment:\n    - {op: crop, pading: 2}\n",
            "key 'train.augment.0.pading': unknown key of augmentation 'crop'; did you mean 'padding'?",
            5,
        ),
        (
            "  augment: [{op: flip, p: 2}]\n",
            "key 'train.augment.0.p': input should be less than or equal to 1, got 2",
            4,
        ),
        ("  augment: [{padding: 2}]\n", "key 'train.augment.0': an augmentation is a name or a mapping with 'op'", 4),
        ("  val_split: 0\n", "key 'train.val_split': input should be greater than 0, got 0", 4),
    ],
)
def test_recipe_errors_are_located(train: str, message: str, line: int) -> None:
    e = error(train)
    assert e.message.startswith(message), e.message
    assert e.location is not None and (e.location.path, e.location.line) == ("net.yaml", line)


def test_overrides_win_over_the_section_and_name_the_flag() -> None:
    base = Recipe.model_validate({"epochs": 3, "lr": 0.5})
    r = resolve(base, {"lr": "0.1", "augment": ["flip"]})
    assert (r.epochs, r.lr, r.augment) == (3, 0.1, [Flip()])
    with pytest.raises(SpecError) as e:
        resolve(base, {"batch_size": "0"}, flags=True)
    assert (
        str(e.value)
        == "--batch-size: error: recipe key 'batch_size': input should be greater than or equal to 1, got '0'"
    )
    with pytest.raises(SpecError) as e:
        resolve(None, {"epocs": 3})
    assert e.value.message == "unknown recipe key 'epocs'" and e.value.hint == "did you mean 'epochs'?"


def test_check_validates_train_without_torch(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(NET + "train: {epochs: 2, augment: [flip, crop, cutout, normalize]}\n")
    bad.write_text(NET + "train:\n  schedule: cosin\n")
    probe = "\nimport atexit\natexit.register(lambda: print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'sklearn', 'numpy'})))"
    r = run("check", str(good), str(bad), prelude=BLOCK_HEAVY + probe)
    assert r.returncode == 2
    assert "good.yaml: ok" in r.stdout and "HEAVY []" in r.stdout
    assert f"{bad}:4:13: error: key 'train.schedule': input should be" in r.stderr


def test_ema_is_a_decay_or_off() -> None:
    assert Recipe().ema is None
    assert resolve(None, {"ema": "0.999"}).ema == 0.999
    for off in ("off", "none", False, None):
        assert resolve(None, {"ema": off}).ema is None
    assert load_text(NET + "train:\n  ema: off\n").model.train.ema is None  # type: ignore[union-attr]
    e = error("  ema: on\n")  # YAML's true
    assert e.message == "key 'train.ema': ema is a decay such as 0.999, or off"
    with pytest.raises(SpecError, match=r"recipe key 'ema': input should be less than 1, got 1\.5"):
        resolve(None, {"ema": 1.5})


RECIPE_WITH_VARIABLES = """
params: {base_lr: 0.1, batch: 64}
inputs: {x: [1, 8, 8]}
train:
  batch_size: $batch
  lr: $base_lr * $batch / 256
  augment: [{op: crop, padding: "$batch // 32"}]
layers: [flatten, {op: linear, out: 10}]
"""


def test_recipe_values_may_be_expressions_of_the_variables() -> None:
    r = load_text(RECIPE_WITH_VARIABLES).model.train
    assert r is not None and (r.batch_size, r.lr, r.augment) == (64, 0.1 * 64 / 256, [Crop(padding=2)])
    r = load_text(RECIPE_WITH_VARIABLES, params={"batch": 256}).model.train  # as --set batch=256
    assert r is not None and (r.batch_size, r.lr, r.augment) == (256, 0.1, [Crop(padding=8)])


@pytest.mark.parametrize(
    ("params", "replace", "message", "line"),
    [
        ({"batch": 0}, None, "train: recipe key 'batch_size': input should be greater than or equal to 1, got 0", 5),
        ({}, ("$base_lr *", "$base_l *"), "train: undefined variable '$base_l'", 6),
        ({}, ("batch_size:", "batch_sise:"), "unknown recipe key; did you mean 'batch_size'?", 5),
    ],
)
def test_an_expression_in_a_recipe_is_checked_once_evaluated(
    params: dict[str, int], replace: tuple[str, str] | None, message: str, line: int
) -> None:
    text = RECIPE_WITH_VARIABLES if replace is None else RECIPE_WITH_VARIABLES.replace(*replace)
    with pytest.raises(SpecError) as e:
        load_text(text, "net.yaml", params)
    assert message in e.value.message
    assert e.value.location is not None and e.value.location.line == line
