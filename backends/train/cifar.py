"""CIFAR-10's binary version (``cifar-10-batches-bin/``): five training batches and a
test batch of records of one label byte and 3,072 pixel bytes (the red, green and
blue 32 x 32 planes), and ``batches.meta.txt`` naming the classes, one a line."""

from __future__ import annotations

import os

import numpy as np

from netspec.errors import Location, SpecError

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32


def find(path: str) -> str | None:
    """The batch directory ``path`` is (or holds as ``cifar-10-batches-bin/``), or None."""
    for folder in (path, os.path.join(path, FOLDER)):
        if os.path.isfile(os.path.join(folder, TRAIN_FILES[0])):
            return folder
    return None


def read(folder: str, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Train images and labels, test images and labels (uint8 [N, 3, 32, 32], int64
    [N]) and the class names of the batch directory ``folder``."""
    if (c, h, w) != SHAPE:
        raise SpecError(
            f"CIFAR-10 images are {list(SHAPE)}, but the spec takes [{c}, {h}, {w}] (channels, height, width)",
            Location(folder),
            hint="make the spec's input [3, 32, 32]",
        )
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise SpecError(f"the CIFAR-10 directory has no {', '.join(missing)}", Location(folder))
    classes = _classes(folder)
    train = [_batch(os.path.join(folder, f), len(classes)) for f in TRAIN_FILES]
    x_test, y_test = _batch(os.path.join(folder, TEST_FILE), len(classes))
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        classes,
    )


def _classes(folder: str) -> list[str]:
    path = os.path.join(folder, META_FILE)
    if not os.path.isfile(path):
        return [str(i) for i in range(10)]
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the class names: {e}", Location(path)) from None
    while names and not names[-1]:
        names.pop()
    if not names or not all(names):
        raise SpecError("expected one class name a line, with no blank lines between", Location(path))
    return names


def _batch(path: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise SpecError(f"cannot read the batch: {e.strerror or e}", Location(path)) from None
    if raw.size % RECORD:
        raise SpecError(
            f"the file is {raw.size:,} bytes, not a whole number of {RECORD:,}-byte records (truncated?)",
            Location(path),
        )
    records = raw.reshape(-1, RECORD)
    y = records[:, 0].astype(np.int64)
    if len(y) and y.max() >= classes:
        first = int(np.argmax(y >= classes))
        raise SpecError(
            f"record {first} has label {int(y[first])}, but there are {classes} classes",
            Location(path),
        )
    return np.ascontiguousarray(records[:, 1:].reshape(-1, *SHAPE)), y
