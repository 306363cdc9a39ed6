"""Registry-driven: every op's declaration of its tensors (``Op.tensors``) against the
compiled PyTorch module's state_dict and the exported ONNX file's initializers, on
each op's docstring example and a few attribute variants."""

from __future__ import annotations

import pytest
from test_ops import example

import netspec
from netspec.ops import REGISTRY, Tensor, op_names

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

#: held by the PyTorch module but read by no ONNX operator (BatchNormalization has no
#: input for the batch counter), so never an initializer
NOT_IN_ONNX = {"num_batches_tracked"}


def _layer(inputs: str, layer: str) -> str:
    return f"inputs: {{x: {inputs}}}\nlayers:\n  - {{name: l, {layer}}}\n"


VARIANTS = {
    "conv2d without bias": _layer("[3, 8, 8]", "op: conv2d, out: 4, kernel: 3, bias: false"),
    "conv2d depthwise": _layer("[4, 8, 8]", "op: conv2d, kernel: 3, groups: depthwise"),
    "conv2d grouped": _layer("[4, 8, 8]", "op: conv2d, out: 6, kernel: [1, 3], groups: 2"),
    "conv2d fixed weight and bias": _layer("[1, 4, 4]", "op: conv2d, weight: [[1, 0], [0, 1]], bias: [0.5]"),
    "linear without bias": _layer("[16]", "op: linear, out: 3, bias: false"),
    "linear on [L, F]": _layer("[5, 16]", "op: linear, out: 3"),
    "batchnorm without affine": _layer("[4, 6, 6]", "op: batchnorm, affine: false"),
    "batchnorm without running stats": _layer("[4, 6, 6]", "op: batchnorm, track_running_stats: false"),
    "batchnorm without either": _layer("[4, 6, 6]", "op: batchnorm, affine: false, track_running_stats: false"),
    "batchnorm on [F]": _layer("[10]", "op: batchnorm"),
    "batchnorm on [C, L]": _layer("[4, 7]", "op: batchnorm"),
}
CASES = {name: example(REGISTRY[name])[0] for name in op_names()} | VARIANTS


def declared(analysis: netspec.Analysis) -> dict[str, Tensor]:
    """Every layer's declared tensors by state_dict key (``<layer>.<tensor>``)."""
    shapes = {info.name: info.output_shape for info in analysis.layers}
    out: dict[str, Tensor] = {}
    for node in analysis.graph:
        ins = [shapes[r] for r in node.inputs]
        for t in REGISTRY[node.op].tensors(node.attrs, ins, shapes[node.name]):
            out[f"{node.name}.{t.name}"] = t
    return out


def _shapes(tensors: dict[str, Tensor], kinds: tuple[str, ...] = ("parameter", "buffer")) -> dict[str, tuple[int, ...]]:
    return {k: t.shape for k, t in tensors.items() if t.kind in kinds}


@pytest.mark.parametrize("case", CASES)
def test_declared_tensors_are_the_module_state_dict(case: str) -> None:
    analysis = netspec.analyze_text(CASES[case], path=f"<{case}>")
    tensors = declared(analysis)
    model = netspec.compile(analysis)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == _shapes(tensors)
    assert {k: tuple(p.shape) for k, p in model.named_parameters()} == _shapes(tensors, ("parameter",))
    assert {k: tuple(b.shape) for k, b in model.named_buffers()} == _shapes(tensors, ("buffer",))
    # the counts derived from the declaration are the module's
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())
    assert analysis.totals.buffers == sum(b.numel() for b in model.buffers())


@pytest.mark.parametrize("case", CASES)
def test_declared_tensors_are_the_onnx_initializers(case: str) -> None:
    analysis = netspec.analyze_text(CASES[case], path=f"<{case}>")
    tensors = declared(analysis)
    model = netspec.export_onnx(analysis, seed=0)
    # helper constants are named "<layer>/<what>"; every other initializer is a declared tensor
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer if "/" not in t.name}
    assert weights == {k: s for k, s in _shapes(tensors).items() if k.rpartition(".")[2] not in NOT_IN_ONNX}
