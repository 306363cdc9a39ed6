"""netspec: neural networks written as YAML specs, analysed statically and compiled
to PyTorch, ONNX and Graphviz.

The core (this package minus ``netspec.backends``) is pure Python: it imports no
torch, onnx or graphviz.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def export_onnx(spec_or_path: Any, out: Any = None, params: Any = None, **options: Any) -> Any:
    """The ``onnx.ModelProto`` of a spec, emitted from the graph (no tracing), written
    to ``out`` (``.onnx``) when given: ``netspec.export_onnx("resnet18", "r18.onnx",
    weights=model, dynamic_batch=True)``. Options: ``weights`` (state_dict, module or
    ``.pt`` file), ``seed``, ``init``, ``opset``, ``dynamic_batch``, ``batch``,
    ``structure_only`` (no tensors, no torch) and the spec's variables. See
    ``netspec.backends.onnx.export``; onnx is imported only when this is called."""
    from netspec.backends import onnx as backend

    return backend.export(spec_or_path, out, params, **options)


def train(spec_or_path: Any = None, data: str = "digits", **options: Any) -> Any:
    """Train a spec on ``data`` (``"digits"``, bundled, or an ``.npz`` file) and return
    the run: its ``directory``, ``history``, ``best`` and ``test`` metrics and the trained
    ``module``: ``netspec.train("lenet5", epochs=10, lr=0.1)``. Keyword options are the
    recipe's keys (winning over the spec's ``train:`` section) and the spec's variables,
    plus ``out``, ``name``, ``resume`` (a run directory), ``device``, ``quiet`` and
    ``on_epoch``. See ``netspec.backends.train``; torch is imported only when this is called."""
    from netspec.backends.train import train as run

    return run(spec_or_path, data, **options)


def evaluate(spec_or_path: Any, weights: Any, data: str = "digits", **options: Any) -> Any:
    """A spec with trained ``weights`` (a run's best.pt/last.pt, a state_dict file or
    mapping) on the test split of ``data``: an ``Evaluation`` with ``loss``, ``top1``,
    ``top5``, ``per_class`` and ``confusion``. Options: ``params`` (or keyword
    variables), ``device``, ``batch_size``. See ``netspec.backends.train.evaluate``;
    torch is imported only when this is called."""
    from netspec.backends.train.evaluate import evaluate as run

    return run(spec_or_path, weights, data, **options)


def predict(spec_or_path: Any, weights: Any, images: Any, **options: Any) -> Any:
    """The most probable classes of image files under a spec's trained ``weights``: one
    ``Prediction`` (``image``, ``top``: (class name, probability) pairs) per image.
    Options: ``classes`` (a file of names, one a line; default: the checkpoint's),
    ``top`` (5), ``params``, ``device``. torch is imported only when this is called."""
    from netspec.backends.train.evaluate import predict as run

    return run(spec_or_path, weights, images, **options)


def load_weights(
    model: Any, state_dict: Any, *, strict: bool = True, exclude: Sequence[str] = (), analysis: Any = None
) -> Any:
    """Load a checkpoint (a state_dict, a run's checkpoint or a file) of an equivalent
    model into ``model``: keys map by name where they agree, otherwise by order and
    shape. ``strict`` (the default): a mismatch raises a ``SpecError`` naming the first
    mismatching key and both shapes; returns the key mapping. ``strict=False``
    (fine-tuning): loads what fits, skips what does not (a new head) and what
    ``exclude`` picks, and returns the ``LoadReport`` (``analysis``, the spec's, names
    the head). See ``netspec.backends.torch.load_weights``."""
    from netspec.backends import torch as backend

    return backend.load_weights(model, state_dict, strict=strict, exclude=exclude, analysis=analysis)


def to_digraph(
    source: Any,
    params: Any = None,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    show: Any = None,
    block: str | None = None,
    wrap: int | None = None,
) -> Any:
    """The diagram of a spec (path, built-in name, ``Spec`` or ``Analysis``) as a
    ``graphviz.Digraph``: ``depth`` collapses name prefixes as ``summary`` does, ``show``
    adds ``params``, ``macs`` and ``shapes`` to the nodes, ``block`` draws one block's
    body (from its first instance). See
    ``netspec.backends.graphviz``; graphviz is imported only when this is called."""
    from netspec.backends import graphviz as backend

    return backend.to_digraph(source, params, depth=depth, rankdir=rankdir, show=show, block=block, wrap=wrap)


def render(
    source: Any,
    output: str | os.PathLike[str],
    params: Any = None,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    show: Any = None,
    block: str | None = None,
    wrap: int | None = None,
) -> Any:
    """Draw a spec into ``output`` (.svg, .png and .pdf need Graphviz's ``dot``; .dot
    writes the source). Returns the path written."""
    from netspec.backends import graphviz as backend

    return backend.render(source, output, params, depth=depth, rankdir=rankdir, show=show, block=block, wrap=wrap)


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
    "evaluate",
    "export_onnx",
    "format_analysis",
    "load",
    "load_text",
    "load_weights",
    "lower",
    "predict",
    "render",
    "to_dict",
    "to_digraph",
    "train",
]
