"""Layers picked by name, and the head of a network read from its graph.

A pattern is a layer-name prefix (``layer4`` picks ``layer4.0.conv1``, not
``layer40``) or a glob (``classifier.*``, ``layer[34]``); either picks a layer when it
matches the layer's name or one of its dotted prefixes. Used by partial weight
loading (``exclude``) and by freezing and unfreezing (``backends/train/transfer.py``).
Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from netspec.analysis import Analysis
from netspec.errors import Location, SpecError, did_you_mean, name_list


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def picks(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (a prefix or a glob) picks the layer ``name``."""
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(p, pattern) for p in _prefixes(name))
    return name == pattern or name.startswith(pattern + ".")


def pick(
    pattern: str, names: Sequence[str], what: str, where: Location | None, choices: Iterable[str] | None = None
) -> list[str]:
    """The names ``pattern`` picks, in order; none is a SpecError ("``what`` 'x' names
    no layer") with a did-you-mean over the names and their prefixes."""
    chosen = [n for n in names if picks(pattern, n)]
    if not chosen:
        words = dict.fromkeys(p for n in (choices if choices is not None else names) for p in _prefixes(n))
        hint = did_you_mean(pattern, words) or f"layers: {name_list(words)}"
        raise SpecError(f"{what} '{pattern}' names no layer", where, hint=hint)
    return chosen


def layer_of(key: str, layers: Iterable[str]) -> str:
    """The layer a state_dict key belongs to: the longest layer name that prefixes it
    (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``), else the key minus its last part."""
    best = ""
    for name in layers:
        if len(name) > len(best) and key.startswith(name + "."):
            best = name
    return best or key.rsplit(".", 1)[0]


def collapse(keys: Iterable[str], layers: Iterable[str] = ()) -> list[str]:
    """The layers of ``keys``, each once, in order (``fc.weight``, ``fc.bias`` -> ``fc``)."""
    names = list(layers)
    return list(dict.fromkeys(layer_of(k, names) for k in keys))


def head(analysis: Analysis) -> list[str]:
    """The head: the layers each output depends on through the last parametrised
    layer on its way, that layer included (``fc`` in resnet18, ``fc8`` in vgg16). Read
    from the graph (walking back from the outputs to the first layers with
    parameters), not from the names; everything else is the backbone."""
    info = {layer.name: layer for layer in analysis.layers}
    found: dict[str, None] = {}
    todo = list(analysis.graph.outputs)
    while todo:
        name = todo.pop()
        if name in found or name not in info:
            continue
        found[name] = None
        if info[name].params == 0:
            todo.extend(info[name].inputs)
    heads = {n for n in found if info[n].params > 0}
    if not heads:  # nothing with parameters feeds the outputs: there is no head
        return []
    return [layer.name for layer in analysis.layers if layer.name in found and layer.op != "input"]


def parametrised(analysis: Analysis) -> list[str]:
    """The layers with parameters, in graph order."""
    return [layer.name for layer in analysis.layers if layer.params > 0]


def backbone(analysis: Analysis) -> list[str]:
    """Every layer but the head (see ``head``)."""
    tail = set(head(analysis))
    return [layer.name for layer in analysis.layers if layer.name not in tail and layer.op != "input"]
