"""Data-parallel training: the shards of the ranks make up each global batch, and
torchrun's processes train as one process does."""

from __future__ import annotations

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
