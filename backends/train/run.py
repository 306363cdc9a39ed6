"""``netspec.train``: a spec, data and a recipe in, a run directory and a trained
module out. Everything the user gave is checked before the run directory is made."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from netspec.analysis import Analysis, analyze
from netspec.backends.torch import build, resolve_device
from netspec.backends.train import checkpoint, data
from netspec.backends.train.loop import COLUMNS, Trainer
from netspec.errors import Location, SpecError, did_you_mean
from netspec.spec.load import Spec, load_text, read_spec_file
from netspec.spec.recipe import Recipe, resolve
from netspec.zoo import resolve as resolve_spec


@dataclass
class Run:
    """A finished (or resumed and finished) run."""

    directory: Path
    recipe: Recipe
    module: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)  # the metrics.csv row of the best epoch (val top-1)
    test: dict[str, float] | None = None  # the final model on the test split, when the data has one
    classes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """What a run will do, resolved and checked: ``config`` is written to config.yaml."""

    spec: Spec
    analysis: Analysis
    recipe: Recipe
    config: dict[str, Any]
    spec_text: str


def plan(
    source: str | os.PathLike[str] | Spec,
    data_source: str = "digits",
    *,
    params: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    flags: bool = False,
    device: str | None = None,
    **overrides: Any,
) -> Plan:
    """Load the spec and resolve its recipe: ``recipe`` and recipe keys among
    ``overrides`` win over its ``train:`` section; other ``overrides`` (and ``params``)
    set the spec's variables."""
    if isinstance(source, Spec):  # its text is gone: the copy in the run is its data
        text, path = yaml.safe_dump(source.doc.data, sort_keys=False), source.path
    else:
        path = os.fspath(resolve_spec(source))
        text = read_spec_file(path)
    spec0 = load_text(text, path)
    known = list(Recipe.model_fields)
    declared = list(spec0.model.params)
    for key in overrides:
        if key not in known and key not in declared:
            raise SpecError(
                f"'{key}' is neither a recipe key nor a variable of spec '{spec0.name}'",
                hint=did_you_mean(key, known + declared) or "recipe keys: " + ", ".join(known),
            )
    variables = {**(params or {}), **{k: v for k, v in overrides.items() if k not in known}}
    wanted = {**(recipe or {}), **{k: v for k, v in overrides.items() if k in known}}
    spec = load_text(text, path, variables) if variables else spec0
    resolved = resolve(spec.model.train, wanted, flags)
    if data_source != "digits" and not os.path.exists(data_source):
        raise SpecError("no such data file or directory (use 'digits' or an .npz file)", Location(data_source))
    config = {
        "spec": spec.name,
        "data": os.fspath(data_source),
        "device": device,
        "variables": dict(spec.variables),
        "recipe": resolved.model_dump(mode="json"),
    }
    return Plan(spec, analyze(spec), resolved, config, text)


def train(
    source: str | os.PathLike[str] | Spec | None = None,
    data_source: str = "digits",
    *,
    out: str | os.PathLike[str] = "runs",
    name: str | None = None,
    resume: str | os.PathLike[str] | None = None,
    device: str | None = None,
    quiet: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    **options: Any,
) -> Run:
    """Train a spec (see ``plan`` for the options), or continue the run ``resume``
    from its last.pt with its own recipe. ``on_epoch`` is called with each epoch's
    metrics after its checkpoint is written."""
    state: dict[str, Any] | None = None
    run_dir: Path | None = None
    if resume is not None:
        if source is not None or any(v for k, v in options.items() if k != "flags"):
            raise SpecError(
                "--resume continues a run with its own spec, data and recipe; give nothing else but --device"
            )
        run_dir, state, config, spec_text = checkpoint.load_run(resume)
        spec = load_text(spec_text, str(run_dir / "spec.yaml"), config["variables"])
        p = Plan(spec, analyze(spec), Recipe.model_validate(config["recipe"]), config, spec_text)
        data_source = config["data"]
        device = device or config.get("device")
    else:
        if source is None:
            raise SpecError("give a spec to train, or --resume RUN_DIR")
        p = plan(source, data_source, device=device, **options)
    dev = resolve_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    assert dev is not None
    r = p.recipe
    d = data.load(data_source, p.analysis, r.val_split, r.seed, p.spec.variables).to(dev)
    torch.manual_seed(r.seed)
    model = build(p.analysis, device=dev)
    trainer = Trainer(model, d, r, dev)
    history: list[dict[str, float]] = []
    best: dict[str, float] = {}
    if state is not None:
        trainer.restore(state)
        history, best = list(state["history"]), dict(state["best"])
    if run_dir is None:
        run_dir = checkpoint.new_run_dir(out, p.spec.name, name)
        checkpoint.write_config(run_dir, p.config, p.spec_text)

    def log(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    log(f"{p.spec.name}: {len(d.train)} train / {len(d.val)} val images, {r.epochs} epochs on {dev}, run {run_dir}")
    while trainer.epoch < r.epochs:
        start = time.perf_counter()
        metrics = trainer.train_epoch()
        val = trainer.evaluate(d.val)
        row = {
            "epoch": trainer.epoch,
            "train_loss": metrics["train_loss"],
            "train_top1": metrics["train_top1"],
            "val_loss": val["loss"],
            "val_top1": val["top1"],
            "val_top5": val["top5"],
            "lr": metrics["lr"],
            "images_per_s": metrics["images_per_s"],
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        checkpoint.write_metrics(run_dir, COLUMNS, history)
        improved = not best or (row["val_top1"], -row["val_loss"]) > (best["val_top1"], -best["val_loss"])
        if improved:
            best = row
        saved = {
            **trainer.state(),
            "history": history,
            "best": best,
            "recipe": p.config["recipe"],
            "classes": d.classes,
        }
        if improved:
            checkpoint.save(run_dir / "best.pt", saved)
        checkpoint.save(run_dir / "last.pt", saved)
        log(_line(row, r.epochs))
        if on_epoch is not None:
            on_epoch(row)
    test = None
    if d.test is not None:
        t = trainer.evaluate(d.test)
        test = {"test_loss": t["loss"], "test_top1": t["top1"], "test_top5": t["top5"]}
        checkpoint.write_text(run_dir / "test.json", json.dumps(test, indent=2) + "\n", "test metrics")
        log(
            f"test: loss {t['loss']:.4f}  top-1 {100 * t['top1']:.2f}%  top-5 {100 * t['top5']:.2f}%  ({len(d.test)} images)"
        )
    return Run(run_dir, r, model, history, best, test, d.classes)


def _line(row: Mapping[str, float], epochs: int) -> str:
    return (
        f"epoch {int(row['epoch'])}/{epochs}  train loss {row['train_loss']:.4f} top-1 {100 * row['train_top1']:.1f}%"
        f"  val loss {row['val_loss']:.4f} top-1 {100 * row['val_top1']:.1f}% top-5 {100 * row['val_top5']:.1f}%"
        f"  lr {row['lr']:.3g}  {row['images_per_s']:,.0f} img/s  {row['seconds']:.2f} s"
    )


def config_text(
    source: str | os.PathLike[str] | Spec | None,
    data_source: str = "digits",
    *,
    resume: str | os.PathLike[str] | None = None,
    device: str | None = None,
    **options: Any,
) -> str:
    """The config.yaml a run would write (or, with ``resume``, the one it wrote)."""
    if resume is not None:
        config = checkpoint.load_run(resume)[2]
    elif source is None:
        raise SpecError("give a spec, or --resume RUN_DIR")
    else:
        config = plan(source, data_source, device=device, **options).config
    return str(yaml.safe_dump(config, sort_keys=False))
