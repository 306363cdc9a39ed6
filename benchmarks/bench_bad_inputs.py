"""How fast the worst bad inputs are refused, against accepting a good input of the
same size in the same run.

Each case is a spec that netspec must refuse with a located error: a cycle at the
input of a long chain (the cycle report once was quadratic in the layers after it), a
list of 2.5 million values (refused while reading), an alias bomb, 100,000 levels of
nesting, a file over the size limit, a repeat of ten million. The peer of each is the
work a good input of the same size costs: `netspec.analyze` of the chain without the
cycle, and PyYAML's own C loader reading the same text. Targets: a refusal costs at
most what accepting its peer costs (ratio <= 1), and one without a peer (its size is
fixed) takes at most 2 s. The tests bound the same cases by work (lines of Python run, memory),
which a machine's speed does not change; this script gives the seconds.

    python benchmarks/bench_bad_inputs.py [--layers 100000] [--strict]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netspec  # noqa: E402
from netspec.spec.yamlload import MAX_FILE_BYTES  # noqa: E402

LIMIT_S = 2.0
HEAD = "inputs: {x: [3, 8, 8]}\n"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def chain(n: int, cycle: bool) -> str:
    first = "  - {op: relu, name: a, inputs: [b]}\n" if cycle else "  - {op: relu, name: a}\n"
    return HEAD + "layers:\n" + first + "  - {op: relu, name: b}\n" + "  - relu\n" * n


def refusal(fn: Callable[[], Any]) -> tuple[float, float, str]:
    """Seconds, peak MiB (a second run, under tracemalloc, which slows it) and the
    error line of a call that must raise SpecError."""
    start = time.perf_counter()
    try:
        fn()
    except netspec.SpecError as e:
        message = e.format().splitlines()[0]
    else:
        message = "ACCEPTED (should be refused)"
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    try:
        fn()
    except netspec.SpecError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return elapsed, peak, message


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=100_000, help="layers after the cycle (default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args()

    big_list = HEAD + "layers: [relu]\nparams:\n  v: [" + ", ".join(["1"] * 2_500_000) + "]\n"
    bomb = (
        HEAD
        + "layers: [relu]\nparams:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
    )
    cycle_text, good_chain = chain(args.layers, cycle=True), chain(args.layers, cycle=False)
    with tempfile.TemporaryDirectory() as tmp:
        huge = Path(tmp) / "huge.yaml"
        with open(huge, "w") as f:
            f.write(HEAD + "layers: [relu]\n")
            f.truncate(MAX_FILE_BYTES + 1)
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
            (
                f"cycle before {args.layers:,} layers",
                lambda: netspec.analyze_text(cycle_text),
                lambda: netspec.analyze_text(good_chain),
            ),
            ("2,500,000 list values", lambda: netspec.analyze_text(big_list), lambda: yaml.load(big_list, _LOADER)),
            ("alias bomb (10^10 values)", lambda: netspec.analyze_text(bomb), None),
            ("100,000 levels of '['", lambda: netspec.analyze_text("[" * 100_000), None),
            ("file over 32 MiB", lambda: netspec.analyze(huge), None),
            (
                "repeat: 10,000,000",
                lambda: netspec.analyze_text(HEAD + "layers:\n  - {op: relu, repeat: 10000000}\n"),
                None,
            ),
        ]
        netspec.analyze_text(HEAD + "layers: [relu]\n")  # warm-up: validators are built on first use
        print(f"{'case':<30} {'refused in':>10} {'peak MiB':>9} {'peer s':>8} {'ratio':>6}  verdict")
        missed = 0
        for name, bad, peer in cases:
            s, mib, message = refusal(bad)
            peer_s = seconds(peer) if peer else None
            ratio = s / peer_s if peer_s else None
            ok = (s <= LIMIT_S if ratio is None else ratio <= 1.0) and not message.startswith("ACCEPTED")
            missed += not ok
            peer_text = f"{peer_s:8.2f} {ratio:6.2f}" if peer_s and ratio is not None else f"{'-':>8} {'-':>6}"
            print(f"{name:<30} {s:9.2f}s {mib:9.1f} {peer_text}  {'ok' if ok else 'MISSED'}")
            print(f"    {message[:150]}")
    print(f"targets: each refusal <= its peer's time, or <= {LIMIT_S:.0f} s without one; {missed} missed")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
