"""Transfer learning: freezing layers by name, gradual unfreezing, learning rates per
group of layers (discriminative fine-tuning). Partial loading of a pre-trained
checkpoint is ``netspec.backends.torch.load_weights(..., strict=False)``.

The pieces the loop uses, in order::

    frozen = freeze(model, analysis, ["backbone"], freeze_bn=True)   # before the optimizer
    groups = param_groups(model, weight_decay, lr_groups, lr)        # every group, some empty
    unfreezer = Unfreezer(model, analysis, schedule, optimizer, epochs, lr_groups, weight_decay)
    for epoch in range(start, epochs + 1):   # 1-based
        unfreezer.step(epoch)                # at the start of the epoch
        train_mode(model, frozen.freeze_bn)  # instead of model.train()

The optimizer holds one group per (learning-rate multiplier, weight decay) pair
from the start, empty where all its parameters are still frozen, so the schedulers
(which fix their groups when they are built) cover the parameters unfrozen later;
unfreezing appends parameters to their group. A checkpoint keeps
``unfreezer.state_dict()``; on resume ``unfreezer.load_state_dict`` re-applies the
stages done, in order, *before* ``optimizer.load_state_dict`` (whose groups must hold
the same parameters in the same order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netspec.analysis import Analysis
from netspec.backends.layer_names import backbone, layer_of
from netspec.errors import Location, SpecError
from netspec.names import pick, picks
from netspec.spec.finetune import parse_unfreeze, unfreeze_schedule
from netspec.spec.finetune import patterns as split_patterns

#: pattern words that are not layer names
WORDS = ("backbone", "all")
FREEZE, LR_GROUPS = Location("--freeze"), Location("lr_groups")  # where their errors point


def _parameters(model: nn.Module, analysis: Analysis) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """The model's parameters by layer (layers without parameters have none)."""
    layers = [info.name for info in analysis.layers]
    found: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for key, p in model.named_parameters():
        found.setdefault(layer_of(key, layers), []).append((key, p))
    return found


def select(analysis: Analysis, patterns: str | Iterable[str], what: str, where: Location | None) -> list[str]:
    """The layers (with parameters) that ``patterns`` pick, in graph order:
    prefixes, globs, ``backbone`` (``layer_names.backbone``) and ``all``. A pattern
    that picks no layer with parameters is a SpecError with a did-you-mean."""
    names = [info.name for info in analysis.layers if info.op != "input"]
    with_params = {info.name for info in analysis.layers if info.params > 0}
    chosen: set[str] = set()
    for pattern in split_patterns(patterns):
        if pattern == "all":
            picked = names
        elif pattern == "backbone":
            picked = backbone(analysis)
        else:
            picked = pick(pattern, names, what, where, choices=[*names, *WORDS])
            if not with_params & set(picked):
                raise SpecError(
                    f"{what} '{pattern}' names only layers without parameters ({', '.join(picked[:3])})",
                    where,
                    hint="name a layer with weights, a block holding some, 'backbone' or 'all'",
                )
        chosen.update(picked)
    return [n for n in names if n in chosen and n in with_params]


@dataclass(frozen=True)
class FreezeSummary:
    """What ``freeze`` left: parameter counts and the layers frozen."""

    trainable: int
    frozen: int
    frozen_layers: tuple[str, ...]
    freeze_bn: bool = False

    def __str__(self) -> str:
        bn = ", frozen batch norm kept in eval mode" if self.freeze_bn else ""
        return f"trainable {self.trainable:,} params, frozen {self.frozen:,} ({len(self.frozen_layers)} layers{bn})"


def counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def freeze(
    model: nn.Module,
    analysis: Analysis,
    patterns: str | Iterable[str],
    freeze_bn: bool = False,
    *,
    where: Location | None = FREEZE,
) -> FreezeSummary:
    """Freeze (``requires_grad=False``) the layers ``patterns`` pick (see ``select``);
    call it before building the optimizer. ``freeze_bn``: the loop keeps frozen batch
    norm layers in eval mode (``train_mode``)."""
    layers = select(analysis, patterns, "freeze pattern", where)
    params = _parameters(model, analysis)
    for name in layers:
        for _, p in params.get(name, []):
            p.requires_grad_(False)
    frozen_layers = tuple(n for n, ps in params.items() if ps and not any(p.requires_grad for _, p in ps))
    trainable, frozen = counts(model)
    return FreezeSummary(trainable, frozen, frozen_layers, freeze_bn)


def train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """``model.train()``, and with ``freeze_bn`` every batch norm layer whose
    parameters are all frozen back in eval mode: it normalises with its running
    statistics and leaves them as they are. Call it at the start of every epoch
    (after an unfreezing step a layer trains again)."""
    model.train()
    if not freeze_bn:
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters())
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


# --- learning rates and weight decay per group -------------------------------------


def _scale(key: str, lr_groups: Mapping[str, float]) -> float:
    """The multiplier of the longest prefix of ``key`` in ``lr_groups``, else 1.0."""
    best = max((p for p in lr_groups if picks(p, key)), key=len, default=None)
    return float(lr_groups[best]) if best is not None else 1.0


def _key(name: str, p: nn.Parameter, weight_decay: float, lr_groups: Mapping[str, float]) -> tuple[float, float]:
    # as loop.param_groups: no decay on biases and norm layers' scales and shifts (1-D)
    return _scale(name, lr_groups), weight_decay if p.ndim > 1 else 0.0


def check_lr_groups(model: nn.Module, lr_groups: Mapping[str, float], where: Location | None) -> None:
    """Each prefix must pick a parameter of the model, each multiplier be >= 0."""
    keys = [k for k, _ in model.named_parameters()]
    layers = [k.rsplit(".", 1)[0] for k in keys]
    for prefix, scale in lr_groups.items():
        pick(prefix, layers, "lr_groups prefix", where)
        if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 0:
            raise SpecError(f"lr_groups '{prefix}': the multiplier must be a number >= 0, not {scale!r}", where)


def param_groups(
    model: nn.Module,
    weight_decay: float,
    lr_groups: Mapping[str, float] | None = None,
    lr: float | None = None,
    *,
    where: Location | None = LR_GROUPS,
) -> list[dict[str, Any]]:
    """Parameter groups for a torch optimizer: one per (learning-rate multiplier,
    weight decay) pair over all the model's parameters, holding the trainable ones
    (possibly none: frozen ones join at unfreezing). Each group has ``lr_scale`` (the
    multiplier of the longest prefix of ``lr_groups`` that picks the parameter, 1.0
    for none), ``weight_decay`` (none on 1-D parameters: biases, norm scales and
    shifts) and, given ``lr``, ``lr`` = lr * lr_scale: LambdaLR scales each group's
    own; for OneCycleLR pass ``max_lr=[g["lr"] for g in groups]``."""
    lr_groups = dict(lr_groups or {})
    check_lr_groups(model, lr_groups, where)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        scale, decay = _key(name, p, weight_decay, lr_groups)
        group = groups.setdefault((scale, decay), {"params": [], "weight_decay": decay, "lr_scale": scale})
        if lr is not None:
            group["lr"] = lr * scale
        if p.requires_grad:
            group["params"].append(p)
    return list(groups.values())


# --- gradual unfreezing ------------------------------------------------------------


class Unfreezer:
    """Unfreezes the layers of each stage of ``schedule`` (epoch -> patterns, epochs
    1-based) at the start of that epoch, appending their parameters to ``optimizer``'s
    groups (built with ``param_groups`` and the same ``lr_groups`` and
    ``weight_decay``). Layers the spec marks ``trainable: false`` stay frozen."""

    def __init__(
        self,
        model: nn.Module,
        analysis: Analysis,
        schedule: str | Mapping[Any, Any],
        optimizer: torch.optim.Optimizer,
        epochs: int,
        lr_groups: Mapping[str, float] | None = None,
        weight_decay: float = 0.0,
        *,
        option: str = "--unfreeze",
    ) -> None:
        stages = unfreeze_schedule(schedule, option)
        where = Location(option)
        for epoch in sorted(stages):
            if not 1 <= epoch <= epochs:
                raise SpecError(
                    f"unfreeze epoch {epoch} is outside the run (epochs 1 to {epochs})",
                    where,
                    hint=f"use epochs up to {epochs}, or raise --epochs",
                )
        fixed = {n.name for n in analysis.graph if not n.trainable}  # trainable: false in the spec
        self.stages = {
            e: [n for n in select(analysis, stages[e], "unfreeze pattern", where) if n not in fixed]
            for e in sorted(stages)
        }
        self.model, self.optimizer = model, optimizer
        self.lr_groups, self.weight_decay = dict(lr_groups or {}), weight_decay
        self._params = _parameters(model, analysis)
        self.done: list[int] = []  # the stages applied, in order: what a checkpoint keeps

    def step(self, epoch: int) -> list[str]:
        """At the start of ``epoch``: apply the stages due and not done yet. Returns the
        layers unfrozen now."""
        unfrozen: list[str] = []
        for e in self.stages:
            if e <= epoch and e not in self.done:
                unfrozen += self._apply(e)
        return unfrozen

    def _apply(self, epoch: int) -> list[str]:
        groups = {(g.get("lr_scale", 1.0), g["weight_decay"]): g for g in self.optimizer.param_groups}
        unfrozen = []
        for layer in self.stages[epoch]:
            frozen = [(k, p) for k, p in self._params.get(layer, []) if not p.requires_grad]
            for key, p in frozen:
                group_key = _key(key, p, self.weight_decay, self.lr_groups)
                if group_key not in groups:
                    raise ValueError(f"no optimizer group {group_key} for '{key}': build it with param_groups")
                p.requires_grad_(True)
                groups[group_key]["params"].append(p)
            if frozen:
                unfrozen.append(layer)
        self.done.append(epoch)
        return unfrozen

    def state_dict(self) -> dict[str, Any]:
        return {"done": list(self.done)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Re-apply the stages a checkpoint had done (before the optimizer's state loads)."""
        for epoch in map(int, state["done"]):
            if epoch not in self.stages:
                raise SpecError(
                    f"the checkpoint had unfrozen the stage of epoch {epoch}, which this schedule lacks",
                    Location("--unfreeze"),
                    hint="resume with the unfreeze schedule the run started with",
                )
            if epoch not in self.done:
                self._apply(epoch)


def trainable_names(model: nn.Module) -> list[str]:
    return [k for k, p in model.named_parameters() if p.requires_grad]


def optimizer_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """The parameters of each optimizer group, by name (for logs and tests)."""
    names = {id(p): k for k, p in model.named_parameters()}
    return [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]


__all__ = [
    "FreezeSummary",
    "Unfreezer",
    "counts",
    "freeze",
    "optimizer_names",
    "param_groups",
    "parse_unfreeze",
    "select",
    "train_mode",
    "unfreeze_schedule",
]
