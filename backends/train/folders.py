"""Image folders: ``DIR/<class>/...`` (the images of each class in a folder of its
own, at any depth), or the same under ``DIR/train/``, ``DIR/val/`` and ``DIR/test/``.

Classes are named by ``DIR/classes.txt`` (one a line, in class-index order; it must
name exactly the folders) or else are the folder names, sorted. Files and folders
whose names start with a dot are ignored; other files that are not images (by their
suffix) are skipped and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from netspec.backends.train.images import IMAGE_SUFFIXES, is_image
from netspec.errors import Location, SpecError, did_you_mean

CLASSES_FILE = "classes.txt"
SPLITS = ("train", "val", "test")


@dataclass
class Part:
    """The images of one folder of class folders (``DIR``, or ``DIR/train`` ...)."""

    root: str
    paths: list[str]
    labels: np.ndarray  # int64 [N], class indices


@dataclass
class Folder:
    classes: list[str]
    parts: dict[str, Part]  # 'all', or 'train' with 'val' and 'test' where present
    skipped: list[str] = field(default_factory=list)  # files that are not images


def _listing(path: str) -> tuple[list[str], list[str]]:
    """The visible folders and files of ``path``, sorted."""
    try:
        entries = [e for e in os.scandir(path) if not e.name.startswith(".")]
    except OSError as e:
        raise SpecError(f"cannot list the folder: {e.strerror or e}", Location(path)) from None
    folders = sorted(e.name for e in entries if e.is_dir())
    return folders, sorted(e.name for e in entries if not e.is_dir())


def check(root: str) -> None:
    """A located error unless ``root`` looks like an image folder (no image is read)."""
    folders, files = _listing(root)
    if folders:
        return
    images = sum(is_image(f) for f in files)
    raise SpecError(
        "the directory holds no class folders"
        + (f" ({images} images lie in it directly)" if images else " (and is not CIFAR-10's binary directory)"),
        Location(root),
        hint="put each class's images in a folder of its own: DIR/<class>/*.png (or DIR/train/<class>/, DIR/val/<class>/)",
    )


def scan(root: str) -> Folder:
    """The layout, class names and image paths of the image folder ``root``."""
    check(root)
    folders, _ = _listing(root)
    skipped: list[str] = []
    if "train" in folders:
        strays = [f for f in folders if f not in SPLITS]
        if strays:
            raise SpecError(
                f"folder '{strays[0]}' beside train/: a split image folder holds only train/, val/ and test/",
                Location(os.path.join(root, strays[0])),
                hint=f"move the class folders into train/ (or remove train/ to use {root}/<class>/ directly)",
            )
        found = {s: _classes_of(os.path.join(root, s)) for s in SPLITS if s in folders}
        for s, names in found.items():
            _same_classes(root, "train", found["train"], s, names)
        classes = _named(root, found["train"], os.path.join(root, "train"))
        parts = {s: _part(os.path.join(root, s), classes, skipped) for s in found}
    else:
        split = next((f for f in SPLITS if f in folders), None)
        if split is not None:
            raise SpecError(
                f"folder '{split}/' without train/: a split image folder holds train/ (and val/, test/)",
                Location(os.path.join(root, split)),
                hint="add train/, or rename the folder if it is a class",
            )
        classes = _named(root, folders, root)
        parts = {"all": _part(root, classes, skipped)}
    return Folder(classes, parts, skipped)


def _classes_of(path: str) -> list[str]:
    folders, _ = _listing(path)
    if not folders:
        raise SpecError(
            "the folder holds no class folders", Location(path), hint="put each class's images in DIR/<split>/<class>/"
        )
    return folders


def _same_classes(root: str, a: str, names_a: list[str], b: str, names_b: list[str]) -> None:
    for x, y, xs, ys in ((a, b, names_a, names_b), (b, a, names_b, names_a)):
        extra = [n for n in xs if n not in ys]
        if extra:
            raise SpecError(
                f"class folder '{extra[0]}' is in {x}/ but not in {y}/"
                + (f" ({len(extra)} such folders)" if len(extra) > 1 else ""),
                Location(os.path.join(root, y)),
                hint=did_you_mean(extra[0], [n for n in ys if n not in xs])
                or f"every split holds the same class folders; add {y}/{extra[0]}/ or remove {x}/{extra[0]}/",
            )


def _named(root: str, folders: list[str], where: str) -> list[str]:
    """The class names in index order: ``classes.txt``'s (checked against the
    folders of ``where``), or the sorted folder names."""
    path = os.path.join(root, CLASSES_FILE)
    if not os.path.isfile(path):
        return folders
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the class names: {e}", Location(path)) from None
    names: list[str] = []
    for number, name in enumerate(lines, 1):
        if not name:
            continue
        if name in names:
            raise SpecError(
                f"class '{name}' is named twice (line {lines.index(name) + 1} and here)", Location(path, number, 1)
            )
        if name not in folders:
            raise SpecError(
                f"class '{name}' has no folder in {where}",
                Location(path, number, 1),
                hint=did_you_mean(name, [f for f in folders if f not in lines])
                or f"add {where}/{name}/ or remove the line",
            )
        names.append(name)
    unnamed = [f for f in folders if f not in names]
    if unnamed:
        raise SpecError(
            f"folder '{unnamed[0]}' in {where} is not named in {CLASSES_FILE}"
            + (f" ({len(unnamed)} such folders)" if len(unnamed) > 1 else ""),
            Location(path),
            hint=f"add a line '{unnamed[0]}' (one class name a line, in class-index order)",
        )
    return names


def _part(path: str, classes: list[str], skipped: list[str]) -> Part:
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = os.path.join(path, name)
        images, others = _files(folder)
        if not images:
            raise SpecError(
                "the class folder holds no images"
                + (f" ({len(others)} other files, e.g. '{os.path.basename(others[0])}')" if others else ""),
                Location(folder),
                hint="images are " + ", ".join(IMAGE_SUFFIXES) + " files",
            )
        paths += images
        labels += [index] * len(images)
        skipped += others
    return Part(path, paths, np.asarray(labels, dtype=np.int64))


def _files(folder: str) -> tuple[list[str], list[str]]:
    """The image files under ``folder`` (at any depth) and the other visible files."""
    images: list[str] = []
    others: list[str] = []

    def failed(e: OSError) -> None:
        raise SpecError(f"cannot list the folder: {e.strerror or e}", Location(e.filename or folder))

    for top, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                (images if is_image(name) else others).append(os.path.join(top, name))
    return images, others
