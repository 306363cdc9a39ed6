"""The layers of state_dict keys, and the head and backbone of a network read from
its graph. Used by partial weight loading and by freezing and unfreezing
(``backends/train/transfer.py``); layers are picked by pattern with
``netspec.names.pick``. Pure Python: nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from netspec.analysis import Analysis


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
    layer on its way, that layer included (``fc`` in resnet18, ``classifier.6`` (fc8) in vgg16). Read
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
