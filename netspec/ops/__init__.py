"""Ops: one module per op kind, each registering itself in ``REGISTRY``.

Importing this package imports every module beside it, so adding an op is adding
its file.
"""

from __future__ import annotations

import importlib
import pkgutil

from netspec.ops.base import REGISTRY, Attrs, Op, Shape, Tensor, register_op

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")


def op_names() -> list[str]:
    """Canonical op names (aliases left out), sorted."""
    return sorted({op.name for op in REGISTRY.values()})


__all__ = ["REGISTRY", "Attrs", "Op", "Shape", "Tensor", "op_names", "register_op"]
