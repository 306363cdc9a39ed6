"""netspec: neural networks written as YAML specs, analysed statically and compiled
to PyTorch, ONNX and Graphviz.

The core (this package minus ``netspec.backends``) is pure Python: it imports no
torch, onnx or graphviz.
"""

from __future__ import annotations

import os
from typing import Any

from netspec.analysis import Analysis, LayerInfo, Totals, analyze, analyze_graph, analyze_text, load
from netspec.errors import Location, SpecError
from netspec.graph.ir import Graph, Node
from netspec.graph.lower import lower
from netspec.spec.load import Spec, load_text
from netspec.summary import format_analysis, to_dict

__version__ = "0.1.0"


def compile(
    spec_or_path: Any,
    params: Any = None,
    *,
    weights: Any = None,
    device: Any = None,
    dtype: Any = None,
    init: str | None = None,
    **overrides: Any,
) -> Any:
    """Build a ``torch.nn.Module`` from a spec (path, built-in name, ``Spec`` or
    ``Analysis``): ``netspec.compile("resnet18", classes=10)``. Keyword ``overrides``
    set the spec's variables; ``weights`` is a state_dict or a file loaded with
    ``load_weights``; ``init`` is ``"torchvision"`` or ``"pytorch"`` (default: the
    spec's ``init`` key). See
    ``netspec.backends.torch.compile``; torch is imported only when this is called."""
    from netspec.backends import torch as backend

    return backend.compile(spec_or_path, params, weights=weights, device=device, dtype=dtype, init=init, **overrides)


def load_weights(model: Any, state_dict: Any) -> dict[str, str]:
    """Load a checkpoint (a state_dict or a file) of an equivalent model into ``model``:
    keys map by name where they agree, otherwise by order and shape; a mismatch raises
    a ``SpecError`` naming the first mismatching key and both shapes."""
    from netspec.backends import torch as backend

    mapping: dict[str, str] = backend.load_weights(model, state_dict)
    return mapping


# In the repository, cli.py and backends/ sit beside this package (the layout the
# design card fixes); the wheel installs them as netspec/cli.py and netspec/backends/.
# Searching the repository root too gives both the same import names.
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_root, "cli.py")) and os.path.isfile(os.path.join(_root, "pyproject.toml")):
    __path__.append(_root)

__all__ = [
    "Analysis",
    "Graph",
    "LayerInfo",
    "Location",
    "Node",
    "Spec",
    "SpecError",
    "Totals",
    "analyze",
    "analyze_graph",
    "analyze_text",
    "compile",
    "format_analysis",
    "load",
    "load_text",
    "load_weights",
    "lower",
    "to_dict",
]
