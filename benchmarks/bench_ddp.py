"""Data-parallel scaling: images/s of ``netspec train --devices N`` (torchrun's
processes, DistributedDataParallel, gloo on the CPU) against one process, same spec,
data, recipe and global batch, in the same run (alternating). On a GPU machine
``--device cuda`` compares N GPUs with one.

    python benchmarks/bench_ddp.py [--spec resnet18] [--devices 2] [--epochs 3] [--batch-size 64]

Prints each run's images/s (the median over its epochs after the first) and the
scaling efficiency: images/s with N processes / (N x images/s with one).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VARIABLES = {"resnet18": ["--set", "resolution=32", "--set", "classes=10"], "lenet5": []}


def run(spec: str, devices: int, args: argparse.Namespace, out: Path, name: str) -> float:
    command = [sys.executable, "-m", "netspec", "train", spec, "--out", str(out), "--name", name, "--quiet"]
    command += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--augment", "none"]
    command += ["--device", args.device, *VARIABLES.get(spec, [])]
    if devices > 1:
        command += ["--devices", str(devices)]
    # one thread a process: N processes on N cores against one process on one core
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(command, check=True, env=env)
    with (out / Path(spec).stem / name / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return statistics.median(float(r["images_per_s"]) for r in rows[1:] or rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default="resnet18")
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="alternating pairs of runs")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    one, many = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            one.append(run(args.spec, 1, args, Path(tmp), f"one{k}"))
            many.append(run(args.spec, args.devices, args, Path(tmp), f"many{k}"))
    a, b = statistics.median(one), statistics.median(many)
    print(f"{args.spec}, global batch {args.batch_size}, {args.device}, {args.threads} thread(s) a process")
    print(f"  1 process:    {a:,.0f} images/s  (runs: {', '.join(f'{v:,.0f}' for v in one)})")
    print(f"  {args.devices} processes: {b:,.0f} images/s  (runs: {', '.join(f'{v:,.0f}' for v in many)})")
    print(f"  speed-up {b / a:.2f}x, scaling efficiency {b / (args.devices * a):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
