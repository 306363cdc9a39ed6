"""What the backends share: the analysis of the spec they are given, output files
written whole or not at all, and the matching of a checkpoint's keys to a model's.
Nothing here imports torch, onnx or graphviz."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from netspec.analysis import Analysis, analyze
from netspec.errors import Location, SpecError
from netspec.spec.load import Spec

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def analysis_of(source: str | os.PathLike[str] | Spec | Analysis, params: Mapping[str, Any] | None) -> Analysis:
    """The analysis of a spec given as a path, a built-in name, a ``Spec`` or an ``Analysis``."""
    if isinstance(source, Analysis):
        if params:
            raise SpecError("params cannot be applied to an analysis; pass the spec's path or name instead")
        return source
    if not isinstance(source, Spec | str | os.PathLike):
        raise TypeError(f"expected a spec path, a built-in name, a Spec or an Analysis, got {type(source).__name__}")
    return analyze(source, dict(params) if params else None)


def check_directory(out: str | os.PathLike[str], what: str) -> Path:
    """``out`` as a path, or a one-line SpecError if its directory cannot take it."""
    path, where = Path(out), Location(os.fspath(out))
    folder = path.parent
    if not folder.is_dir():
        raise SpecError(f"cannot write the {what}: directory '{folder}' does not exist", where)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError(f"cannot write the {what}: directory '{folder}' is not writable", where)
    if path.is_dir():
        raise SpecError(f"cannot write the {what}: the path is a directory", where)
    return path


def write_atomic(out: str | os.PathLike[str], pieces: Iterable[Any], what: str) -> None:
    """Write ``pieces`` (bytes-like) to a temporary file beside ``out``, then rename
    it: ``out`` is always the old file or the whole new one, and an OSError is one
    line. Only a kill (SIGKILL, power loss) leaves the temporary file behind; the next
    write to ``out`` removes such leftovers (``_remove_stale``)."""
    path = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:  # held until closed: marks the file as a live write
                fcntl.flock(f, fcntl.LOCK_EX)
                _remove_stale(path, Path(tmp))
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())  # the data reaches the disk before the name points at it
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
            if fcntl is not None:
                os.replace(tmp, path)  # under the lock, so no cleanup removes the file first
        if fcntl is None:
            os.replace(tmp, path)  # Windows renames no open file (and has no leftovers cleanup)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise SpecError(f"cannot write the {what}: {e.strerror or e}", Location(os.fspath(out))) from None
        raise


def _remove_stale(path: Path, mine: Path) -> None:
    """Remove the temporary files that killed writes of ``path`` left behind: those of
    its name pattern whose writer holds no lock on them (a lock dies with its process).
    Best effort: a file that cannot be opened or locked stays. A concurrent writer
    caught between its mkstemp and its lock loses its file: its write fails with a
    one-line error, and ``path`` stays whole."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[^.]+\.tmp")  # mkstemp's random part has no dots
    try:
        candidates = [e.path for e in os.scandir(path.parent) if pattern.fullmatch(e.name) and e.name != mine.name]
    except OSError:
        return
    for candidate in candidates:
        try:
            fd = os.open(candidate, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(candidate)
        except OSError:
            pass  # locked: a write in progress (or not ours to remove)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def shape_of(value: Any) -> list[int]:
    return [int(d) for d in value.shape] if hasattr(value, "shape") else []


def match_keys(model: Mapping[str, list[int]], source: Mapping[str, Any], where: Location | None) -> dict[str, str]:
    """Which checkpoint key feeds each model key (``model``: key -> shape, in module
    order). Keys that agree by name map by name; the others pair up in order, and
    every pair must agree in shape. A checkpoint without BatchNorm's
    ``num_batches_tracked`` counters leaves the model's own. A mismatch is a
    SpecError naming the first mismatching key and both shapes."""
    keep_counters = not any(k.endswith("num_batches_tracked") for k in source)
    wanted = [k for k in model if not (keep_counters and k.endswith("num_batches_tracked"))]
    by_name = {k for k in wanted if k in source}
    rest_model = [k for k in wanted if k not in by_name]
    rest_ckpt = [k for k in source if k not in by_name]
    pairs = dict(zip(rest_model, rest_ckpt))

    def error(message: str) -> SpecError:
        return SpecError(message, where, hint="the checkpoint must come from a model of the same architecture")

    mapping = {k: k if k in by_name else pairs[k] for k in wanted if k in by_name or k in pairs}
    for k, src in mapping.items():
        if model[k] != shape_of(source[src]):
            how = "by name" if k == src else "by position"
            raise error(
                f"weights do not fit: model key '{k}' has shape {model[k]} but checkpoint key "
                f"'{src}' (matched {how}) has shape {shape_of(source[src])}"
            )
    if len(rest_model) > len(rest_ckpt):
        k = rest_model[len(rest_ckpt)]
        raise error(
            f"weights do not fit: the checkpoint has no tensor for model key '{k}' (shape {model[k]}); "
            f"it has {len(source)} tensors, the model {len(wanted)}"
        )
    if len(rest_ckpt) > len(rest_model):
        k = rest_ckpt[len(rest_model)]
        raise error(
            f"weights do not fit: checkpoint key '{k}' (shape {shape_of(source[k])}) has no counterpart in the model; "
            f"it has {len(source)} tensors, the model {len(wanted)}"
        )
    return mapping
