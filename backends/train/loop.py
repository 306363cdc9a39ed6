"""The training loop: optimizer and schedule per step, mixed precision by autocast,
metrics per epoch. It sees a model, a ``Data`` and a recipe, nothing of files."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netspec.backends.train.augment import Pipeline
from netspec.backends.train.data import Data, Split
from netspec.errors import SpecError
from netspec.spec.recipe import Recipe

COLUMNS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "images_per_s", "seconds")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Diverged(SpecError):
    """The loss became NaN or infinite."""


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only: biases and norm layers'
    scales and shifts (the one-dimensional parameters) are left alone."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    groups = param_groups(model, r.weight_decay)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=r.lr)
    return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0)


def scheduler(opt: torch.optim.Optimizer, r: Recipe, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per optimizer step."""
    total = r.epochs * steps_per_epoch
    warmup = min(round(r.warmup_epochs * steps_per_epoch), total - 1)
    if r.schedule == "onecycle":
        rising = warmup / total if warmup else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=total, pct_start=max(rising, 1e-3))

    def factor(step: int) -> float:
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        if r.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        if r.schedule == "step":
            return float(r.gamma ** (step // (r.step_epochs * steps_per_epoch)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Trainer:
    """The model and everything its next step depends on (what a checkpoint keeps)."""

    def __init__(self, model: nn.Module, data: Data, r: Recipe, device: torch.device) -> None:
        if r.precision == "fp16" and device.type != "cuda":
            raise SpecError("precision fp16 needs a CUDA device (its grad scaler); use bf16 on the CPU")
        self.module, self.data, self.recipe, self.device = model, data, r, device
        if r.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
        self.model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if r.compile else model
        self.steps = max(1, len(data.train) // r.batch_size)  # whole batches only (BatchNorm needs > 1)
        self.optimizer = optimizer(model, r)
        self.scheduler = scheduler(self.optimizer, r, self.steps)
        self.scaler = torch.amp.GradScaler("cuda") if r.precision == "fp16" else None
        self.pipeline = Pipeline(r.augment, data.train.x, r.seed + 1, device, len(data.classes))
        self.shuffle = torch.Generator().manual_seed(r.seed + 2)
        self.epoch = 0  # epochs done

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.recipe.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST[self.recipe.precision])

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.recipe.channels_last else x

    def train_epoch(self) -> dict[str, float]:
        """One epoch; returns its train metrics and learning rate (at its last step)."""
        r, train = self.recipe, self.data.train
        self.module.train()
        start = time.perf_counter()
        order = torch.randperm(len(train), generator=self.shuffle).to(self.device)
        # kept on the device and checked once per epoch: no sync, and no op more than needed, per step
        losses: list[torch.Tensor] = []
        hits: list[torch.Tensor] = []
        lr = self.optimizer.param_groups[0]["lr"]
        for x, y in train.batches(order[: self.steps * r.batch_size], r.batch_size):
            x, target = self.pipeline.train(x, y)
            with self._autocast():
                logits = self.model(self._input(x))
            loss = F.cross_entropy(logits.float(), target, label_smoothing=r.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()  # type: ignore[no-untyped-call]
            if r.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.module.parameters(), r.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            losses.append(loss.detach())
            hits.append((logits.argmax(1) == y).sum())
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        loss_of = torch.stack(losses)
        bad = (~torch.isfinite(loss_of)).nonzero()
        if len(bad):
            raise Diverged(
                f"the loss became {loss_of[bad[0, 0]].item()} in epoch {self.epoch + 1}, step {int(bad[0, 0]) + 1}"
                f" of {self.steps}; the last good checkpoint is that of epoch {self.epoch}",
                hint="lower --lr, or set --grad-clip",
            )
        self.epoch += 1
        seen = self.steps * r.batch_size
        return {
            "train_loss": loss_of.mean().item(),
            "train_top1": torch.stack(hits).sum().item() / seen,
            "lr": lr,
            "images_per_s": seen / seconds,
        }

    @torch.no_grad()
    def evaluate(self, split: Split) -> dict[str, float]:
        """Loss (no label smoothing), top-1 and top-5 accuracy over ``split``."""
        self.module.eval()
        loss = torch.zeros((), device=self.device)
        top1 = torch.zeros((), device=self.device)
        top5 = torch.zeros((), device=self.device)
        for x, y in split.batches(torch.arange(len(split), device=split.y.device), 2 * self.recipe.batch_size):
            with self._autocast():
                logits = self.model(self._input(self.pipeline.eval(x))).float()
            loss += F.cross_entropy(logits, y, reduction="sum")
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top1 += (best[:, 0] == y).sum()
            top5 += (best == y[:, None]).any(1).sum()
        n = max(1, len(split))
        return {"loss": loss.item() / n, "top1": top1.item() / n, "top5": top5.item() / n}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "shuffle": self.shuffle.get_state(),
                "augment": self.pipeline.generator.get_state(),
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.shuffle.set_state(rng["shuffle"])
        self.pipeline.generator.set_state(rng["augment"])
