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

from netspec.analysis import Analysis
from netspec.backends.train import distributed, transfer
from netspec.backends.train.augment import Pipeline
from netspec.backends.train.data import Data, Split
from netspec.backends.train.distributed import World
from netspec.backends.train.ema import EMA
from netspec.backends.train.metrics import Metrics, Tally
from netspec.errors import Location, SpecError
from netspec.spec.recipe import Recipe

COLUMNS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "images_per_s", "seconds")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Diverged(SpecError):
    """The loss became NaN or infinite."""


class Interrupted(KeyboardInterrupt):
    """Training stopped between two steps on request (Ctrl-C): the trainer's state is
    whole, and ``state()`` resumes exactly from step ``step`` of epoch ``epoch``."""

    def __init__(self, epoch: int, step: int, steps: int) -> None:
        super().__init__(f"interrupted in epoch {epoch} before step {step + 1} of {steps}")
        self.epoch, self.step, self.steps = epoch, step, steps


def optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    """Over ``transfer.param_groups``: weight decay on weight matrices and kernels only
    (biases and norm layers' scales and shifts are left alone), the lr multiplied per
    ``lr_groups``, and a group for every pair even if all its layers are still frozen."""
    groups = transfer.param_groups(model, r.weight_decay, r.lr_groups, lr=r.lr)
    if not any(p.requires_grad for p in model.parameters()) and not r.unfreeze:
        raise SpecError(
            "nothing is left to train: every layer is frozen", Location("--freeze"), hint="freeze 'backbone', not 'all'"
        )
    if r.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=r.lr)
    return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0)


def scheduler(opt: torch.optim.Optimizer, r: Recipe, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per optimizer step."""
    total = r.epochs * steps_per_epoch
    warmup = min(round(r.warmup_epochs * steps_per_epoch), total - 1)
    if r.schedule == "onecycle":
        rising = warmup / total if warmup else 0.3
        max_lr = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, pct_start=max(rising, 1e-3))

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

    def __init__(
        self,
        model: nn.Module,
        data: Data,
        r: Recipe,
        device: torch.device,
        analysis: Analysis | None = None,
        world: World | None = None,
    ) -> None:
        """``analysis`` (the spec's) is needed to freeze or unfreeze layers by name;
        ``world``: this process's place in data-parallel training (alone by default)."""
        if r.precision == "fp16" and device.type != "cuda":
            raise SpecError("precision fp16 needs a CUDA device (its grad scaler); use bf16 on the CPU")
        self.module, self.data, self.recipe, self.device = model, data, r, device
        self.world = world or World()
        self.local_batch = distributed.local_batch(r.batch_size, self.world)
        if (r.freeze or r.unfreeze) and analysis is None:
            raise ValueError("freezing layers by name needs the spec's analysis")
        self.frozen = transfer.freeze(model, analysis, r.freeze, r.freeze_bn) if analysis and r.freeze else None
        if r.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
        self.steps = max(1, len(data.train) // r.batch_size)  # whole batches only (BatchNorm needs > 1)
        self.optimizer = optimizer(model, r)
        self.unfreezer = (
            transfer.Unfreezer(model, analysis, r.unfreeze, self.optimizer, r.epochs, r.lr_groups, r.weight_decay)
            if analysis and r.unfreeze
            else None
        )
        self._wrap()
        self.scheduler = scheduler(self.optimizer, r, self.steps)
        self.scaler = torch.amp.GradScaler("cuda") if r.precision == "fp16" else None
        # each process draws its own augmentations
        seed = r.seed + 1 + 7919 * self.world.rank
        self.pipeline = Pipeline(r.augment, data.train.x, seed, device, len(data.classes))
        self.shuffle = torch.Generator().manual_seed(r.seed + 2)
        self.ema = EMA(model, r.ema) if r.ema is not None else None
        self.epoch = 0  # epochs done
        self.partial: dict[str, Any] | None = None  # the epoch under way where it was interrupted
        self.stop_requested = False  # set from outside (a SIGINT handler): stop before the next step

    def _wrap(self) -> None:
        """The forward the steps call: the module (DistributedDataParallel over the
        processes, which fixes the parameters it synchronises: rewrapped after
        unfreezing), compiled with ``compile``."""
        wrapped = distributed.wrap(self.module, self.world, self.device, self.recipe.sync_bn)
        self.model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(wrapped) if self.recipe.compile else wrapped

    def _lr(self) -> float:
        """The learning rate of the layers without a multiplier."""
        groups = self.optimizer.param_groups
        return float(next((g["lr"] for g in groups if g.get("lr_scale", 1.0) == 1.0), groups[0]["lr"]))

    @property
    def evaluated(self) -> nn.Module:
        """The module validation, test and the saved ``model`` use: the EMA when on."""
        return self.ema.module if self.ema is not None else self.module

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.recipe.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST[self.recipe.precision])

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.recipe.channels_last else x

    def train_epoch(self, progress: Callable[[int, torch.Tensor], None] | None = None) -> dict[str, float]:
        """One epoch (or the rest of an interrupted one); returns its train metrics and
        learning rate (at its last step). ``progress(steps done, loss)`` is called
        after each step. With ``stop_requested`` set, stops between two steps, keeps
        the epoch so far in ``partial`` (``state()`` saves it) and raises ``Interrupted``."""
        r, train, b = self.recipe, self.data.train, self.local_batch
        if self.unfreezer is not None and self.partial is None and self.unfreezer.step(self.epoch + 1):
            self._wrap()
        transfer.train_mode(self.module, r.freeze_bn)
        start = time.perf_counter()
        # kept on the device and checked once per epoch: no sync, and no op more than needed, per step
        losses: list[torch.Tensor] = []
        hits: list[torch.Tensor] = []
        if self.partial is not None:  # resume inside the epoch, where it stopped
            part, self.partial = self.partial, None
            order, done, earlier = part["order"].to(self.device), int(part["step"]), float(part["seconds"])
            losses, hits = list(part["losses"].to(self.device).unbind()), list(part["hits"].to(self.device).unbind())
        else:
            order, done, earlier = torch.randperm(len(train), generator=self.shuffle).to(self.device), 0, 0.0
        lr = self._lr()
        mine = distributed.shard(order, r.batch_size, self.steps, self.world)  # of each global batch, this rank's
        batches = train.batches(mine[done * b :], b)
        for step, (x, y) in enumerate(batches, done):
            if self.stop_requested:
                self.partial = {
                    "order": order.cpu(),
                    "step": step,
                    "losses": torch.stack(losses).cpu() if losses else torch.zeros(0),
                    "hits": torch.stack(hits).cpu() if hits else torch.zeros(0, dtype=torch.int64),
                    "seconds": earlier + time.perf_counter() - start,
                }
                raise Interrupted(self.epoch + 1, step, self.steps)
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
            if self.ema is not None:
                self.ema.update()
            lr = self._lr()
            self.scheduler.step()
            losses.append(loss.detach())
            hits.append((logits.argmax(1) == y).sum())
            if progress is not None:
                progress(step + 1, losses[-1])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = earlier + time.perf_counter() - start
        # each rank's losses are of its share: their mean over the ranks is the global batch's
        loss_of = distributed.sum_all(torch.stack(losses), self.world) / self.world.size
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
            "train_top1": distributed.sum_all(torch.stack(hits).sum(), self.world).item() / seen,
            "lr": lr,
            "images_per_s": seen / seconds,
        }

    @torch.no_grad()
    def evaluate(self, split: Split) -> Metrics:
        """Loss (no label smoothing), top-1, top-5 and the confusion matrix over
        ``split``, with the evaluated module (the EMA when on)."""
        model = self.evaluated
        model.eval()
        # the compiled forward where it is the same module; never DDP's, whose forward syncs
        forward = self.model if model is self.module and self.world.size == 1 else model
        tally = Tally(len(self.data.classes), self.device)
        mine = distributed.eval_shard(len(split), self.world, split.y.device)  # each rank its share
        for x, y in split.batches(mine, 2 * self.local_batch):
            with self._autocast():
                tally.add(forward(self._input(self.pipeline.eval(x))), y)
        return tally.summed(lambda t: distributed.sum_all(t, self.world)).result(self.data.classes)

    def state(self) -> dict[str, Any]:
        """Everything the next step depends on. ``model`` is the evaluated module's
        state_dict (the EMA when on); with EMA, ``ema`` holds the trained weights too."""
        return {
            "model": self.evaluated.state_dict(),
            "ema": None if self.ema is None else {**self.ema.state(), "trained": self.module.state_dict()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "partial": self.partial,
            "unfreeze": self.unfreezer.state_dict() if self.unfreezer is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "shuffle": self.shuffle.get_state(),
                # every rank's, in rank order (a collective: all ranks call state())
                "augment": distributed.gather(self.pipeline.generator.get_state(), self.world),
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        ema = state.get("ema")
        if self.ema is not None and ema is not None:
            self.module.load_state_dict(ema["trained"])
            self.ema.restore(state["model"], ema)
        else:
            self.module.load_state_dict(state["model"])
        if self.unfreezer is not None and state.get("unfreeze"):
            self.unfreezer.load_state_dict(state["unfreeze"])  # the optimizer's groups then match
            self._wrap()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.partial = state.get("partial")
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.shuffle.set_state(rng["shuffle"])
        augment = rng["augment"] if isinstance(rng["augment"], list) else [rng["augment"]]
        if len(augment) == self.world.size:
            self.pipeline.generator.set_state(augment[self.world.rank])
        else:  # resumed with another number of processes: draws anew, from the seed and the epoch
            self.pipeline.generator.manual_seed(self.recipe.seed + 1 + 7919 * self.world.rank + 104729 * self.epoch)
