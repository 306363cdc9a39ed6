"""A few hundred mutants of the zoo specs (benchmarks/fuzz_specs.py, fixed seed) in the
normal test run: each gives a result or one located, short SpecError, quickly."""

from __future__ import annotations

import gc
import importlib.util
import sys
from types import ModuleType

from conftest import REPO


def _fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_specs", REPO / "benchmarks" / "fuzz_specs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_mutants_of_the_zoo_give_located_short_errors_quickly() -> None:
    fuzz = _fuzzer()
    # In process (jobs=0), after the rest of the suite: what earlier tests left on the
    # heap is moved out of the collector's sight, so that each mutant's CPU time is
    # its own work, as in the benchmark's fresh workers, and not the collector
    # walking other tests' objects.
    gc.collect()
    gc.freeze()
    try:
        report = fuzz.fuzz(seed=12, count=300, cli_count=30, timeout=2.0, jobs=0)
    finally:
        gc.unfreeze()
    cases = sorted(fuzz.TARGET_ZERO)
    shown = "\n\n".join(f"{r.outcome}: {m.describe()}\n{r.detail}" for r, m in report.bad[:5])
    assert not report.bad, f"{len(report.bad)} mutants miss a target ({', '.join(cases)}):\n{shown}"
    api, cli = report.counts[False], report.counts[True]
    assert sum(api.values()) == 300 and sum(cli.values()) == 30
    assert api["located"] > 200 and api["accepted"] > 0  # the mutants do reach the checks
