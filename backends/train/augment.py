"""Augmentations of whole batches on the training device, a table keyed by name like
the backends' lowerings. Each takes a float batch [B, C, H, W] in [0, 1] (normalized
after ``normalize``), its recipe entry and the pipeline's generator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from netspec.errors import SpecError
from netspec.spec.augment import Crop, Cutout, Flip, Normalize

Augment = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]


def _chosen(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """A [B] mask of the images an augmentation of probability ``p`` applies to."""
    return torch.rand(x.shape[0], generator=g, device=x.device) < p


def flip(x: torch.Tensor, a: Flip, g: torch.Generator) -> torch.Tensor:
    mask = _chosen(x, a.p, g)[:, None, None, None]
    return torch.where(mask, x.flip(3 if a.direction == "horizontal" else 2), x)


def crop(x: torch.Tensor, a: Crop, g: torch.Generator) -> torch.Tensor:
    b, c, h, w = x.shape
    pad = a.padding
    if pad == 0:
        return x
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=x.device)
    keep = ~_chosen(x, a.p, g)
    oy, ox = oy.masked_fill(keep, pad), ox.masked_fill(keep, pad)  # the centre window is the image itself
    # two gathers (each image's rows, then its columns): half the time of one 4-D index
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def cutout(x: torch.Tensor, a: Cutout, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    chosen = _chosen(x, a.p, g)
    mask = torch.zeros(b, h, w, dtype=torch.bool, device=x.device)
    for _ in range(a.count):
        top = torch.randint(0, h, (b, 1), generator=g, device=x.device) - a.size // 2
        left = torch.randint(0, w, (b, 1), generator=g, device=x.device) - a.size // 2
        r = torch.arange(h, device=x.device)[None]
        c = torch.arange(w, device=x.device)[None]
        in_r = (r >= top) & (r < top + a.size)
        in_c = (c >= left) & (c < left + a.size)
        mask |= in_r[:, :, None] & in_c[:, None, :]
    mask &= chosen[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def normalize(x: torch.Tensor, a: Normalize, g: torch.Generator) -> torch.Tensor:
    assert a.mean is not None and a.std is not None  # filled in by Pipeline
    mean = torch.tensor(a.mean, device=x.device)[None, :, None, None]
    std = torch.tensor(a.std, device=x.device)[None, :, None, None]
    return (x - mean) / std


AUGMENT: dict[str, Augment] = {"flip": flip, "crop": crop, "cutout": cutout, "normalize": normalize}
#: applied in evaluation too (the others only in training)
DETERMINISTIC = {"normalize"}


class Pipeline:
    """A recipe's ``augment`` list, ready to run: ``normalize`` without mean and std
    measured on ``train`` (uint8 or float [N, C, H, W]); seeded with ``seed``; soft
    targets are ``classes`` wide."""

    def __init__(
        self, entries: Sequence[Any], train: torch.Tensor, seed: int, device: torch.device, classes: int = 0
    ) -> None:
        self.classes = classes
        self.entries = [self._prepared(e, train) for e in entries]
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    @staticmethod
    def _prepared(entry: Any, train: torch.Tensor) -> Any:
        if not isinstance(entry, Normalize):
            return entry
        channels = train.shape[1]
        x = train.float() / (255 if train.dtype == torch.uint8 else 1)
        mean = entry.mean or x.mean(dim=(0, 2, 3)).tolist()
        std = entry.std or x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
        for name, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise SpecError(
                    f"augmentation 'normalize': {name} has {len(values)} values; the data has {channels} channels"
                )
        return entry.model_copy(update={"mean": mean * (channels // len(mean)), "std": std * (channels // len(std))})

    def train(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch and its targets: the labels ``y`` [B], or where an
        augmentation mixes images, class probabilities [B, classes] (soft targets)."""
        for e in self.entries:
            x = AUGMENT[e.op](x, e, self.generator)
        return x, y

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        for e in self.entries:
            if e.op in DETERMINISTIC:
                x = AUGMENT[e.op](x, e, self.generator)
        return x
