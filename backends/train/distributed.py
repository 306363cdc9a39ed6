"""Data-parallel training with PyTorch's own engine: ``torchrun`` starts the processes
(or ``netspec train --devices N`` starts torchrun's launcher), each process trains a
DistributedDataParallel copy of the module on its shard of every global batch, and
rank 0 alone logs and writes the run directory.

The global batch is the recipe's ``batch_size`` whatever the world size: each of the
N processes takes ``batch_size / N`` images of every step's batch, so N processes
take the same optimizer steps as one (the gradients are averaged over the ranks).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from netspec.errors import Location, SpecError

#: what torchrun sets in every process it starts
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs and writes the run directory."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> World:
        """Read from torchrun's environment; a plain process is a world of one."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        try:
            rank, size, local = (int(os.environ.get(k, "0")) for k in _ENV)
        except ValueError:
            values = ", ".join(f"{k}={os.environ.get(k)!r}" for k in _ENV)
            raise SpecError(f"torchrun's environment is not integers: {values}") from None
        return cls(rank, size, local)


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on the CPU) and return this rank's
    device: on CUDA, the GPU of its local rank."""
    if world.size == 1:
        return device
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise SpecError(
                f"process {world.rank} has local rank {world.local_rank}, but this machine has "
                f"{torch.cuda.device_count()} CUDA devices",
                hint="start at most one process per GPU (--nproc-per-node)",
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def local_batch(batch_size: int, world: World) -> int:
    """This rank's share of the global batch."""
    if batch_size % world.size:
        raise SpecError(
            f"the batch of {batch_size} images does not divide among {world.size} processes",
            Location("--batch-size"),
            hint=f"a multiple of {world.size}: the batch size is global, each process takes batch_size / {world.size}",
        )
    return batch_size // world.size


def shard(order: torch.Tensor, batch_size: int, steps: int, world: World) -> torch.Tensor:
    """This rank's indices of an epoch's ``order``: of every step's global batch of
    ``batch_size``, the rank's contiguous share, in step order."""
    if world.size == 1:
        return order[: steps * batch_size]
    share = batch_size // world.size
    per_step = order[: steps * batch_size].view(steps, batch_size)
    return per_step[:, world.rank * share : (world.rank + 1) * share].reshape(-1)


def eval_shard(n: int, world: World, device: torch.device) -> torch.Tensor:
    """This rank's indices of an evaluation over ``n`` images (every image once over
    all ranks; the metrics are summed with ``sum_all``)."""
    return torch.arange(world.rank, n, world.size, device=device)


def sum_all(x: torch.Tensor, world: World) -> torch.Tensor:
    """``x`` summed over the ranks (the same tensor on every rank)."""
    if world.size > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


def wrap(model: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """``model`` as DistributedDataParallel (batch norm synchronised over the ranks with
    ``sync_bn``, which PyTorch does on CUDA only); the module itself when alone."""
    if sync_bn and device.type != "cuda":
        raise SpecError(
            "sync_bn synchronises batch norm over CUDA devices; PyTorch has no SyncBatchNorm on the CPU",
            Location("--sync-bn"),
        )
    if world.size == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def from_main(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (e.g. the run directory it made)."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, world: World) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if world.size == 1:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def check_devices(n: int, device: str | None) -> None:
    """``--devices N`` asks for no more processes than there are devices: GPUs on
    CUDA, cores on the CPU."""
    cuda = (device is None and torch.cuda.is_available()) or (device or "").startswith("cuda")
    present = torch.cuda.device_count() if cuda else os.cpu_count() or 1
    if n < 1 or n > present:
        what = "CUDA devices" if cuda else "CPU cores"
        raise SpecError(f"--devices {n}: this machine has {present} {what}", Location("--devices"))


def launch(n: int, argv: Sequence[str]) -> int:
    """``netspec train ARGV`` in ``n`` processes on this machine, through torchrun's
    launcher (the same as ``torchrun --standalone --nproc-per-node N -m netspec ARGV``)."""
    from torch.distributed import run

    args = run.get_args_parser().parse_args(["--standalone", f"--nproc-per-node={n}", "-m", "netspec", *argv])
    try:
        run.run(args)  # type: ignore[no-untyped-call]
    except Exception as e:  # torchrun's ChildFailedError: the failing rank has printed its error
        failures = getattr(e, "failures", {})
        codes = [f.exitcode for f in failures.values()] if failures else [1]
        return int(max(codes)) or 1
    return 0
