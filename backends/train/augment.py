"""Augmentations of whole batches on the training device, two tables keyed by name
like the backends' lowerings. Those of ``AUGMENT`` take a float batch [B, C, H, W] in
[0, 1] (normalized after ``normalize``), their recipe entry and the pipeline's
generator; those of ``MIX`` mix images of the batch, so they take and return the
targets too (class probabilities [B, classes]). Every draw comes from the generator,
the same draws whatever ``p`` chooses, so a seed gives the same batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from netspec.errors import SpecError
from netspec.spec.augment import Color, Crop, CutMix, Cutout, Flip, MixUp, Normalize, ResizedCrop, Rotate, Scale

Augment = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]
Mix = Callable[[torch.Tensor, torch.Tensor, Any, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _chosen(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """A [B] mask of the images an augmentation of probability ``p`` applies to."""
    return torch.rand(x.shape[0], generator=g, device=x.device) < p


def _where(chosen: torch.Tensor, p: float, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` for the chosen images, ``x`` for the others (no pass over the batch
    when ``p`` chooses all)."""
    return out if p >= 1 else torch.where(chosen[:, None, None, None], out, x)


def flip(x: torch.Tensor, a: Flip, g: torch.Generator) -> torch.Tensor:
    return _where(_chosen(x, a.p, g), a.p, x.flip(3 if a.direction == "horizontal" else 2), x)


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


def _uniform(x: torch.Tensor, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """[B] draws, uniform in [low, high]."""
    return low + (high - low) * torch.rand(x.shape[0], generator=g, device=x.device)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None, None]


# --- geometry: each output pixel read from the input through an affine map ------------


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, [B, C, h, w], align_corners=False)`` by broadcasting, one
    full-size op: on the CPU its batched matrix product with an inner size of 3 costs
    more than the sampling itself (benchmarks/bench_augment.py)."""
    u = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1
    v = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    t = theta.transpose(1, 2)[:, :, None, None, :]  # [B, 3, 1, 1, 2]: x and y of each column
    across = t[:, 0] * u[None, None, :, None]  # [B, 1, w, 2]
    down = t[:, 1] * v[None, :, None, None] + t[:, 2]  # [B, h, 1, 2]
    return across + down


def resample(x: torch.Tensor, theta: torch.Tensor, fill: float | None = 0.0) -> torch.Tensor:
    """Output pixel at normalized position u ([-1, 1] across the image, pixel centres
    as in ``align_corners=False``) is the input read bilinearly at ``theta @ [u, 1]``
    (theta [B, 2, 3]); what lies outside the input reads as ``fill``, or with ``None``
    as the nearest edge pixel."""
    grid = affine_grid(theta.to(x.dtype), x.shape[2], x.shape[3])
    if fill is None:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # sampling is linear with weights summing to 1 inside, so shifting by fill before
    # zero padding and back after gives fill outside and blends it at the edges
    shifted = x - fill if fill else x
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill if fill else out


def rotate_by(x: torch.Tensor, degrees: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Each image rotated counter-clockwise by its angle (degrees [B]) about its centre."""
    _, _, h, w = x.shape
    t = torch.deg2rad(degrees.float())
    cos, sin = torch.cos(t), torch.sin(t)
    zero = torch.zeros_like(t)
    # a rotation in pixels, written in normalized coordinates (x across w, y down h)
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], -1), torch.stack([sin * w / h, cos, zero], -1)], -2)
    return resample(x, theta, fill)


def rotate(x: torch.Tensor, a: Rotate, g: torch.Generator) -> torch.Tensor:
    chosen = _chosen(x, a.p, g)
    angles = _uniform(x, -a.degrees, a.degrees, g)
    if a.degrees == 0:
        return x
    return _where(chosen, a.p, rotate_by(x, angles, a.fill), x)


def zoom_by(x: torch.Tensor, factors: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Each image magnified by its factor ([B]) about its centre, size kept."""
    inverse = 1 / factors.float()
    zero = torch.zeros_like(inverse)
    theta = torch.stack([torch.stack([inverse, zero, zero], -1), torch.stack([zero, inverse, zero], -1)], -2)
    return resample(x, theta, fill)


def scale(x: torch.Tensor, a: Scale, g: torch.Generator) -> torch.Tensor:
    chosen = _chosen(x, a.p, g)
    factors = _uniform(x, *a.factor, g)
    if a.factor == (1.0, 1.0):
        return x
    return _where(chosen, a.p, zoom_by(x, factors, a.fill), x)


def crop_resized(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """Each image's box (pixels [B] each; fractional boxes are fine) resized to the
    image's size, bilinear (the box lies inside the image: its rim reads the edge
    pixels, not zeros beyond them)."""
    _, _, h, w = x.shape
    top, left, height, width = (t.float() for t in (top, left, height, width))
    zero = torch.zeros_like(top)
    sx, sy, cx, cy = width / w, height / h, (2 * left + width) / w - 1, (2 * top + height) / h - 1
    theta = torch.stack([torch.stack([sx, zero, cx], -1), torch.stack([zero, sy, cy], -1)], -2)
    return resample(x, theta, None)


TRIES = 10  # boxes drawn per image for resized_crop; the first that fits is taken


def crop_boxes(
    x: torch.Tensor, a: ResizedCrop, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """top, left, height, width [B] of each image's box: area ``scale`` times the
    image's, aspect ratio in ``ratio`` (log-uniform), the first of ``TRIES`` draws that
    fits; where none fits, the largest centred box whose ratio is within ``ratio``."""
    b, _, h, w = x.shape
    shape, device = (b, TRIES), x.device
    area = h * w * (a.scale[0] + (a.scale[1] - a.scale[0]) * torch.rand(shape, generator=g, device=device))
    low, high = math.log(a.ratio[0]), math.log(a.ratio[1])
    ratio = torch.exp(low + (high - low) * torch.rand(shape, generator=g, device=device))
    bw, bh = (area * ratio).sqrt(), (area / ratio).sqrt()
    fits = (bw <= w) & (bh <= h)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # 0 where none fits
    bw, bh, found = bw.gather(1, first)[:, 0], bh.gather(1, first)[:, 0], fits.any(1)
    whole = min(max(w / h, a.ratio[0]), a.ratio[1])  # the fallback's ratio
    bw = torch.where(found, bw, torch.full_like(bw, min(w, h * whole)))
    bh = torch.where(found, bh, torch.full_like(bh, min(h, w / whole)))
    top = (h - bh) * torch.rand(b, generator=g, device=device)
    left = (w - bw) * torch.rand(b, generator=g, device=device)
    top = torch.where(found, top, (h - bh) / 2)
    left = torch.where(found, left, (w - bw) / 2)
    return top, left, bh, bw


def resized_crop(x: torch.Tensor, a: ResizedCrop, g: torch.Generator) -> torch.Tensor:
    chosen = _chosen(x, a.p, g)
    return _where(chosen, a.p, crop_resized(x, *crop_boxes(x, a, g)), x)


# --- colour: factors per image, clamped to [0, 1] after each step (as images are) ----

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def gray(x: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W]: the luma of RGB images; the channel mean of others."""
    if x.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device)
        return (x * weights[None, :, None, None]).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * _per_image(f)).clamp(0, 1)


def contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean gray level."""
    mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_image(f)
    return (f * x + (1 - f) * mean).clamp(0, 1)


def saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image in gray."""
    f = _per_image(f)
    return (f * x + (1 - f) * gray(x)).clamp(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] to hue (a fraction of the circle), saturation, value."""
    r, g, b = x.unbind(1)
    value, strongest = x.max(1)
    delta = value - x.min(1).values
    grey = delta == 0
    safe = torch.where(grey, torch.ones_like(delta), delta)
    rc, gc, bc = (value - r) / safe, (value - g) / safe, (value - b) / safe
    hue = torch.where(strongest == 0, bc - gc, torch.where(strongest == 1, 2 + rc - bc, 4 + gc - rc))
    hue = torch.where(grey, torch.zeros_like(hue), (hue / 6) % 1)
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), 0)
    return torch.stack([hue, sat, value], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    hue, sat, value = (t[:, None] for t in x.unbind(1))
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device)[None, :, None, None]
    k = (n + 6 * hue) % 6
    return value - value * sat * torch.minimum(k, 4 - k).clamp(0, 1)


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each image's hue turned by its shift ([B], a fraction of the colour circle)."""
    hsv = rgb_to_hsv(x)
    turned = torch.cat([(hsv[:, :1] + _per_image(shift)) % 1, hsv[:, 1:]], 1)
    return hsv_to_rgb(turned).clamp(0, 1)


def color(x: torch.Tensor, a: Color, g: torch.Generator) -> torch.Tensor:
    chosen = _chosen(x, a.p, g)
    out = x
    for strength, step in ((a.brightness, brightness), (a.contrast, contrast), (a.saturation, saturation)):
        f = _uniform(x, max(0.0, 1 - strength), 1 + strength, g)
        if strength and not (step is saturation and x.shape[1] == 1):
            out = step(out, f)
    shift = _uniform(x, -a.hue, a.hue, g)
    if a.hue and x.shape[1] == 3:
        out = hue(out, shift)
    return _where(chosen, a.p, out, x)


# --- mixing images of the batch, and their targets -----------------------------------


def beta(alpha: float, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """[B] draws of Beta(alpha, alpha), as a ratio of two Gamma(alpha) draws."""
    gammas = torch._standard_gamma(torch.full((2, x.shape[0]), alpha, device=x.device), generator=g)
    return gammas[0] / gammas.sum(0).clamp_min(torch.finfo(gammas.dtype).tiny)


def _mixed(target: torch.Tensor, share: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Each image's target with ``share`` [B] of it its partner's (the partner's
    weight is ``share`` exactly)."""
    return torch.lerp(target, target[partner], share[:, None].to(target.dtype))


def cutmix(x: torch.Tensor, target: torch.Tensor, a: CutMix, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b, _, h, w = x.shape
    chosen = _chosen(x, a.p, g)
    side = (1 - beta(a.alpha, x, g)).sqrt()
    partner = torch.randperm(b, generator=g, device=x.device)
    cy = torch.randint(0, h, (b,), generator=g, device=x.device)
    cx = torch.randint(0, w, (b,), generator=g, device=x.device)
    bh, bw = (side * h).long(), (side * w).long()
    top, left = (cy - bh // 2)[:, None], (cx - bw // 2)[:, None]
    rows, cols = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    in_rows = (rows >= top) & (rows < top + bh[:, None])  # the box clipped at the border
    in_cols = (cols >= left) & (cols < left + bw[:, None])
    box = in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]
    pasted = box.sum(dim=(1, 2)).to(target.dtype) / (h * w)  # the exact share taken
    return torch.where(box[:, None], x[partner], x), _mixed(target, pasted, partner)


def mixup(x: torch.Tensor, target: torch.Tensor, a: MixUp, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = _chosen(x, a.p, g)
    share = torch.where(chosen, 1 - beta(a.alpha, x, g), 0.0)  # 1 - lam: the partner's
    partner = torch.randperm(x.shape[0], generator=g, device=x.device)
    return torch.lerp(x, x[partner], _per_image(share).to(x.dtype)), _mixed(target, share, partner)


AUGMENT: dict[str, Augment] = {
    "flip": flip,
    "crop": crop,
    "cutout": cutout,
    "normalize": normalize,
    "rotate": rotate,
    "resized_crop": resized_crop,
    "scale": scale,
    "color": color,
}
MIX: dict[str, Mix] = {"cutmix": cutmix, "mixup": mixup}
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
        self._check(self.entries, train.shape[1], classes)
        self.mixes = any(e.op in MIX for e in self.entries)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    @staticmethod
    def _check(entries: Sequence[Any], channels: int, classes: int) -> None:
        ops = [e.op for e in entries]
        for i, e in enumerate(entries):
            if e.op in MIX and classes < 1:
                raise SpecError(f"augmentation {e.op!r} mixes labels: it needs the number of classes")
            if e.op == "color" and "normalize" in ops[:i]:
                raise SpecError("augmentation 'color' works on images in [0, 1]: put it before 'normalize'")
            if e.op == "color" and channels not in (1, 3) and (e.saturation or e.hue):
                raise SpecError(
                    f"augmentation 'color': saturation and hue need RGB (3 channels); the data has {channels}",
                    hint="set them to 0 to jitter only brightness and contrast",
                )

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
        """A training batch and its targets: the labels ``y`` [B], or where the list
        has an augmentation that mixes images (``cutmix``, ``mixup``), class
        probabilities [B, classes] (soft targets; one-hot for images left unmixed)."""
        if not self.mixes:
            for e in self.entries:
                x = AUGMENT[e.op](x, e, self.generator)
            return x, y
        target = F.one_hot(y, self.classes).to(x.dtype)
        for e in self.entries:
            if e.op in MIX:
                x, target = MIX[e.op](x, target, e, self.generator)
            else:
                x = AUGMENT[e.op](x, e, self.generator)
        return x, target

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        for e in self.entries:
            if e.op in DETERMINISTIC:
                x = AUGMENT[e.op](x, e, self.generator)
        return x
