"""Image files decoded for training and prediction, one convention for both.

Each image is decoded with Pillow, converted to grey (``L``) for a one-channel spec or
to ``RGB`` for a three-channel one (16-bit grey keeps its high byte), then fitted to
the spec's H x W the usual way of classification pipelines: scaled (bilinear,
antialiased) so that it covers H x W with its aspect ratio kept, i.e. its shorter side
fits, and centre-cropped. An image that is already H x W is taken pixel for pixel.
The result is uint8 [C, H, W].
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

from netspec.errors import Location, SpecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: threads decoding at once (Pillow decodes and resizes without holding the GIL)
DECODE_THREADS = min(8, os.cpu_count() or 1)
_CHUNK = 256  # images handed to the threads at a time: memory stays bounded
_MODES = {1: "L", 3: "RGB"}


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def check_channels(c: int, where: Location) -> None:
    if c not in _MODES:
        raise SpecError(
            f"images decode to 1 (grey) or 3 (RGB) channels, but the spec takes {c}",
            where,
            hint="make the spec's input [1, H, W] or [3, H, W], or give the data as an .npz",
        )


def pillow(where: Location) -> ModuleType:
    """``PIL.Image``, or a located error saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise SpecError("reading images needs Pillow", where, hint="pip install 'netspec[train]'") from None
    return Image


def decode(path: str, c: int, h: int, w: int) -> np.ndarray:
    """The image at ``path`` as uint8 [c, h, w] (see the module's convention)."""
    where = Location(path)
    check_channels(c, where)
    Image = pillow(where)
    try:
        with Image.open(path) as opened:
            source = opened
            if opened.mode.startswith("I"):  # 16-bit grey (I;16, or I): its high byte, not clipped to 255
                source = Image.fromarray((np.asarray(opened).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8))
            image = source.convert(_MODES[c])  # reads the whole file: a truncated one fails here
        if image.size != (w, h):
            scale = max(w / image.width, h / image.height)
            cover = (max(w, round(image.width * scale)), max(h, round(image.height * scale)))
            left, top = (cover[0] - w) // 2, (cover[1] - h) // 2
            image = image.resize(cover, Image.Resampling.BILINEAR).crop((left, top, left + w, top + h))
        pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise SpecError("no such image file", where) from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise SpecError(f"cannot read the image: {e}", where) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def decoded(paths: Sequence[str], c: int, h: int, w: int) -> Iterator[np.ndarray]:
    """The images of ``paths`` in order, decoded by ``DECODE_THREADS`` threads."""
    if DECODE_THREADS <= 1 or len(paths) <= 1:
        yield from (decode(p, c, h, w) for p in paths)
        return
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        for start in range(0, len(paths), _CHUNK):
            yield from pool.map(lambda p: decode(p, c, h, w), paths[start : start + _CHUNK])


def read_images(paths: Sequence[str], c: int, h: int, w: int) -> np.ndarray:
    """The images at ``paths`` as uint8 [N, c, h, w], decoded and fitted as for training
    (``netspec predict``); a bad file is a SpecError located at it."""
    if paths:
        check_channels(c, Location(paths[0]))
    out = np.empty((len(paths), c, h, w), np.uint8)
    for i, image in enumerate(decoded(paths, c, h, w)):
        out[i] = image
    return out
