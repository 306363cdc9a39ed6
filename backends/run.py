"""Running a spec on an input from the command line (``netspec run``): the lecture's
worked examples (a fixed kernel over a small image, a classifier's top classes) with
no Python to write.

An input is an ``.npy`` array of the spec's per-sample shape (or with a batch axis in
front), or an image (``.png``, ``.jpg``, ... read with Pillow, made grey or RGB to fit
the spec's channels, scaled to [0, 1] and resized to the spec's size with a note).
An output of shape ``[K]`` is a classifier's: its top classes are printed with their
scores and softmax probabilities; any other output is printed whole, channel by
channel, up to a size that still reads (then its statistics).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netspec.analysis import Analysis
from netspec.backends import torch as torch_backend
from netspec.errors import Location, SpecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_PRINTED = 4096  # elements of an output printed one by one; beyond, its statistics


def read_input(path: str | os.PathLike[str], shape: tuple[int, ...]) -> np.ndarray:
    """The input at ``path`` as float32 ``[N, *shape]``, or a located error."""
    p = Path(path)
    where = Location(os.fspath(p))
    if not p.is_file():
        raise SpecError(f"no such input file: {p}", where)
    if p.suffix.lower() == ".npy":
        try:
            array = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SpecError(f"cannot read {p.name} as a NumPy array: {e}", where) from None
        if array.dtype.kind not in "biuf":
            raise SpecError(f"{p.name} holds {array.dtype} values; expected numbers", where)
        if len(shape) == 3 and shape[0] == 1 and tuple(array.shape) == shape[1:]:
            array = array[None]  # a grey image written [H, W]
        if tuple(array.shape) == shape:
            array = array[None]
        if tuple(array.shape[1:]) != shape:
            raise SpecError(
                f"{p.name} has shape {list(array.shape)}; the spec's input is {list(shape)} per sample",
                where,
                hint=f"save an array of shape {list(shape)} (or [N, {', '.join(map(str, shape))}])",
            )
        return np.ascontiguousarray(array, dtype=np.float32)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _read_image(p, shape, where)
    raise SpecError(f"cannot read {p.name}: expected a .npy array or an image ({', '.join(IMAGE_SUFFIXES)})", where)


def _read_image(p: Path, shape: tuple[int, ...], where: Location) -> np.ndarray:
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise SpecError(f"an image fits an input of shape [1 or 3, H, W]; the spec's is {list(shape)}", where)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise SpecError("reading images needs Pillow", where, hint="pip install pillow (or netspec[all])") from None
    try:
        with Image.open(p) as opened:
            image = opened.convert("L" if shape[0] == 1 else "RGB")
        if image.size != (shape[2], shape[1]):
            print(
                f"note: {p.name} is {image.size[0]}x{image.size[1]}; resized to {shape[2]}x{shape[1]}",
                file=sys.stderr,
            )
            image = image.resize((shape[2], shape[1]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as e:
        raise SpecError(f"cannot read {p.name} as an image: {e}", where) from None
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None])


def run(analysis: Analysis, inputs: Mapping[str, str | os.PathLike[str]], weights: Any = None) -> list[np.ndarray]:
    """The outputs of the spec's module (eval mode) on the inputs read from files."""
    missing = [n for n in analysis.inputs if n not in inputs]
    if missing:
        raise SpecError(f"no input given for '{missing[0]}'", hint=f"--input {missing[0]}=FILE")
    arrays = [read_input(inputs[n], tuple(analysis.inputs[n])) for n in analysis.inputs]
    if len({a.shape[0] for a in arrays}) > 1:
        raise SpecError("the inputs have different batch sizes: " + ", ".join(str(a.shape[0]) for a in arrays))
    model = torch_backend.compile(analysis, weights=weights).eval()
    with torch.inference_mode():
        out = model(*(torch.from_numpy(a) for a in arrays))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def format_outputs(analysis: Analysis, outputs: list[np.ndarray], top: int = 5) -> str:
    lines: list[str] = []
    for name, value in zip(analysis.outputs, outputs):
        for n, sample in enumerate(value):
            head = f"{name}" + (f" (sample {n})" if len(value) > 1 else "") + f": {list(sample.shape)}"
            lines += [head, *_format_one(sample, top, analysis.layer(name).op == "softmax"), ""]
    return "\n".join(lines)


def _format_one(x: np.ndarray, top: int, probabilities: bool) -> list[str]:
    if x.ndim == 1 and x.size > 1:
        p = x if probabilities else np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        order = np.argsort(-x, kind="stable")[: min(top, x.size)]
        rows = [["rank", "class", "score", "probability"]]
        rows += [[str(i + 1), str(k), f"{x[k]:.4g}", f"{100 * p[k]:.2f}%"] for i, k in enumerate(order)]
        width = [max(len(r[c]) for r in rows) for c in range(4)]
        return ["  " + "  ".join(c.rjust(w) for c, w in zip(r, width)) for r in rows]
    if x.size > MAX_PRINTED:
        return [f"  min {x.min():.4g}, max {x.max():.4g}, mean {x.mean():.4g}, std {x.std():.4g}"]
    if x.ndim <= 2:
        return _grid(np.atleast_2d(x))
    lines = []
    for index in np.ndindex(*x.shape[:-2]):
        lines += [f"  channel {', '.join(map(str, index))}:", *_grid(x[index])]
    return lines


def _grid(x: np.ndarray) -> list[str]:
    cells = [[_number(v) for v in row] for row in x]
    width = max(len(c) for row in cells for c in row)
    return ["    " + " ".join(c.rjust(width) for c in row) for row in cells]


def _number(v: float) -> str:
    if math.isfinite(v) and float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.4g}"
