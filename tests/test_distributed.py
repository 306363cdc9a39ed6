"""Data-parallel training: the shards of the ranks make up each global batch, and
torchrun's processes train as one process does."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netspec.errors import SpecError

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("netspec.backends.train.distributed")
World = distributed.World


@pytest.mark.parametrize("size", [1, 2, 4])
def test_the_shards_of_the_ranks_make_up_every_global_batch(size: int) -> None:
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    batch, steps = 8, 37 // 8
    shards = [distributed.shard(order, batch, steps, World(rank, size)) for rank in range(size)]
    assert all(len(s) == steps * batch // size for s in shards)
    for step in range(steps):
        parts = [s[step * (batch // size) : (step + 1) * (batch // size)] for s in shards]
        assert torch.equal(torch.cat(parts), order[step * batch : (step + 1) * batch])


def test_evaluation_shards_cover_every_image_once() -> None:
    parts = [distributed.eval_shard(10, World(r, 3), torch.device("cpu")) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def test_a_batch_that_does_not_divide_names_the_option() -> None:
    assert distributed.local_batch(64, World(1, 4)) == 16
    with pytest.raises(SpecError, match="the batch of 30 images does not divide among 4 processes") as e:
        distributed.local_batch(30, World(0, 4))
    assert "--batch-size" in e.value.format()


def test_the_world_comes_from_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert World.from_env() == World(0, 1, 0) and World.from_env().main
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert World.from_env() == World(3, 4, 1) and not World.from_env().main
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(SpecError, match="torchrun's environment is not integers"):
        World.from_env()


def test_more_devices_than_present_and_sync_bn_on_the_cpu_are_located_errors() -> None:
    import os

    with pytest.raises(SpecError, match=f"--devices 999: this machine has {os.cpu_count()} CPU cores"):
        distributed.check_devices(999, "cpu")
    with pytest.raises(SpecError, match="no SyncBatchNorm on the CPU"):
        distributed.wrap(torch.nn.Linear(2, 2), World(0, 2), torch.device("cpu"), sync_bn=True)


# --- torchrun's processes train as one process does ----------------------------------

SPEC = """\
name: tiny
inputs: {image: [1, 8, 8]}
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - relu
  - flatten
  - {op: linear, out: 3}
"""
EPOCHS = 4
FLAGS = ["--epochs", str(EPOCHS), "--batch-size", "16", "--augment", "none", "--optimizer", "sgd", "--lr", "0.05"]
COMPARED = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr")


def _data(root: Path) -> None:
    np = pytest.importorskip("numpy")
    (root / "tiny.yaml").write_text(SPEC)
    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    x = rng.integers(0, 60, (240, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 3] = 200
    np.savez(root / "d.npz", x_train=x, y_train=y, x_test=x[:30], y_test=y[:30])


def _train(root: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "netspec", "train", "tiny.yaml", "--data", "d.npz", "--out", "runs"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, "--name", name, "--device", "cpu", *FLAGS, *extra],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed with torchrun's workers
    )


def _finish(p: subprocess.Popen[str]) -> str:
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    return out


def _metrics(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _same_training(a: Path, b: Path) -> None:
    ma, mb = _metrics(a), _metrics(b)
    assert len(ma) == len(mb) == EPOCHS
    for ra, rb in zip(ma, mb):
        for key in COMPARED:  # the order of float sums differs between 1 and 2 processes
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (key, ra, rb)
    wa = torch.load(a / "last.pt", weights_only=False)["model"]
    wb = torch.load(b / "last.pt", weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], rtol=1e-4, atol=1e-5), key


def test_two_processes_train_as_one_and_resume_in_one(tmp_path: Path) -> None:
    """Two gloo processes (``--devices 2``, through torchrun's launcher) with the same
    global batch give one process's losses, accuracies and final weights (to float
    rounding); a run of two processes killed after epoch 2 resumes in one."""
    _data(tmp_path)
    one, two, killed = _train(tmp_path, "one"), _train(tmp_path, "two", "--devices", "2"), None
    out = _finish(two)
    assert "2 processes, 8 images of each batch of 16 each" in out and out.count("epoch 1/4") == 1  # rank 0 logs
    killed = _train(tmp_path, "killed", "--devices", "2")
    metrics = tmp_path / "runs" / "tiny" / "killed" / "metrics.csv"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3) and killed.poll() is None:
        assert time.monotonic() < deadline, "the run did not reach epoch 2"
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    _finish(one)
    runs = tmp_path / "runs" / "tiny"
    _same_training(runs / "one", runs / "two")
    state = torch.load(runs / "killed" / "last.pt", weights_only=False)
    assert 1 <= state["epoch"] < EPOCHS and len(state["rng"]["augment"]) == 2  # written by 2 processes
    resumed = subprocess.run(
        [sys.executable, "-m", "netspec", "train", "--resume", str(runs / "killed")],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _same_training(runs / "one", runs / "killed")
