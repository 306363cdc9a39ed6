"""Training data, checked against the spec: the bundled digits, an ``.npz``, an image
folder (``folders.py``, decoded as ``images.py`` says) or CIFAR-10's binary batches
(``cifar.py``). What fits is held on the training device whole (uint8, or float32 in
[0, 1]) and batched by index; an image folder too large for that is streamed from a
memory-mapped cache (``stream.py``).

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
from netspec.backends.train import cifar, folders
from netspec.backends.train.images import check_channels, read_images
from netspec.errors import Location, SpecError

__all__ = ["Data", "Split", "check_source", "expected", "load", "read_images"]

DIGITS_TEST_SHARE = 0.2  # digits has no test set of its own
SOURCES = "'digits', an .npz file, an image folder or CIFAR-10's binary directory"


@dataclass
class Split:
    x: torch.Tensor  # [N, C, H, W], uint8 (0..255) or float32 (0..1)
    y: torch.Tensor  # [N], int64

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        """The images of ``index`` (on the split's device), in that order, as a split
        (a data-parallel rank's shard)."""
        return Split(self.x[index], self.y[index])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of ``index`` as float32 in [0, 1], and their labels."""
        x = self.x[index]
        return (x.float().div_(255) if x.dtype == torch.uint8 else x), self.y[index]

    def batches(self, order: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``order`` (indices on the split's device), ``size`` each (the
        last may be smaller; the caller slices ``order`` to whole batches if it wants)."""
        for start in range(0, len(order), size):
            yield self.batch(order[start : start + size])

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The split's images in order, ``size`` at a time, as stored."""
        for start in range(0, len(self), size):
            yield self.x[start : start + size]

    def channel_stats(self, chunk: int = 4096) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation (n - 1 in the denominator, as
        ``Tensor.std``) of the split's images in [0, 1], read ``chunk`` images at a time
        (a streamed split is never held whole)."""
        total = squares = None
        n = 0
        for x in self.chunks(chunk):
            f = x.double() / (255 if x.dtype == torch.uint8 else 1)
            s, q = f.sum(dim=(0, 2, 3)), (f * f).sum(dim=(0, 2, 3))
            total, squares = (s, q) if total is None or squares is None else (total + s, squares + q)
            n += f.shape[0] * f.shape[2] * f.shape[3]
        if total is None or squares is None:
            return [], []
        mean = total / n
        var = ((squares - n * mean * mean) / max(1, n - 1)).clamp_min(0)
        return mean.tolist(), var.sqrt().tolist()


@dataclass
class Data:
    train: Split
    val: Split
    test: Split | None
    classes: list[str] = field(default_factory=list)
    source: str = ""
    #: one-line remarks for the user (files skipped, a cache built or used)
    notes: list[str] = field(default_factory=list)

    def to(self, device: torch.device) -> Data:
        """The splits on ``device`` (a streamed split keeps its images on the host and
        moves each batch)."""
        test = self.test.to(device) if self.test else None
        return Data(self.train.to(device), self.val.to(device), test, self.classes, self.source, self.notes)


def check_source(source: str) -> None:
    """A located SpecError unless ``source`` names data ``load`` can read (only the
    layout is looked at, no image)."""
    _kind(source)


def _kind(source: str) -> str:
    if source == "digits":
        return "digits"
    if os.path.isdir(source):
        if cifar.find(source):
            return "cifar"
        folders.check(source)
        return "folder"
    if os.path.isfile(source):
        if source.lower().endswith(".npz"):
            return "npz"
        raise SpecError(f"cannot tell what data the file holds: use {SOURCES}", Location(source))
    raise SpecError(f"no such data file or directory (use {SOURCES})", Location(source))


def load(
    source: str,
    analysis: Analysis,
    val_split: float,
    seed: int,
    variables: dict[str, object],
    *,
    stream_bytes: int | None = None,
    workers: int | None = None,
) -> Data:
    """The data at ``source`` fitted to (or checked against) the spec's input; a
    validation share ``val_split`` is held out of the training images, each class in
    proportion, where the data has no validation split of its own. An image folder
    whose decoded images exceed ``stream_bytes`` (see ``stream.threshold``) is
    streamed by ``workers`` DataLoader processes."""
    c, h, w, classes = expected(analysis)
    kind = _kind(source)
    if kind == "folder":
        return _folder(source, analysis, val_split, seed, variables, stream_bytes, workers)
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    names: list[str] | None = None
    if kind == "digits":
        x, y = _digits(c, h, w)
        x_train, y_train, x_test, y_test = _stratified(x, y, DIGITS_TEST_SHARE, seed)
    elif kind == "cifar":
        folder = cifar.find(source)
        assert folder is not None
        x_train, y_train, x_test, y_test, names = cifar.read(folder, c, h, w)
    else:
        x_train, y_train, x_test, y_test, names = _npz(source, c, h, w)
    found = int(max(y_train.max(), y_test.max() if y_test is not None else 0)) + 1
    _check_classes(len(names) if names is not None else found, analysis, classes, source, variables)
    xt, yt, xv, yv = _stratified(x_train, y_train, val_split, seed)
    test = Split(*_tensors(x_test, y_test)) if x_test is not None and y_test is not None else None
    names = names if names is not None else [str(i) for i in range(classes)]
    return Data(Split(*_tensors(xt, yt)), Split(*_tensors(xv, yv)), test, names, source)


def _check_classes(found: int, analysis: Analysis, classes: int, source: str, variables: dict[str, object]) -> None:
    if found != classes:
        hint = f"--set classes={found}" if "classes" in variables else f"make the spec's output {found} wide"
        raise SpecError(
            f"the data has {found} classes, but spec '{analysis.name}' outputs {classes}",
            Location(source),
            hint=hint,
        )


def _folder(
    root: str,
    analysis: Analysis,
    val_split: float,
    seed: int,
    variables: dict[str, object],
    stream_bytes: int | None,
    workers: int | None,
) -> Data:
    from netspec.backends.train import stream

    c, h, w, classes = expected(analysis)
    check_channels(c, Location(root))
    found = folders.scan(root)
    _check_classes(len(found.classes), analysis, classes, root, variables)
    parts = found.parts
    count = sum(len(p.paths) for p in parts.values())
    streamed = count * c * h * w > stream.threshold(stream_bytes)
    notes = []
    if found.skipped:
        n = len(found.skipped)
        notes.append(f"skipped {n} non-image {'files' if n > 1 else 'file'} (e.g. {found.skipped[0]})")
    memory: dict[str, torch.Tensor] = {}
    caches: dict[str, str] = {}

    def split(name: str, rows: np.ndarray | None = None) -> Split:
        part = parts[name]
        rows = np.arange(len(part.paths)) if rows is None else rows
        y = torch.from_numpy(part.labels[rows])
        if streamed:
            if name not in caches:
                path, built = stream.cached(part.root, name, part.paths, found.classes, (c, h, w))
                caches[name] = os.fspath(path)
                notes.append(f"streaming from the image cache {caches[name]}" + (" (built now)" if built else ""))
            return stream.StreamSplit.of(caches[name], rows, y, stream.WORKERS if workers is None else workers)
        if name not in memory:
            memory[name] = torch.from_numpy(read_images(part.paths, c, h, w))
        return Split(memory[name][torch.from_numpy(rows)] if len(rows) != len(part.paths) else memory[name], y)

    first = "all" if "all" in parts else "train"
    if "val" in parts:
        train, val = split("train"), split("val")
    else:
        kept, _, held, _ = _stratified(np.arange(len(parts[first].paths)), parts[first].labels, val_split, seed)
        train, val = split(first, kept), split(first, held)
    test = split("test") if "test" in parts else None
    return Data(train, val, test, found.classes, root, notes)


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


def _npz(
    path: str, c: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[str] | None]:
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
    x_test = y_test = None
    if "x_test" in arrays:
        x_test, y_test = _images(arrays["x_test"], "x_test", path, c, h, w), _labels(arrays, "y_test", path)
    names = _names(arrays["classes"], path, y_train, y_test) if "classes" in arrays else None
    return x_train, y_train, x_test, y_test, names


def _names(names: np.ndarray, path: str, y_train: np.ndarray, y_test: np.ndarray | None) -> list[str]:
    """The ``classes`` array: one name (a string) per class index."""
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise SpecError(
            f"'classes' must be a list of class names (strings); it is {names.dtype} {list(names.shape)}",
            Location(path),
        )
    listed = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    twice = [n for i, n in enumerate(listed) if n in listed[:i]]
    if twice:
        raise SpecError(f"'classes' names '{twice[0]}' twice", Location(path))
    top = int(max(y_train.max(initial=0), y_test.max(initial=0) if y_test is not None else 0))
    if top >= len(listed):
        raise SpecError(
            f"'classes' names {len(listed)} classes, but the labels go up to {top}",
            Location(path),
            hint="name every class, index 0 first",
        )
    return listed


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
