"""ONNX export time: netspec's backend against torch.onnx.export, same module, same process.

Both export the same ``nn.Module`` (``netspec.compile(MODEL)`` in eval mode) with its
weights to a file: netspec from the spec (analysis, lowering, weights by name,
serialisation, atomic write), PyTorch by tracing the module (the TorchScript exporter,
``dynamo=False``; then the dynamo exporter if it works here, which needs onnxscript).
Runs alternate after one warm-up each; best and median are printed. Cross-check:
onnxruntime runs netspec's file and must reproduce the module's output (1e-4 relative).

    python benchmarks/bench_onnx.py [--model resnet50] [--runs 5] [--strict]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import netspec

TARGET = 4.0  # torch.onnx.export (TorchScript) / netspec >= 4


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = p.parse_args()

    torch.manual_seed(0)
    model = netspec.compile(args.model).eval()
    a = netspec.analyze(args.model)
    x = torch.randn(1, *a.inputs[a.graph.inputs[0]])
    tmp = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    ours_path, ts_path, dyn_path = tmp / "netspec.onnx", tmp / "torchscript.onnx", tmp / "dynamo.onnx"

    def ours() -> None:
        netspec.export_onnx(args.model, ours_path, weights=model, opset=args.opset)

    def torchscript() -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(ts_path), dynamo=False, opset_version=args.opset)

    def dynamo() -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(dyn_path), dynamo=True, opset_version=max(args.opset, 18))

    peers: dict[str, Callable[[], None]] = {"netspec": ours, "torch.onnx.export(dynamo=False)": torchscript}
    try:
        dynamo()
        peers["torch.onnx.export(dynamo=True)"] = dynamo
    except Exception as e:  # onnxscript missing, no network for its registry, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"dynamo exporter skipped: {type(e).__name__}: {first[:150]}")
    for fn in peers.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(args.runs):
        for name, fn in peers.items():
            times[name].append(timed(fn))

    # cross-check: onnxruntime on netspec's file reproduces the module
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort.InferenceSession(str(ours_path), providers=["CPUExecutionProvider"]).run(
        None, {a.graph.inputs[0]: x.numpy()}
    )[0]
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    print(f"{args.model}: {a.totals.params:,} params, opset {args.opset}, {args.runs} runs, torch {torch.__version__}")
    print(f"{'exporter':36} {'best s':>8} {'median s':>9} {'file MB':>8}")
    sizes = {
        "netspec": ours_path,
        "torch.onnx.export(dynamo=False)": ts_path,
        "torch.onnx.export(dynamo=True)": dyn_path,
    }
    for name, ts in times.items():
        print(f"{name:36} {min(ts):8.3f} {statistics.median(ts):9.3f} {sizes[name].stat().st_size / 1e6:8.1f}")
    best = {name: min(ts) for name, ts in times.items()}
    for name in peers:
        if name != "netspec":
            print(f"ratio {name} / netspec: {best[name] / best['netspec']:.1f}x (best), "
                  f"{statistics.median(times[name]) / statistics.median(times['netspec']):.1f}x (median)")  # fmt: skip
    ratio = best["torch.onnx.export(dynamo=False)"] / best["netspec"]
    ok = ratio >= TARGET
    print(
        f"target: netspec <= 1/{TARGET:g} of the TorchScript exporter's time: {'met' if ok else 'MISSED'} ({ratio:.1f}x)"
    )
    print(f"cross-check: onnxruntime vs the module, relative error {err:.1e} ({'ok' if err <= 1e-4 else 'FAILED'})")
    if err > 1e-4:
        return 1
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
