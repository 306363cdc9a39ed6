"""Stopping ``netspec train`` as users do, in subprocesses: SIGKILL once metrics.csv
has 2 epochs, and Ctrl-C (SIGINT) during epoch 2; each resumed with ``--resume``
ends with exactly the weights (EMA and trained) and metrics of an uninterrupted run
(CPU, one thread, a fixed seed)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import netspec
from netspec.cli import main

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

SPEC = """\
name: tiny
inputs: {image: [1, 8, 8]}
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - {op: dropout, p: 0.2}
  - flatten
  - {op: linear, out: 3}
"""
EPOCHS = 4
IMAGES = 600
STEPS = (IMAGES - IMAGES // 10) // 8  # val_split 0.1 held out; whole batches of 8
TIMING = {"images_per_s", "seconds"}


def _data(root: Path) -> None:
    (root / "tiny.yaml").write_text(SPEC)
    rng = np.random.default_rng(0)
    y = np.arange(IMAGES) % 3
    x = rng.integers(0, 40, (IMAGES, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2] = 250
    np.savez(root / "d.npz", x_train=x, y_train=y, x_test=x[:60], y_test=y[:60])


RECIPE = {"epochs": EPOCHS, "batch_size": 8, "ema": 0.9, "augment": ["flip", "crop", "cutout", "normalize"]}


def _command(name: str) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v if k != 'augment' else ','.join(v)}" for k, v in RECIPE.items()]
    return [
        sys.executable,
        "-m",
        "netspec",
        "train",
        "tiny.yaml",
        "--data",
        "d.npz",
        "--device",
        "cpu",
        "--quiet",
        *flags,
        "--name",
        name,
    ]


def _rows(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def _same_as_whole(run: Path, whole: Path) -> None:
    ours = torch.load(run / "last.pt", weights_only=True)
    theirs = torch.load(whole / "last.pt", weights_only=True)
    assert ours["epoch"] == theirs["epoch"] == EPOCHS and ours["partial"] is None
    assert ours["model"].keys() == theirs["model"].keys()
    for k, v in theirs["model"].items():  # the EMA (what is evaluated) ...
        assert torch.equal(ours["model"][k], v), k
    for k, v in theirs["ema"]["trained"].items():  # ... and the weights trained
        assert torch.equal(ours["ema"]["trained"][k], v), k

    def numbers(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    assert numbers(_rows(run)) == numbers(_rows(whole)) and len(_rows(run)) == EPOCHS
    assert (run / "test.json").read_text() == (whole / "test.json").read_text()
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]


def test_killed_and_interrupted_runs_resume_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _data(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = tmp_path / "runs" / "tiny"
    # both at once (each waits minutes for its imports on a loaded machine), each stopped on its own cue
    killed = subprocess.Popen(_command("killed"), cwd=tmp_path, env=env, text=True)
    stopped = subprocess.Popen(
        _command("stopped"), cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    cues = {killed: (runs / "killed", 2, signal.SIGKILL), stopped: (runs / "stopped", 1, signal.SIGINT)}
    deadline = time.monotonic() + 600
    while cues:
        for proc, (run, epochs, sig) in list(cues.items()):
            assert proc.poll() is None, f"{run.name} ended before its signal"
            if len(_rows(run)) >= epochs:  # SIGKILL once 2 epochs are in metrics.csv; Ctrl-C during epoch 2
                proc.send_signal(sig)
                del cues[proc]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert killed.wait() == -signal.SIGKILL
    out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 130, err
    assert "Traceback" not in err and out == ""

    kept = torch.load(runs / "killed" / "last.pt", weights_only=True)
    assert kept["epoch"] in (1, 2, 3) and kept["partial"] is None  # a kill keeps the last whole epoch
    kept = torch.load(runs / "stopped" / "last.pt", weights_only=True)
    assert kept["epoch"] in (1, 2, 3) and kept["partial"] is not None  # Ctrl-C keeps the step it stopped at
    step = kept["partial"]["step"]
    assert len(kept["partial"]["losses"]) == step and len(kept["history"]) == kept["epoch"]
    assert err == (
        f"interrupted in epoch {kept['epoch'] + 1} before step {step + 1} of {STEPS}: last.pt keeps the run as it"
        f" was there ({kept['epoch']} epochs and {step} steps done)\n  resume: netspec train --resume"
        " runs/tiny/stopped\n"
    )

    # the uninterrupted run and the resumed ones in this process, on one thread as the subprocesses ran
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = netspec.train(tmp_path / "tiny.yaml", "d.npz", name="whole", device="cpu", quiet=True, **RECIPE)
        for name in ("killed", "stopped"):
            assert main(["train", "--resume", str(runs / name), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert capsys.readouterr().out == ""
    for name in ("killed", "stopped"):
        _same_as_whole(runs / name, whole.directory)
