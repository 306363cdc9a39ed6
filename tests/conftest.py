from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import netspec

REPO = Path(__file__).resolve().parents[1]
#: the project's copy of the reference figures (tests/reference/README.md says where they come from)
REFERENCE = REPO / "tests" / "reference"
#: the team's shared folder beside the clone, where the figures are kept upstream (optional)
SHARED = Path(os.environ.get("NETSPEC_SHARED", REPO.parent / "shared"))


def reference(name: str) -> Any:
    """A reference file of the project's copy; it is part of the repository, so a
    missing one fails the tests that need it instead of skipping them."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"reference figures missing: {path}")
    return json.loads(path.read_text())


def analyze_yaml(text: str, **params: Any) -> netspec.Analysis:
    """Analyse a spec written inline in a test (dedented)."""
    return netspec.analyze_text(textwrap.dedent(text), params or None, path="test.yaml")


def small_zoo(name: str) -> netspec.Analysis:
    """The zoo spec with 10 classes at the smallest resolution it accepts (of a few), so
    that building and running it is cheap (the variables the spec has)."""
    declared = netspec.load(name).model.params
    base = {"classes": 10} if "classes" in declared else {}
    if "resolution" not in declared:
        return netspec.analyze(name, base)
    for resolution in (32, 64, 96, 128, 160):
        try:
            return netspec.analyze(name, {**base, "resolution": resolution})
        except netspec.SpecError:
            continue  # too small for this architecture
    return netspec.analyze(name, base)


@pytest.fixture(scope="session")
def reference_models() -> dict[str, Any]:
    data: dict[str, Any] = reference("models.json")
    return data


class TooMuchWork(AssertionError):
    pass


@contextlib.contextmanager
def at_most_lines(limit: int) -> Iterator[list[int]]:
    """Fail once the code inside has run more than ``limit`` lines of Python: a bound
    on the work done (the tests' stand-in for "fast"), the same on every machine,
    unlike a wall-clock bound. Yields a one-item list holding the count so far."""
    count = [0]

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            count[0] += 1
            if count[0] > limit:
                raise TooMuchWork(f"ran more than {limit:,} lines of Python")
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        yield count
    finally:
        sys.settrace(previous)
