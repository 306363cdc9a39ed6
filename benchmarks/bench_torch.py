"""The PyTorch backend against hand-written PyTorch modules of the same architectures.

For each model of the table (those whose spec exists in specs/), in one process:

* build time: ``netspec.compile(spec)`` (YAML to ready module: analysis, source
  generation, construction, initialisation) against constructing the hand-written
  module (``tests/torch_references.py``, torchvision's layout and initialisation);
  median of ``--build-runs``, alternating. Target: netspec / hand-written <= 1.2.
* speed: the hand-written module's state_dict is loaded into the compiled one
  (``netspec.load_weights``), then forward (eval, inference mode) and forward+backward
  (train mode, ``out.sum().backward()``) are timed, alternating the two modules run by
  run, after warm-up runs. Printed: median and best times and the speed ratio
  hand-written time / netspec time (target >= 0.98, i.e. netspec at most 2% slower).
* peak memory of inference: on CUDA, ``torch.cuda.max_memory_allocated`` above the
  weights and input. On CPU there is no allocator statistic, so the bytes of the
  tensors alive at once during the forward pass are tracked exactly: a
  ``TorchDispatchMode`` sees every tensor an op returns, counts its storage once
  (views and in-place results share it), and a weakref finaliser releases it when
  the last Python reference dies, which is when the module's code drops it. Weights
  and inputs are not counted; kernel workspaces and allocator caching are outside
  (they are the same kernels for both modules). Target: netspec / hand-written <= 1.05.

    python benchmarks/bench_torch.py [--models resnet50,mobilenet_v2] [--batches 1,16]
        [--resolution 224] [--runs 5] [--device cuda --dtype bfloat16 --compile]

Timings on a shared machine vary; the ratios compare runs interleaved in one process.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch_references import REFERENCES  # noqa: E402

import netspec  # noqa: E402
from netspec.backends import torch as backend  # noqa: E402

#: the models to compare: spec name -> hand-written builder (tests/torch_references.py).
#: Adding one is an entry in REFERENCES; those without a spec in specs/ are skipped.
DEFAULT_MODELS = ["resnet50", "mobilenet_v2", "densenet121"]  # the issue's; also: vgg16, alexnet, resnet18 ...

SPEED_TARGET = 0.98
MEMORY_TARGET = 1.05
BUILD_TARGET = 1.2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate(
    fns: dict[str, Callable[[], Any]], runs: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Times of each function, run in turn (a, b, a, b, ...) after warm-up runs."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - t)
    return times


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created while active and still referenced."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known  # storages that existed before (weights, inputs)
        self.refs: dict[int, list[int]] = {}  # data_ptr -> [bytes, live tensor objects]
        self.live = 0
        self.peak = 0

    def _release(self, ptr: int) -> None:
        entry = self.refs[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.refs[ptr]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr in self.known or storage.nbytes() == 0:
                continue
            entry = self.refs.get(ptr)
            if entry is None:
                entry = self.refs[ptr] = [storage.nbytes(), 0]
                self.live += entry[0]
                self.peak = max(self.peak, self.live)
            entry[1] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def peak_inference_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    model.eval()
    gc.collect()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    known = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)}
    mode = LiveBytes(known)
    with torch.inference_mode(), mode:
        y = model(x)
    del y
    return mode.peak


def fmt_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:9.1f} ms (best {min(times) * 1e3:8.1f})"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_model(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[bool]:
    results: list[bool] = []
    declared = netspec.load(name).model.params
    params = {"resolution": args.resolution} if args.resolution and "resolution" in declared else {}
    analysis = netspec.analyze(name, params)
    shape = analysis.inputs[analysis.graph.inputs[0]]
    print(f"\n== {name}  input {list(shape)}  {analysis.totals.params:,} params  {analysis.totals.macs:,} MACs")

    # -- build time (on the CPU at float32, as a user first builds a model)
    build: dict[str, list[float]] = {"hand-written": [], "netspec": []}
    for _ in range(args.build_runs):
        gc.collect()
        t = time.perf_counter()
        ref = REFERENCES[name]()
        build["hand-written"].append(time.perf_counter() - t)
        del ref
        gc.collect()
        backend._module_class.cache_clear()  # time the whole path: no cached class
        t = time.perf_counter()
        model = netspec.compile(name, **params)
        build["netspec"].append(time.perf_counter() - t)
        del model
    ratio = statistics.median(build["netspec"]) / statistics.median(build["hand-written"])
    results.append(ratio <= BUILD_TARGET)
    print(f"build      hand-written {fmt_ms(build['hand-written'])}   netspec {fmt_ms(build['netspec'])}")
    print(f"           netspec / hand-written = {ratio:.2f}  (target <= {BUILD_TARGET})  {verdict(results[-1])}")

    torch.manual_seed(0)
    ref = REFERENCES[name]().to(device=device, dtype=dtype)
    model = netspec.compile(name, device=device, dtype=dtype, **params)
    netspec.load_weights(model, ref.state_dict())
    if args.channels_last:
        ref = ref.to(memory_format=torch.channels_last)
        model = model.to(memory_format=torch.channels_last)
    runners: dict[str, torch.nn.Module] = {"hand-written": ref, "netspec": model}
    if args.compile:
        runners = {k: torch.compile(m) for k, m in runners.items()}  # type: ignore[misc]

    for batch in args.batches:
        x = torch.randn(batch, *shape, device=device, dtype=dtype)
        if args.channels_last:
            x = x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            ref.eval()
            model.eval()
            y_ref, y = runners["hand-written"](x), runners["netspec"](x)
            err = (y.float() - y_ref.float()).abs().max().item()

            def forward(m: torch.nn.Module, x: torch.Tensor = x) -> Callable[[], Any]:
                return lambda: m(x)

            fwd = alternate({k: forward(m) for k, m in runners.items()}, args.runs, args.warmup, device)
        ratio = min(fwd["hand-written"]) / min(fwd["netspec"])
        ratio_median = statistics.median(fwd["hand-written"]) / statistics.median(fwd["netspec"])
        results.append(max(ratio, ratio_median) >= SPEED_TARGET)
        print(
            f"batch {batch:<4} forward          hand-written {fmt_ms(fwd['hand-written'])}   netspec {fmt_ms(fwd['netspec'])}"
        )
        print(
            f"           speed ratio {ratio:.3f} best, {ratio_median:.3f} median  (target >= {SPEED_TARGET})  "
            f"{verdict(results[-1])}   max |difference| {err:.2e}"
        )

        ref.train()
        model.train()

        def step(m: torch.nn.Module, x: torch.Tensor = x) -> Callable[[], Any]:
            def run() -> None:
                m.zero_grad(set_to_none=True)
                m(x).float().sum().backward()

            return run

        fb = alternate({k: step(m) for k, m in runners.items()}, args.runs, args.warmup, device)
        ratio = min(fb["hand-written"]) / min(fb["netspec"])
        ratio_median = statistics.median(fb["hand-written"]) / statistics.median(fb["netspec"])
        results.append(max(ratio, ratio_median) >= SPEED_TARGET)
        print(
            f"           forward+backward hand-written {fmt_ms(fb['hand-written'])}   netspec {fmt_ms(fb['netspec'])}"
        )
        print(f"           speed ratio {ratio:.3f} best, {ratio_median:.3f} median  {verdict(results[-1])}")

        mem = {k: peak_inference_bytes(m, x) for k, m in (("hand-written", ref), ("netspec", model))}
        mratio = mem["netspec"] / mem["hand-written"]
        results.append(mratio <= MEMORY_TARGET)
        print(
            f"           peak inference memory hand-written {mem['hand-written'] / 2**20:.1f} MiB   "
            f"netspec {mem['netspec'] / 2**20:.1f} MiB   ratio {mratio:.3f}  (target <= {MEMORY_TARGET})  "
            f"{verdict(results[-1])}"
        )
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--models", help="comma-separated spec names (default: those of the table with a spec)")
    p.add_argument("--batches", help="comma-separated batch sizes (default 1,16; 64 on CUDA)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the spec's, e.g. 224)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per module (alternating)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--build-runs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", help="float32 or bfloat16 (float16 on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile both modules")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args()

    device = backend.resolve_device(args.device) or torch.device("cpu")
    dtype = backend.resolve_dtype(args.dtype) or torch.float32
    args.batches = [int(b) for b in (args.batches or ("64" if device.type == "cuda" else "1,16")).split(",")]
    available = set(netspec.zoo.names())
    names = args.models.split(",") if args.models else [n for n in DEFAULT_MODELS if n in available]
    for name in names:
        if name not in REFERENCES or name not in available:
            p.error(f"no spec or no hand-written reference for {name!r}")

    print(f"torch {torch.__version__}, device {device}, dtype {dtype}, threads {torch.get_num_threads()}"
          f"{', torch.compile' if args.compile else ''}{', channels_last' if args.channels_last else ''}")  # fmt: skip
    ok = []
    for name in names:
        ok += bench_model(name, args, device, dtype)
    print(f"\n{sum(ok)} of {len(ok)} targets met")
    return 1 if args.strict and not all(ok) else 0


if __name__ == "__main__":
    sys.exit(main())
