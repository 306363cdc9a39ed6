"""``netspec.train``: a spec, data and a recipe in, a run directory and a trained
module out. Everything the user gave is checked before the run directory is made."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from netspec.analysis import Analysis, analyze
from netspec.backends.torch import build, load_weights, resolve_device
from netspec.backends.train import checkpoint, data, distributed
from netspec.backends.train.augment import DETERMINISTIC
from netspec.backends.train.curves import write_curves
from netspec.backends.train.loop import COLUMNS, Interrupted, Trainer
from netspec.backends.train.metrics import Metrics, confusion_csv, format_metrics
from netspec.backends.train.progress import Progress
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
    #: the final model on the test split, when the data has one: test.json's contents
    test: dict[str, Any] | None = None
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
    weights: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Plan:
    """Load the spec and resolve its recipe: ``recipe`` and recipe keys among
    ``overrides`` win over its ``train:`` section; other ``overrides`` (and ``params``)
    set the spec's variables. ``weights``: a checkpoint to fine-tune from."""
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
    data.check_source(data_source)
    if weights is not None and not os.path.isfile(weights):
        raise SpecError("no such weights file", Location("--weights"), hint=os.fspath(weights))
    config = {
        "spec": spec.name,
        # where its plugins are found on resume (they are named relative to it)
        "spec_file": os.path.abspath(path) if path and os.path.exists(path) else None,
        "data": os.fspath(data_source),
        "weights": os.path.abspath(weights) if weights is not None else None,
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
    metrics after its checkpoint is written. Ctrl-C stops between two steps, writes
    last.pt there (resumable exactly) and raises ``KeyboardInterrupt``."""
    state: dict[str, Any] | None = None
    run_dir: Path | None = None
    if resume is not None:
        if source is not None or any(v for k, v in options.items() if k != "flags"):
            raise SpecError(
                "--resume continues a run with its own spec, data and recipe; give nothing else but --device"
            )
        run_dir, state, config, spec_text = checkpoint.load_run(resume)
        spec_path = str(run_dir / "spec.yaml")
        if "plugins" in (yaml.safe_load(spec_text) or {}) and config.get("spec_file"):
            spec_path = config["spec_file"]  # its plugins are named relative to the original
        spec = load_text(spec_text, spec_path, config["variables"])
        p = Plan(spec, analyze(spec), Recipe.model_validate(config["recipe"]), config, spec_text)
        data_source = config["data"]
        device = device or config.get("device")
    else:
        if source is None:
            raise SpecError("give a spec to train, or --resume RUN_DIR")
        p = plan(source, data_source, device=device, **options)
    world = distributed.World.from_env()  # several processes under torchrun
    try:
        return _train(p, data_source, state, run_dir, out, name, device, quiet, on_epoch, world)
    finally:
        distributed.stop(world)


def _train(
    p: Plan,
    data_source: str,
    state: dict[str, Any] | None,
    run_dir: Path | None,
    out: str | os.PathLike[str],
    name: str | None,
    device: str | None,
    quiet: bool,
    on_epoch: Callable[[dict[str, float]], None] | None,
    world: distributed.World,
) -> Run:
    dev = resolve_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    assert dev is not None
    dev = distributed.start(world, dev)
    r = p.recipe
    d = data.load(data_source, p.analysis, r.val_split, r.seed, p.spec.variables).to(dev)
    torch.manual_seed(r.seed)
    model = build(p.analysis, device=dev)
    loaded = None
    if state is None and p.config.get("weights"):  # fine-tuning: every tensor that fits
        loaded = load_weights(model, p.config["weights"], strict=False, analysis=p.analysis)
    trainer = Trainer(model, d, r, dev, p.analysis, world)
    history: list[dict[str, float]] = []
    best: dict[str, float] = {}
    if state is not None:
        assert run_dir is not None
        checkpoint.check_spec(state, str(p.config["spec"]), run_dir / "last.pt")
        trainer.restore(state)
        history, best = list(state["history"]), dict(state["best"])
    if run_dir is None:
        if world.main:
            run_dir = checkpoint.new_run_dir(out, p.spec.name, name)
            checkpoint.write_config(run_dir, p.config, p.spec_text)
        run_dir = Path(distributed.from_main(str(run_dir), world))
    show = Progress(quiet or not world.main, r.epochs, trainer.steps, r.batch_size)
    saved_meta = {
        "spec": p.config["spec"],  # a resumed run's spec.yaml may be named otherwise
        "variables": dict(p.spec.variables),
        "recipe": p.config["recipe"],
        "classes": d.classes,
        "eval_transform": [e.model_dump(mode="json") for e in trainer.pipeline.entries if e.op in DETERMINISTIC],
    }

    def save(path: Path) -> None:
        now = trainer.state()  # on every rank: it gathers their augmentation states
        if world.main:
            checkpoint.save(path, {**now, "history": history, "best": best, **saved_meta})

    where = (
        f"epoch {trainer.epoch + 1}"
        if trainer.partial is None
        else f"epoch {trainer.epoch + 1}, step {trainer.partial['step'] + 1}"
    )
    show.line(
        f"{p.config['spec']}: {len(d.train)} train / {len(d.val)} val images, {r.epochs} epochs on {dev}, run {run_dir}"
        + (f" (resumed at {where})" if state is not None and trainer.epoch < r.epochs else "")
    )
    for note in d.notes:  # what the data loader skipped or cached
        show.line(f"  note: {note}")
    if world.size > 1:
        show.line(f"  {world.size} processes, {trainer.local_batch} images of each batch of {r.batch_size} each")
    if loaded is not None:
        show.line(f"  weights from {p.config['weights']}:")
        for line in str(loaded).splitlines():
            show.line("    " + line)
    if trainer.frozen is not None:
        show.line(f"  frozen: {', '.join(r.freeze)}: {trainer.frozen}")
    drawn = time.perf_counter()
    with _stop_on_sigint(trainer, world):
        try:
            while trainer.epoch < r.epochs:
                start = time.perf_counter()
                show.start(trainer.epoch + 1)
                try:
                    metrics = trainer.train_epoch(show.step)
                finally:
                    show.end()
                val = trainer.evaluate(d.val)
                row = {
                    "epoch": trainer.epoch,
                    "train_loss": metrics["train_loss"],
                    "train_top1": metrics["train_top1"],
                    "val_loss": val.loss,
                    "val_top1": val.top1,
                    "val_top5": val.top5,
                    "lr": metrics["lr"],
                    "images_per_s": metrics["images_per_s"],
                    "seconds": time.perf_counter() - start,
                }
                history.append(row)
                if world.main:
                    checkpoint.write_metrics(run_dir, COLUMNS, history)
                improved = not best or (row["val_top1"], -row["val_loss"]) > (best["val_top1"], -best["val_loss"])
                if improved:
                    best = row
                    save(run_dir / "best.pt")
                save(run_dir / "last.pt")
                show.line(_line(row, r.epochs))
                if world.main and time.perf_counter() - drawn > CURVES_EVERY_S:
                    _curves(run_dir, history, str(p.config["spec"]))
                    drawn = time.perf_counter()
                if on_epoch is not None:
                    on_epoch(row)
        except Interrupted as stop:
            save(run_dir / "last.pt")  # between two steps: the state is whole
            _curves(run_dir, history, str(p.config["spec"]))
            print(
                f"{stop}: last.pt keeps the run as it was there ({stop.epoch - 1} epochs and {stop.step} steps done)\n"
                f"  resume: netspec train --resume {run_dir}",
                file=sys.stderr,
                flush=True,
            )
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, the last checkpoint stays
            print(
                f"stopped: last.pt holds the run after epoch {len(history)}\n  resume: netspec train --resume {run_dir}",
                file=sys.stderr,
                flush=True,
            )
            raise
    if world.main:
        _curves(run_dir, history, str(p.config["spec"]))
    test = None
    if d.test is not None:
        t = trainer.evaluate(d.test)
        test = {"test_loss": t.loss, "test_top1": t.top1, "test_top5": t.top5, **_test_details(t)}
        if world.main:
            checkpoint.write_text(run_dir / "test.json", json.dumps(test, indent=2) + "\n", "test metrics")
            checkpoint.write_text(run_dir / "confusion.csv", confusion_csv(t), "confusion matrix")
        show.line(format_metrics(t, "test" + (" (EMA weights)" if trainer.ema is not None else "")))
    return Run(run_dir, r, trainer.evaluated, history, best, test, d.classes)


#: curves.png is redrawn after an epoch when this long has passed since the last drawing (and at the end)
CURVES_EVERY_S = 30.0


def _curves(run_dir: Path, history: list[dict[str, float]], name: str) -> None:
    if history:
        write_curves(run_dir / "curves.png", history, f"{name} ({run_dir})")


def _test_details(t: Metrics) -> dict[str, Any]:
    return {"images": t.images, "classes": t.classes, "per_class_top1": t.per_class, "confusion": t.confusion}


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer, world: distributed.World) -> Iterator[None]:
    """The first Ctrl-C asks the trainer to stop before its next step; a second one
    interrupts at once. Only in the main thread (the only one Python signals), and in
    a single process (under torchrun, Ctrl-C stops all processes; last.pt holds the
    last whole epoch)."""
    if threading.current_thread() is not threading.main_thread() or world.size > 1:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        trainer.stop_requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
