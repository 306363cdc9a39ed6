"""The run directory: ``runs/<spec>/<n>/`` with ``config.yaml`` (the resolved recipe
and the spec's variables), ``spec.yaml`` (the spec as it was), ``metrics.csv``, and
``last.pt`` and ``best.pt`` (their ``model`` is the evaluated weights: the EMA when
the recipe has ``ema``), ``test.json``, ``confusion.csv`` and ``curves.png``. Every file
is written whole or not at all."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from netspec.backends.common import write_atomic
from netspec.errors import Location, SpecError

CHECKPOINT_FORMAT = 1


def new_run_dir(out: str | os.PathLike[str], spec: str, name: str | None) -> Path:
    """``out/spec/name``, or the next free number there; created empty."""
    base = Path(out) / spec
    try:
        base.mkdir(parents=True, exist_ok=True)
        if name is not None:
            run = base / name
            if run.exists():
                raise SpecError(
                    "the run directory exists",
                    Location(str(run)),
                    hint=f"--resume {run} continues it; or pick another --name",
                )
            run.mkdir()
            return run
        taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        n = max(taken, default=0) + 1
        while True:  # another run may take a number between our look and our mkdir
            try:
                (base / str(n)).mkdir()
                return base / str(n)
            except FileExistsError:
                n += 1
    except OSError as e:
        raise SpecError(f"cannot make the run directory: {e.strerror or e}", Location(str(base))) from None


def write_text(path: Path, text: str, what: str) -> None:
    write_atomic(path, [text.encode()], what)


def write_config(run: Path, config: Mapping[str, Any], spec_text: str) -> None:
    write_text(run / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False), "run configuration")
    write_text(run / "spec.yaml", spec_text, "spec copy")


def write_metrics(run: Path, columns: Iterable[str], history: list[dict[str, float]]) -> None:
    cols = list(columns)
    lines = [",".join(cols)] + [",".join(_cell(row[c]) for c in cols) for row in history]
    write_text(run / "metrics.csv", "\n".join(lines) + "\n", "metrics")


def _cell(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def save(path: Path, checkpoint: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, buffer)
    write_atomic(path, [buffer.getbuffer()], "checkpoint")


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any], dict[str, Any], str]:
    """A run directory's ``last.pt``, ``config.yaml`` and spec text, or a SpecError
    saying why it is not a run."""
    run = Path(run_dir)
    where = Location(os.fspath(run_dir))
    if not run.is_dir():
        raise SpecError("--resume: no such run directory", where)
    missing = [f for f in ("last.pt", "config.yaml", "spec.yaml") if not (run / f).is_file()]
    if missing:
        raise SpecError(
            f"--resume: not a run directory (it has no {', '.join(missing)})",
            where,
            hint="a run directory is what 'netspec train' made, such as runs/lenet5/1",
        )
    try:
        state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        spec_text = (run / "spec.yaml").read_text(encoding="utf-8")
    except Exception as e:  # torch raises many kinds for a corrupt file
        raise SpecError(
            f"--resume: cannot read the run: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", where
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not isinstance(config, dict):
        raise SpecError("--resume: last.pt is not a netspec training checkpoint", Location(str(run / "last.pt")))
    return run, state, config, spec_text


def check_spec(state: Mapping[str, Any], spec: str, where: str | os.PathLike[str]) -> None:
    """A checkpoint that names its spec must be of ``spec``."""
    of = state.get("spec")
    if isinstance(of, str) and of != spec:
        raise SpecError(
            f"the checkpoint is of spec '{of}', not '{spec}'",
            Location(os.fspath(where)),
            hint=f"give spec '{of}', or weights trained for '{spec}'",
        )
