"""Wall time of ``netspec summary specs/vgg16.yaml`` against torchinfo's summary.

Both run as whole processes, started the same way from the same interpreter:

* netspec: ``python -m netspec summary specs/vgg16.yaml`` (no torch);
* the peer: what ``torchinfo.summary`` of the same network needs: import torch and
  torchinfo, build VGG-16 as an ``nn.Module`` (torchvision's layout, written out
  below since torchvision is not a dependency) and call
  ``torchinfo.summary(model, input_size=(1, 3, 224, 224))``.

Each is run once to warm the file cache and the bytecode cache (``PYTHONDONTWRITEBYTECODE``
is unset for the runs unless ``--keep-env``, as an installed package has its .pyc
files), then ``--runs`` times; the median and the minimum are printed. Targets: netspec <= 0.5 s and torchinfo / netspec >= 10x.

With ``--zoo NAME,NAME`` (default ``densenet201,resnet152``, the largest built-in specs
by layer count) it also times ``python -m netspec summary NAME`` for those built-in
specs, the same way and in the same interleaved runs, against the same 0.5 s target each.

Missing a target is reported, not a failure (unless ``--strict``): the exit status is
non-zero only when a process fails or torchinfo's parameter total differs from
netspec's.

    python benchmarks/bench_summary.py [--runs 7] [--zoo densenet201,resnet152]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = "specs/vgg16.yaml"
ZOO = "densenet201,resnet152"
TARGET_S = 0.5
TARGET_RATIO = 10.0
PEER_MARK = "PEER_TOTALS "


def vgg16():  # type: ignore[no-untyped-def]
    """torchvision's ``vgg16()`` (configuration D), without its weight initialisation."""
    from torch import nn

    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c = v

    class VGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, 1000),
            )

        def forward(self, x):  # type: ignore[no-untyped-def]
            x = self.avgpool(self.features(x))
            return self.classifier(x.flatten(1))

    return VGG()


def peer() -> int:
    """The peer process: torchinfo's summary of VGG-16, then its totals on one line."""
    import torch  # noqa: F401  (imported first, as a user of torchinfo would)
    import torchinfo

    stats = torchinfo.summary(vgg16(), input_size=(1, 3, 224, 224))
    print(PEER_MARK + json.dumps({"params": stats.total_params, "macs": stats.total_mult_adds}))
    return 0


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}:\n{p.stderr.strip()[-2000:]}")
    return dt, p.stdout, p.stderr


def measure(
    cmds: dict[str, list[str]], runs: int, env: dict[str, str]
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Times of ``runs`` runs of each command, interleaved so that all see the same
    machine (a shared machine's speed drifts), after one warm-up run each (file cache,
    bytecode cache); and each command's output."""
    outputs = {k: run(cmd, env)[1] for k, cmd in cmds.items()}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            times[k].append(run(cmd, env)[0])
    return times, outputs


# small packages pydantic brings along, counted with it
GROUPS = {"pydantic_core": "pydantic", "annotated_types": "pydantic", "typing_inspection": "pydantic"}
GROUPS["typing_extensions"] = "pydantic"


def import_shares(cmd: list[str], env: dict[str, str]) -> list[tuple[str, float]]:
    """Import time (ms) per package, from one run under ``-X importtime``.

    Each module's self time goes to its own package, or, for a standard-library module,
    to the nearest package that imported it (importlib.metadata, imported by pydantic,
    counts for pydantic); what only the interpreter's start-up imports is "stdlib".
    """
    _, _, err = run([cmd[0], "-X", "importtime", *cmd[1:]], env)
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), len(m.group(2)), m.group(3)))
    shares: dict[str, float] = {}
    stack: list[tuple[int, str | None]] = []  # (depth, package) of the importers of the current row
    for us, depth, name in reversed(rows):  # the output lists a module after the ones it imports
        while stack and stack[-1][0] >= depth:
            stack.pop()
        top = name.split(".")[0]
        package = None if top in sys.stdlib_module_names or top.startswith("_") else GROUPS.get(top, top)
        owner = package or next((p for _, p in reversed(stack) if p), None) or "stdlib"
        shares[owner] = shares.get(owner, 0.0) + us / 1000
        stack.append((depth, package or (stack[-1][1] if stack else None)))
    return sorted(shares.items(), key=lambda kv: -kv[1])


def show(label: str, times: list[float]) -> None:
    print(f"{label:<34} median {statistics.median(times):6.3f} s   min {min(times):6.3f} s   ({len(times)} runs)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="timed runs of each process (default: %(default)s)")
    p.add_argument(
        "--keep-env",
        action="store_true",
        help="leave PYTHONDONTWRITEBYTECODE as it is (by default it is unset for the runs, as Python caches bytecode normally)",
    )
    p.add_argument(
        "--zoo",
        default=ZOO,
        help="comma-separated built-in specs whose 'netspec summary NAME' is timed too, each against "
        f"the {TARGET_S} s target; '' for none (default: %(default)s)",
    )
    p.add_argument("--strict", action="store_true", help="also exit 1 when a time target is missed")
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)  # be the torchinfo process
    args = p.parse_args()
    if args.peer:
        return peer()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    zoo = list(dict.fromkeys(z.strip() for z in args.zoo.split(",") if z.strip()))
    if bad := [z for z in zoo if "/" in z or z.endswith((".yaml", ".yml"))]:
        p.error(f"--zoo takes names of built-in specs ('netspec zoo' lists them), got {', '.join(bad)}")

    py = sys.executable
    netspec_cmd = [py, "-m", "netspec", "summary", SPEC]
    peer_cmd = [py, str(Path(__file__).resolve()), "--peer"]
    print(f"Python {sys.version.split()[0]} ({py}); cwd {ROOT}")
    env = dict(os.environ)
    if env.get("PYTHONDONTWRITEBYTECODE") and not args.keep_env:
        # Without a bytecode cache every run compiles netspec's modules again (an
        # installed package has its .pyc files); the warm-up run writes the cache.
        del env["PYTHONDONTWRITEBYTECODE"]
        print("PYTHONDONTWRITEBYTECODE unset for the runs, so netspec's bytecode is cached (--keep-env: as is)")

    cmds = {"startup": [py, "-c", "pass"], "netspec": netspec_cmd}
    missing = [m for m in ("torch", "torchinfo") if importlib.util.find_spec(m) is None]
    if not missing:
        cmds["peer"] = peer_cmd
    for name in zoo:
        cmds[f"zoo:{name}"] = [py, "-m", "netspec", "summary", name]
    try:
        ns_json = json.loads(run([*netspec_cmd, "--format", "json"], env)[1])["totals"]
        shares = import_shares(netspec_cmd, env)
        times, outputs = measure(cmds, args.runs, env)
    except (RuntimeError, ValueError, KeyError) as e:
        print(f"FAILED: {e}")
        return 1
    print(f"{args.runs} timed runs of each process, interleaved, after one warm-up run each")
    show("python -c pass (startup floor)", times["startup"])
    show(f"netspec summary {SPEC}", times["netspec"])
    print(
        "  its imports (one -X importtime run, stdlib modules counted with their importer): "
        + ", ".join(f"{k} {v:.0f} ms" for k, v in shares if v >= 1)
    )
    ns = statistics.median(times["netspec"])

    failures: list[str] = []
    ratio = None
    if missing:
        print(f"peer skipped: {', '.join(missing)} not installed (pip install torch torchinfo)")
    else:
        show("torch + torchinfo.summary(vgg16)", times["peer"])
        ratio = statistics.median(times["peer"]) / ns
        line = next((x for x in reversed(outputs["peer"].splitlines()) if x.startswith(PEER_MARK)), None)
        if line is None:
            print("FAILED: the torchinfo peer printed no totals")
            return 1
        ti = json.loads(line[len(PEER_MARK) :])
        same = ti["params"] == ns_json["params"]
        print(
            f"\ncheck: total params  netspec {ns_json['params']:,}  torchinfo {ti['params']:,}  "
            + ("equal" if same else "DIFFERENT")
        )
        print(
            f"       (for information) MACs  netspec {ns_json['macs']:,}  torchinfo mult-adds {ti['macs']:,}"
            f"  ({100 * (ti['macs'] - ns_json['macs']) / ns_json['macs']:+.2f}%)"
        )
        if not same:
            failures.append("torchinfo's total params differ from netspec's")

    if zoo:
        print("\nbuilt-in specs (--zoo), same runs:")
        for name in zoo:
            show(f"netspec summary {name}", times[f"zoo:{name}"])

    print()
    missed = ns > TARGET_S
    print(f"target: netspec <= {TARGET_S} s: median {ns:.3f} s  {'MISSED' if missed else 'OK'}")
    if ratio is not None:
        low = ratio < TARGET_RATIO
        missed |= low
        print(f"target: torchinfo / netspec >= {TARGET_RATIO:g}x: {ratio:.1f}x  {'MISSED' if low else 'OK'}")
    for name in zoo:
        med = statistics.median(times[f"zoo:{name}"])
        slow = med > TARGET_S
        missed |= slow
        print(f"target: netspec summary {name} <= {TARGET_S} s: median {med:.3f} s  {'MISSED' if slow else 'OK'}")

    if failures:
        print("\nFAILED: " + "; ".join(failures))
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
