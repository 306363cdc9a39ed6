"""The built-in specs: ``netspec/specs``, in the repository a link to ``specs/``."""

from __future__ import annotations

import os
from pathlib import Path

from netspec.errors import Location, SpecError, did_you_mean

_HERE = Path(__file__).resolve().parent


def specs_dir() -> Path:
    return _HERE / "specs"  # in the repository, a link to specs/ beside the package


def names() -> list[str]:
    """Names of the built-in specs, sorted."""
    d = specs_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve(source: str | os.PathLike[str]) -> Path:
    """A spec path: the file itself if it exists, else the built-in spec of that name."""
    path = Path(source)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem:
        builtin = specs_dir() / f"{stem}.yaml"
        if builtin.is_file():
            return builtin
    if path.exists():
        return path  # a directory: reading it gives the error
    if path.parent != Path(".") or path.suffix in (".yaml", ".yml"):  # written as a path: no zoo guess
        raise SpecError("no such file", Location(os.fspath(source)), hint=f"check the path (from {Path.cwd()})")
    raise SpecError(
        "no such file, and no built-in spec of that name",
        Location(os.fspath(source)),
        hint=did_you_mean(stem, names()) or "'netspec zoo' lists the built-in specs",
    )
