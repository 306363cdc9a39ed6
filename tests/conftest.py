from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import netspec

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NETSPEC_SHARED", REPO.parent / "shared"))


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
    path = SHARED / "reference" / "models.json"
    if not path.is_file():
        message = f"reference figures not found at {path} (set NETSPEC_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI has ../shared beside the clone: a skip would hide its absence
        pytest.skip(message)
    data: dict[str, Any] = json.loads(path.read_text())
    return data
