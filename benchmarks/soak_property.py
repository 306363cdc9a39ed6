"""Soak run of the property-based checks of ``tests/test_property.py``: many random
specs (not derandomised), each analysed, compiled, run against a PyTorch reference,
exported to ONNX, checked and run by onnxruntime (see ``tests/property_specs.py``).

Prints the number of cases, the agreements, the refusals by kind (both refuse; or
netspec refuses what PyTorch runs, deliberately) and the disagreements by kind with the
first spec of each. Exits 1 if there is any disagreement.

    python benchmarks/soak_property.py [--cases 2000] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, Phase, given, seed, settings
from property_specs import Case, Outcome, cases, check


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = p.parse_args()
    warnings.simplefilter("ignore")  # PyTorch's notes on padding='same', once per case
    outcomes: list[tuple[Outcome, Case]] = []

    @settings(
        max_examples=args.cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # nothing fails inside: no shrinking, no replay
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def run(case: Case) -> None:
        outcomes.append((check(case), case))

    if args.seed is not None:
        run = seed(args.seed)(run)
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start

    kinds: dict[str, int] = {}
    for outcome, _ in outcomes:
        kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
    bad = {o.kind: (o, c) for o, c in reversed(outcomes) if o.disagreement}
    ok, both = kinds.get("ok", 0), kinds.get("both refuse", 0)
    print(f"cases: {len(outcomes)} in {elapsed:.1f} s ({1000 * elapsed / max(len(outcomes), 1):.0f} ms each)")
    print(f"  agree, accepted and checked: {ok}")
    print(f"  agree, both refuse (PyTorch refuses too): {both}")
    print("refusals of what PyTorch runs (deliberate):")
    for kind, n in sorted(kinds.items()):
        if kind.startswith("refused: "):
            print(f"  {n:6d}  {kind.removeprefix('refused: ')}")
    print(f"disagreements: {sum(n for k, n in kinds.items() if k.startswith('disagreement'))}")
    for kind, (outcome, case) in sorted(bad.items()):
        print(f"  {kinds[kind]:6d}  {kind.removeprefix('disagreement: ')}: {outcome.detail}")
        print("          " + case.text.replace("\n", "\n          "))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
