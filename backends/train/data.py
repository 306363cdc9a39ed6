"""Training data: the bundled digits or an ``.npz``, checked against the spec and held
on the training device whole (uint8, or float32 in [0, 1]), batched by index.

The loop knows nothing about where data came from: it sees a ``Data``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from netspec.analysis import Analysis
from netspec.errors import Location, SpecError

DIGITS_TEST_SHARE = 0.2  # digits has no test set of its own


@dataclass
class Split:
    x: torch.Tensor  # [N, C, H, W], uint8 (0..255) or float32 (0..1)
    y: torch.Tensor  # [N], int64

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of ``index`` as float32 in [0, 1], and their labels."""
        x = self.x[index]
        return (x.float().div_(255) if x.dtype == torch.uint8 else x), self.y[index]

    def batches(self, order: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``order`` (indices on the split's device), ``size`` each (the
        last may be smaller; the caller slices ``order`` to whole batches if it wants)."""
        for start in range(0, len(order), size):
            yield self.batch(order[start : start + size])


@dataclass
class Data:
    train: Split
    val: Split
    test: Split | None
    classes: list[str] = field(default_factory=list)
    source: str = ""

    def to(self, device: torch.device) -> Data:
        def move(s: Split) -> Split:
            return Split(s.x.to(device), s.y.to(device))

        return Data(move(self.train), move(self.val), move(self.test) if self.test else None, self.classes, self.source)


def load(source: str, analysis: Analysis, val_split: float, seed: int, variables: dict[str, object]) -> Data:
    """``digits`` or an ``.npz`` path, fitted to (or checked against) the spec's input."""
    c, h, w, classes = expected(analysis)
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    if source == "digits":
        x, y = _digits(c, h, w)
        x_train, y_train, x_test, y_test = _stratified(x, y, DIGITS_TEST_SHARE, seed)
    else:
        x_train, y_train, x_test, y_test = _npz(source, c, h, w)
    found = int(max(y_train.max(), y_test.max() if y_test is not None else 0)) + 1
    if found != classes:
        hint = f"--set classes={found}" if "classes" in variables else f"make the spec's output {found} wide"
        raise SpecError(
            f"the data has {found} classes, but spec '{analysis.name}' outputs {classes}",
            Location(source),
            hint=hint,
        )
    xt, yt, xv, yv = _stratified(x_train, y_train, val_split, seed)
    test = Split(*_tensors(x_test, y_test)) if x_test is not None and y_test is not None else None
    names = [str(i) for i in range(classes)]
    return Data(Split(*_tensors(xt, yt)), Split(*_tensors(xv, yv)), test, names, source)


def expected(analysis: Analysis) -> tuple[int, int, int, int]:
    """Channels, height, width and class count the spec takes and gives."""
    if len(analysis.inputs) != 1 or len(next(iter(analysis.inputs.values()))) != 3:
        shapes = ", ".join(f"{k} {list(v)}" for k, v in analysis.inputs.items())
        raise SpecError(f"training needs a spec with one image input [C, H, W]; '{analysis.name}' takes {shapes}")
    out = [analysis.layer(o).output_shape for o in analysis.outputs]
    if len(out) != 1 or len(out[0]) != 1:
        raise SpecError(
            f"training needs a spec whose output is [N, classes]; '{analysis.name}' gives "
            + ", ".join(f"[N, {', '.join(map(str, s))}]" for s in out),
            hint="end the spec with a linear layer of 'classes' outputs",
        )
    c, h, w = next(iter(analysis.inputs.values()))
    return int(c), int(h), int(w), int(out[0][0])


def _digits(c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 1,797 8x8 digits (values 0..16), resized to HxW and
    channel-replicated, as uint8."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) * (255 / 16))[:, None]
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False) if (h, w) != (8, 8) else x
    x = x.round_().clamp_(0, 255).to(torch.uint8).expand(-1, c, -1, -1).contiguous()
    return x.numpy(), digits.target.astype(np.int64)


def _npz(path: str, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if not os.path.isfile(path):
        raise SpecError("no such data file (use 'digits' or an .npz file)", Location(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read the data as .npz: {e}", Location(path)) from None
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise SpecError(f"the .npz has no '{key}' (it has: {', '.join(arrays) or 'nothing'})", Location(path))
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise SpecError("the .npz has one of 'x_test' and 'y_test' without the other", Location(path))
    x_train, y_train = _images(arrays["x_train"], "x_train", path, c, h, w), _labels(arrays, "y_train", path)
    if "x_test" not in arrays:
        return x_train, y_train, None, None
    return x_train, y_train, _images(arrays["x_test"], "x_test", path, c, h, w), _labels(arrays, "y_test", path)


def _images(x: np.ndarray, key: str, path: str, c: int, h: int, w: int) -> np.ndarray:
    """``x`` as NCHW: NCHW or NHWC (or NHW for one channel), uint8 or float in [0, 1]."""
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise SpecError(f"'{key}' is {x.dtype}; images are uint8 (0..255) or float (0..1)", Location(path))
    if x.ndim == 3 and c == 1:
        x = x[:, None]
    if x.ndim == 4 and x.shape[1:] != (c, h, w) and x.shape[1:] == (h, w, c):
        x = x.transpose(0, 3, 1, 2)  # NHWC
    if x.ndim != 4 or x.shape[1:] != (c, h, w):
        raise SpecError(
            f"'{key}' holds images of shape {list(x.shape[1:])}, but the spec takes [{c}, {h}, {w}] (channels, height, width)",
            Location(path),
            hint="resize the images to the spec's input, or change the spec's input shape",
        )
    return np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32))


def _labels(arrays: dict[str, np.ndarray], key: str, path: str) -> np.ndarray:
    y, x = arrays[key], arrays["x" + key[1:]]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x) or (len(y) and y.min() < 0):
        raise SpecError(
            f"'{key}' must be {len(x)} non-negative integer class indices, one per image; it is {y.dtype} {list(y.shape)}",
            Location(path),
        )
    return y.astype(np.int64)


def _stratified(
    x: np.ndarray, y: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``share`` of the samples held out, each class in proportion (where it can be)."""
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and round(share * len(y)) >= (counts > 0).sum() else None
    a, b, ya, yb = train_test_split(x, y, test_size=share, random_state=seed, stratify=stratify)
    return a, ya, b, yb


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x), torch.from_numpy(y)
