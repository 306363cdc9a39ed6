"""Outputs are whole or absent: every file netspec writes goes to a temporary file
beside it that is renamed into place, so a writer killed at any point leaves the old
file or the whole new one. A kill can leave the temporary file; the next write of the
same output removes it, but never the temporary file of a write still in progress.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from netspec.backends import common

cli = pytest.importorskip("netspec.cli")

OLD = b"the old file, left by an earlier write\n"

SPEC = """
    inputs: {x: [3, 8, 8]}
    layers:
      - {op: conv2d, name: conv, out: 4, kernel: 3, padding: 1}
      - {op: batchnorm, name: bn}
      - relu
      - {op: global_avgpool, flatten: true}
      - {op: linear, name: fc, out: 2}
"""

#: (output name, extra flags): every kind of file the CLI writes. Summaries go to
#: stdout only.
WRITERS = [
    ("net.py", []),
    ("net.pt", []),
    ("net.onnx", []),
    ("net.onnx", ["--no-weights"]),
    ("net.dot", []),
    ("net.svg", []),
    ("net.png", []),
    ("net.pdf", []),
]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of write_atomic in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if re.fullmatch(r"\..+\.tmp", p.name))


def command(spec: Path, out: Path, flags: list[str]) -> list[str]:
    verb = "compile" if out.suffix in (".py", ".pt", ".onnx") else "render"
    return [verb, str(spec), "-o", str(out), *flags]


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The spec file; without Graphviz, a stand-in ``dot`` that echoes its input, so
    that the svg, png and pdf path (dot writes to a pipe, netspec writes the file)
    runs here too."""
    if shutil.which("dot") is None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "dot").write_text("#!/bin/sh\nexec cat\n")
        (bin_dir / "dot").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "spec" / "net.yaml"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(SPEC))
    return path


@pytest.mark.parametrize(("name", "flags"), WRITERS)
def test_every_writer_renames_a_temporary_file_into_place(
    name: str, flags: list[str], spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch" if name.endswith((".pt", ".py")) else "onnx" if "onnx" in name else "graphviz")
    out = tmp_path / name
    out.write_bytes(OLD)
    real, renamed = os.replace, []

    def replace(src: Any, dst: Any) -> None:
        assert out.read_bytes() == OLD, "the output was written before the rename"
        assert Path(src).parent == out.parent and Path(src).name.startswith(f".{name}.")
        renamed.append(Path(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert cli.main(command(spec, out, flags)) == 0
    assert renamed == [out]
    assert out.read_bytes() not in (OLD, b"")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("name", "flags"), WRITERS)
def test_a_failed_write_leaves_the_old_file(
    name: str,
    flags: list[str],
    spec: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch" if name.endswith((".pt", ".py")) else "onnx" if "onnx" in name else "graphviz")
    out = tmp_path / name
    out.write_bytes(OLD)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(command(spec, out, flags)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == OLD
    assert leftovers(tmp_path) == []


# --- killed writers -----------------------------------------------------------------

#: writes three pieces with write_atomic, stopping for a line on stdin at each point
#: named in the test (so the kill lands exactly there)
WRITER = """
import os, sys
from netspec.backends.common import write_atomic

def point(name):
    print(name, flush=True)
    sys.stdin.readline()

real_replace = os.replace

def replace(src, dst):
    point("renaming")
    real_replace(src, dst)
    point("renamed")

os.replace = replace

def pieces():
    for k in range(3):
        point(f"piece {k}")
        yield bytes([65 + k]) * 100_000

write_atomic(sys.argv[1], pieces(), "test file")
print("done", flush=True)
"""
NEW = b"A" * 100_000 + b"B" * 100_000 + b"C" * 100_000


def start_writer(target: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    # A guard, not a timing check: a test that waits on the writer by mistake fails.
    guard = threading.Timer(120, proc.kill)
    guard.daemon = True
    guard.start()
    return proc


def go_on(proc: subprocess.Popen[str]) -> None:
    """Let the writer go on from the point where it stopped."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def run_to(proc: subprocess.Popen[str], point: str) -> None:
    """Let the writer go on until it stops at ``point``."""
    assert proc.stdout is not None
    while (line := proc.stdout.readline().strip()) != point:
        assert line, f"the writer ended before '{point}'"
        go_on(proc)


def kill(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGKILL)  # nothing if it has ended and been waited for
    proc.wait()


@pytest.mark.parametrize("point", ["piece 0", "piece 2", "renaming", "renamed"])
def test_a_writer_killed_at_any_point_leaves_the_old_file_or_the_new_one(point: str, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(OLD)
    other = tmp_path / ".model.bin.x.abcdefgh.tmp"  # the leftover of another output's write
    other.write_bytes(b"")
    proc = start_writer(target)
    try:
        run_to(proc, point)
    finally:
        kill(proc)
    renamed = point == "renamed"
    assert target.read_bytes() == (NEW if renamed else OLD)
    stale = leftovers(tmp_path)
    assert len(stale) == (1 if renamed else 2)  # the kill left its temporary file before the rename
    # The next write of the same output removes what the kill left, and only that.
    common.write_atomic(target, [b"next"], "test file")
    assert target.read_bytes() == b"next"
    assert leftovers(tmp_path) == [other.name]


def test_a_write_in_progress_keeps_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    proc = start_writer(target)
    try:
        run_to(proc, "piece 1")
        live = leftovers(tmp_path)
        assert len(live) == 1
        common.write_atomic(target, [b"meanwhile"], "test file")  # a second writer of the same output
        assert leftovers(tmp_path) == live
        go_on(proc)
        run_to(proc, "done")
        assert proc.wait() == 0
    finally:
        kill(proc)
    assert target.read_bytes() == NEW  # the last rename wins, whole
    assert leftovers(tmp_path) == []


# --- the real CLI, killed while it writes a model -----------------------------------


def tensors(data: bytes, suffix: str) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the weights in a .onnx or .pt file (which must parse)."""
    if suffix == ".onnx":
        import onnx

        return {t.name: tuple(t.dims) for t in onnx.load_from_string(data).graph.initializer}
    import torch

    return {k: tuple(v.shape) for k, v in torch.load(io.BytesIO(data), weights_only=True).items()}


# Two kills of ~5 s each (the deterministic points are above): half-way through the
# streamed ONNX file, and as soon as the .pt file (one write of a buffer) exists.
@pytest.mark.parametrize(("name", "when"), [("model.onnx", 0.5), ("model.pt", 0.0)])
def test_the_cli_killed_while_writing_a_model(name: str, when: float, tmp_path: Path) -> None:
    """``when``: kill once the temporary file holds this fraction of the ~47 MB output
    (0: as soon as it exists), or as soon as the output itself changes (a writer that
    wrote it in place would be caught half-way). A writer that finished first is fine."""
    pytest.importorskip("torch")
    if name.endswith(".onnx"):
        pytest.importorskip("onnx")
    out = tmp_path / name
    out.write_bytes(OLD)
    args = ["compile", "resnet18", "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "netspec", *args], stderr=subprocess.DEVNULL)
    size, deadline = 46_800_000, time.monotonic() + 300  # a guard against a hang, not a timing check
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}.")]
            try:
                if out.stat().st_size != len(OLD) or (temps and temps[0].stat().st_size >= when * size):
                    break
            except FileNotFoundError:
                break  # renamed into place just now
            time.sleep(0.001)
    finally:
        kill(proc)
    killed = out.read_bytes()
    assert len(leftovers(tmp_path)) <= 1
    assert cli.main(args) == 0  # the next write
    assert leftovers(tmp_path) == []
    new = out.read_bytes()
    assert len(tensors(new, out.suffix)) > 100
    if killed != OLD:  # the killed writer had renamed its file: the whole of it
        assert tensors(killed, out.suffix) == tensors(new, out.suffix)
        if out.suffix == ".onnx":
            assert killed == new  # the same seed: the same bytes
