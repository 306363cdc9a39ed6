"""Image folders larger than memory: decoded once into a memory-mapped uint8 ``.npy``
cache, and batched from it by DataLoader workers.

A folder is streamed when its decoded images would take more than ``STREAM_BYTES``
(``NETSPEC_STREAM_BYTES`` in the environment, or ``load``'s ``stream_bytes``, win).
Each part (``DIR``, or ``DIR/train`` ...) gets its cache file beside the data
(``.netspec-cache-<part>-<C>x<H>x<W>-<key>.npy`` in ``DIR``), or in
``NETSPEC_CACHE_DIR`` (default ``~/.cache/netspec``) where ``DIR`` is not writable.
The key hashes the image files' paths, sizes and modification times, the class names
and the target size: change any and the cache is rebuilt (written whole or not at all).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netspec.backends.common import write_atomic
from netspec.backends.train.data import Split
from netspec.backends.train.images import decoded
from netspec.errors import Location, SpecError

STREAM_BYTES = 4 * 2**30  # decoded images above this size are streamed from a cache
STREAM_ENV = "NETSPEC_STREAM_BYTES"
CACHE_ENV = "NETSPEC_CACHE_DIR"
#: DataLoader workers reading batches from the cache
WORKERS = max(1, min(8, (os.cpu_count() or 2) - 1))
_FORMAT = "netspec image cache 1 (cover-resize, centre crop)"  # bump when decoding changes


def threshold(given: int | None) -> int:
    """The size in bytes above which data is streamed."""
    if given is not None:
        return given
    value = os.environ.get(STREAM_ENV)
    if value is None:
        return STREAM_BYTES
    try:
        return int(value)
    except ValueError:
        raise SpecError(f"{STREAM_ENV} must be a number of bytes; it is '{value}'", Location(STREAM_ENV)) from None


def cache_path(root: str, part: str, paths: Sequence[str], classes: Sequence[str], shape: tuple[int, int, int]) -> Path:
    """Where the cache of ``paths`` decoded to ``shape`` lives (or is to be written)."""
    key = hashlib.sha256(f"{_FORMAT}\n{shape}\n{list(classes)}\n".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            raise SpecError(f"cannot read the image: {e.strerror or e}", Location(p)) from None
        key.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    c, h, w = shape
    stem = f".netspec-cache-{part}-{c}x{h}x{w}-"
    if os.access(root, os.W_OK | os.X_OK):
        return Path(root) / f"{stem}{key.hexdigest()[:20]}.npy"
    where = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:8]  # one cache directory, many data sets
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "netspec")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(f"cannot make the image cache directory: {e.strerror or e}", Location(str(folder))) from None
    return folder / f"{Path(root).name}-{where}{stem}{key.hexdigest()[:20]}.npy"


def cached(
    root: str, part: str, paths: Sequence[str], classes: Sequence[str], shape: tuple[int, int, int]
) -> tuple[Path, bool]:
    """The cache of ``paths`` decoded to ``shape``, and whether it was built now (it
    is built where it is missing)."""
    path = cache_path(root, part, paths, classes, shape)
    if path.is_file() and _whole(path, (len(paths), *shape)):
        return path, False
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
            "fortran_order": False,
            "shape": (len(paths), *shape),
        },
    )
    pieces = (image.tobytes() for image in decoded(paths, *shape))
    write_atomic(path, _chain(header.getvalue(), pieces), "image cache")
    stem = path.name[: -len(".npy") - 20]
    for old in path.parent.glob(f"{stem}*.npy"):  # earlier caches of this part and size
        if old != path:
            old.unlink(missing_ok=True)
    return path, True


def _whole(path: Path, shape: tuple[int, ...]) -> bool:
    """Whether the cache at ``path`` holds uint8 images of ``shape`` (a file cut short
    or changed by hand is rebuilt)."""
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return bool(images.dtype == np.uint8 and images.shape == shape)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


class _Rows(torch.utils.data.Dataset[torch.Tensor]):
    """Whole batches (a list of indices into ``rows``) read from the cache at ``path``;
    each worker maps the file itself (a mapped array is not sent to workers)."""

    def __init__(self, path: str, rows: np.ndarray) -> None:
        self.path, self.rows = path, rows
        self.images: np.ndarray | None = None

    def __getitem__(self, batch: Any) -> torch.Tensor:
        if self.images is None:
            self.images = np.load(self.path, mmap_mode="r")
        return torch.from_numpy(self.images[self.rows[np.asarray(batch, dtype=np.int64)]])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "images": None}


@dataclass
class StreamSplit(Split):
    """A split whose images stay on the host in the cache at ``path``: image ``i`` of
    the split is row ``rows[i]`` of the cache, whose memory map ``x`` is (the whole
    part: with a validation split carved from it, the images of both). Its labels
    ``y`` live on the training device; ``batches`` moves each batch there."""

    path: str = ""
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64 [N]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workers: int = WORKERS

    @classmethod
    def of(cls, path: str, rows: np.ndarray, y: torch.Tensor, workers: int = WORKERS) -> StreamSplit:
        x = torch.from_numpy(np.load(path, mmap_mode="c"))  # copy-on-write: writable, never written
        return cls(x, y, path, rows, torch.device("cpu"), workers)

    def to(self, device: torch.device) -> StreamSplit:
        """Labels to ``device``, and batches made there; the images stay on the host."""
        return StreamSplit(self.x, self.y.to(device), self.path, self.rows, torch.device(device), self.workers)

    def subset(self, index: torch.Tensor) -> StreamSplit:
        rows = self.rows[index.cpu().numpy()]
        return StreamSplit(self.x, self.y[index.to(self.y.device)], self.path, rows, self.device, self.workers)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of ``index`` as float32 in [0, 1] on ``device``, and their labels."""
        x = _Rows(self.path, self.rows)[index.cpu().numpy()]
        return self._ready(x), self.y[index.to(self.y.device)]

    def batches(self, order: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """As ``Split.batches``: the same batches, read by ``workers`` processes ahead
        of the loop (pinned where the device is CUDA)."""
        indices = order.cpu()
        sampler = torch.utils.data.BatchSampler(indices.tolist(), size, drop_last=False)
        loader = torch.utils.data.DataLoader(
            _Rows(self.path, self.rows),
            batch_size=None,
            sampler=sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        for start, x in zip(range(0, len(indices), size), loader, strict=True):
            yield self._ready(x), self.y[indices[start : start + size].to(self.y.device)]

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).float().div_(255)

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The split's images in order, ``size`` at a time, uint8 on the host."""
        images = np.load(self.path, mmap_mode="r")
        for i in range(0, len(self.rows), size):
            yield torch.from_numpy(images[self.rows[i : i + size]])
