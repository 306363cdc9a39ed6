"""``netspec train`` against a hand-written PyTorch training loop, and the accuracy
of ``netspec train lenet5`` on the bundled digits.

Throughput: for LeNet-5 (digits at 32x32) and ResNet-18 (digits at 3x32x32), in one
process, epochs of netspec's loop (``backends.train.loop.Trainer``, no augmentation)
alternate with epochs of a hand-written loop over a copy of the same module (same
initial weights), the same data held the same way (uint8 on the device, batched by
index), the same optimizer (AdamW, the recipe's lr and weight decay, on the same
parameter groups), batch and label smoothing; both sum each batch's loss and top-1
(the hand-written loop with ``.item()`` as tutorials do, netspec's on the device,
read once per epoch). netspec's loop also steps its LR schedule every step.
Printed: median images/s of each and the ratio netspec / hand-written (target
>= 0.97; EMA off, as by default), for LeNet-5 the slowdown with the default
augmentation (crop), and for each the slowdown with ``ema: 0.999``.

Accuracy: ``netspec train lenet5`` run as a user runs it (a subprocess, the default
recipe, 30 epochs), its test top-1 (target >= 98.0%) and wall time (target <= 30 s).

    python benchmarks/bench_train.py [--models lenet5,resnet18] [--rounds 3] [--device cpu] [--no-accuracy]

Timings on a shared machine vary; the ratios compare epochs interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import netspec
from netspec.backends.torch import build
from netspec.backends.train import data
from netspec.backends.train.loop import Trainer
from netspec.spec.recipe import Recipe

MODELS = {"lenet5": {}, "resnet18": {"resolution": 32, "classes": 10}}


def hand_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, train: data.Split, r: Recipe, steps: int) -> float:
    """The loop a user writes by hand (tutorial style: loss and accuracy summed as it
    goes); returns images/s."""
    model.train()
    start = time.perf_counter()
    total, correct = 0.0, 0
    order = torch.randperm(len(train)).to(train.y.device)
    for step in range(steps):
        index = order[step * r.batch_size : (step + 1) * r.batch_size]
        x, y = train.x[index].float() / 255, train.y[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=r.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        total += loss.item()
        correct += int((logits.argmax(1) == y).sum())
    if train.y.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * r.batch_size / (time.perf_counter() - start)


def throughput(name: str, rounds: int, device: torch.device) -> None:
    analysis = netspec.analyze(name, MODELS[name])
    r = Recipe(augment=[], epochs=rounds)
    d = data.load("digits", analysis, r.val_split, r.seed, dict(MODELS[name])).to(device)
    torch.manual_seed(0)
    ours, theirs = build(analysis, device=device), build(analysis, device=device)
    theirs.load_state_dict(ours.state_dict())
    trainer = Trainer(ours, d, r, device)
    augmented = Trainer(build(analysis, device=device), d, Recipe(epochs=rounds), device) if name == "lenet5" else None
    averaged = Trainer(build(analysis, device=device), d, Recipe(augment=[], epochs=rounds, ema=0.999), device)
    groups = [  # no decay on biases and norms
        {"params": [p for p in theirs.parameters() if p.ndim > 1], "weight_decay": r.weight_decay},
        {"params": [p for p in theirs.parameters() if p.ndim <= 1], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=r.lr)
    hand_epoch(theirs, opt, d.train, r, 2)  # warm-up of both
    trainer.steps, steps = 2, trainer.steps
    trainer.train_epoch()
    trainer.steps, trainer.epoch = steps, 0
    a, b, c, e = [], [], [], []
    for _ in range(rounds):
        a.append(trainer.train_epoch()["images_per_s"])
        b.append(hand_epoch(theirs, opt, d.train, r, steps))
        if augmented is not None:
            c.append(augmented.train_epoch()["images_per_s"])
        e.append(averaged.train_epoch()["images_per_s"])
    ma, mb = statistics.median(a), statistics.median(b)
    print(
        f"{name:9s} batch {r.batch_size}, {rounds} x {steps} steps on {device}: netspec {ma:8,.0f} img/s, "
        f"hand-written {mb:8,.0f} img/s, ratio {ma / mb:.3f}"
    )
    if c:
        mc = statistics.median(c)
        print(f"{'':9s} with the default augmentation (crop): {mc:8,.0f} img/s, {100 * (1 - mc / ma):.1f}% slower")
    me = statistics.median(e)
    print(f"{'':9s} with ema 0.999 (an update per step): {me:8,.0f} img/s, {100 * (1 - me / ma):.1f}% slower")


def accuracy() -> None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "netspec", "train", "lenet5", "--device", "cpu", "--out", out, "--quiet"]
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        test = json.loads((Path(out) / "lenet5" / "1" / "test.json").read_text())
    print(
        f"netspec train lenet5 (digits, default recipe): test top-1 {100 * test['test_top1']:.2f}%, wall {wall:.1f} s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="lenet5,resnet18")
    p.add_argument("--rounds", type=int, default=3, help="epochs of each loop, alternating")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-accuracy", action="store_true")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.models.split(","):
        throughput(name, args.rounds, torch.device(args.device))
    if not args.no_accuracy:
        accuracy()


if __name__ == "__main__":
    main()
