"""netspec: neural networks written as YAML specs, analysed statically and compiled
to PyTorch, ONNX and Graphviz.

The core (this package minus ``netspec.backends``) is pure Python: it imports no
torch, onnx or graphviz.
"""

from __future__ import annotations

import os

from netspec.analysis import Analysis, LayerInfo, Totals, analyze, analyze_graph, analyze_text, load
from netspec.errors import Location, SpecError
from netspec.graph.ir import Graph, Node
from netspec.graph.lower import lower
from netspec.spec.load import Spec, load_text
from netspec.summary import format_analysis, to_dict

__version__ = "0.1.0"

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
    "format_analysis",
    "load",
    "load_text",
    "lower",
    "to_dict",
]
