"""netspec's batched augmentations (``backends/train/augment.py``) against kornia's
equivalent ``kornia.augmentation`` modules, on the same batch in the same run.

For each augmentation and batch shape (default 256x3x32x32 and 64x3x224x224, CPU, one
thread), runs of netspec's op alternate with runs of kornia's after a warm-up; printed
are the best and median milliseconds per batch of each and kornia / netspec of both
(above 1: netspec is faster; on a shared machine the best is the steadier figure). Both apply to every image (p = 1) with the same ranges. The mixing ones
(cutmix, mixup) are timed with netspec building its soft targets [B, classes] and
kornia returning its (label, partner label, lambda) rows, which is less work.

The ops are not identical draws (each uses its own random numbers) and not always
the same formulas (kornia's ColorJitter has its own formulas and order of the four
jitters; netspec's ``color`` applies them in a fixed order); each is the library's
op for the same job, with the same strengths and ranges.
The figures say what each costs per batch, which decides where a library is worth
its dependency.

    python benchmarks/bench_augment.py [--shapes 256x3x32x32,64x3x224x224] [--runs 9]
        [--threads 1] [--device cpu] [--only rotate,color]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from netspec.backends.train import augment
from netspec.spec.augment import Color, Crop, CutMix, Cutout, Flip, MixUp, ResizedCrop, Rotate, Scale

CLASSES = 10


def cases(h: int, w: int) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    """name: (netspec's entry, a function of kornia.augmentation giving the peer)."""
    side = max(1, h // 4)
    share = side * side / (h * w)
    return {
        "flip": (Flip(p=1), lambda K: K.RandomHorizontalFlip(p=1.0)),
        "crop": (Crop(padding=4), lambda K: K.RandomCrop((h, w), padding=4, p=1.0)),
        "cutout": (
            Cutout(size=side, p=1),
            lambda K: K.RandomErasing(scale=(share, share), ratio=(1.0, 1.0), p=1.0),
        ),
        "rotate": (Rotate(degrees=30, p=1), lambda K: K.RandomRotation(30.0, p=1.0)),
        "resized_crop": (ResizedCrop(), lambda K: K.RandomResizedCrop((h, w), scale=(0.08, 1.0), p=1.0)),
        "scale": (Scale(factor=(0.8, 1.2), p=1), lambda K: K.RandomAffine(0.0, scale=(0.8, 1.2), p=1.0)),
        "color": (Color(p=1), lambda K: K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)),
        "cutmix": (
            CutMix(p=1),
            lambda K: K.RandomCutMixV2(p=1.0, use_correct_lambda=True, data_keys=["input", "class"]),
        ),
        "mixup": (MixUp(p=1, alpha=1.0), lambda K: K.RandomMixUpV2(p=1.0, data_keys=["input", "class"])),
    }


def ours(entry: Any, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> Callable[[], Any]:
    if entry.op in augment.MIX:
        soft = F.one_hot(y, CLASSES).to(x.dtype)
        return lambda: augment.MIX[entry.op](x, soft, entry, g)
    return lambda: augment.AUGMENT[entry.op](x, entry, g)


def theirs(module: Any, x: torch.Tensor, y: torch.Tensor, mixes: bool) -> Callable[[], Any]:
    return (lambda: module(x, y)) if mixes else (lambda: module(x))


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="256x3x32x32,64x3x224x224")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated augmentation names")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        import kornia
        import kornia.augmentation as K
    except ImportError:
        kornia = K = None
        print("kornia is not installed: netspec's figures alone (pip install kornia for the peer)")
    print(
        f"torch {torch.__version__}, kornia {kornia.__version__ if kornia else '-'}, {device}, "
        f"{torch.get_num_threads()} thread(s), {args.runs} alternating runs after a warm-up"
    )
    print(
        f"{'augmentation':<14}{'batch':<16}{'netspec ms best/median':>24}{'kornia ms best/median':>24}"
        f"{'kornia/netspec best/median':>28}"
    )
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    for shape in args.shapes.split(","):
        b, c, h, w = (int(v) for v in shape.split("x"))
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.rand((b, c, h, w), generator=gen, device=device)
        y = torch.randint(0, CLASSES, (b,), generator=gen, device=device)
        for name, (entry, peer) in cases(h, w).items():
            if only and name not in only:
                continue
            mine = ours(entry, x, y, torch.Generator(device=device).manual_seed(1))
            other = theirs(peer(K).to(device), x, y, entry.op in augment.MIX) if K else None
            a: list[float] = []
            k: list[float] = []
            mine()
            if other:
                other()
            for _ in range(args.runs):
                a.append(timed(mine, device))
                if other:
                    k.append(timed(other, device))
            best, median = min(a) * 1e3, statistics.median(a) * 1e3
            mine_text = f"{best:.2f} / {median:.2f}"
            if other:
                kbest, kmedian = min(k) * 1e3, statistics.median(k) * 1e3
                ratio = f"{kbest / best:.1f}x / {kmedian / median:.1f}x"
                print(f"{name:<14}{shape:<16}{mine_text:>24}{f'{kbest:.2f} / {kmedian:.2f}':>24}{ratio:>28}")
            else:
                print(f"{name:<14}{shape:<16}{mine_text:>24}{'-':>24}{'-':>28}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
