"""The built wheel: only the netspec package at the top level, with the CLI, the
backends and the built-in specs mapped under it, and working once installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytest.importorskip("hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("netspec-*.whl")
    return whl


def test_wheel_puts_only_netspec_at_the_top_level(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"netspec", next(t for t in top if t.endswith(".dist-info"))}
    for expected in (
        "netspec/cli.py",
        "netspec/backends/__init__.py",
        "netspec/specs/vgg16.yaml",
        "netspec/ops/conv2d.py",
    ):
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "netspec = netspec.cli:main" in entry_points


def test_installed_wheel_runs_a_builtin_spec(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)  # a wheel is laid out as site-packages
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import sys, netspec; from netspec.cli import main; print(netspec.__file__); sys.exit(main(['summary', 'alexnet']))"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))
    assert "61,100,840" in r.stdout
