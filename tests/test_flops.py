"""FLOPs against independent counts: ``torch.utils.flop_counter`` for what it counts
(convolutions and matrix products), PyTorch's adaptive-pooling windows enumerated one
by one, and for every op the FLOPs column of the README's op table, read and evaluated
by this test, so that a formula changed in one place (the op's file or the README)
fails here."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from conftest import REPO, analyze_yaml
from test_ops import example

import netspec
from netspec.ops import REGISTRY, op_names

#: the names a formula of the table may use (the README defines them above the table)
NAMES = ("E_out", "MACs", "kh", "kw", "C", "H", "W", "size", "n", "bias")


def readme_formulas() -> dict[str, str | None]:
    """op -> its FLOPs as a Python expression over NAMES (None where the table gives
    the rule in words)."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| op | attributes (defaults) | parameters | MACs | FLOPs |") :].split("\n\n")[0]
    formulas: dict[str, str | None] = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        op, flops = re.match(r"`(\w+)`", cells[0]).group(1), cells[-1]  # type: ignore[union-attr]
        terms = re.findall(r"`([^`]+)`( with bias)?", flops)
        if terms:
            formulas[op] = " + ".join(f"(({e}) if bias else 0)" if cond else f"({e})" for e, cond in terms)
        elif flops.split()[0] == "0":
            formulas[op] = "0"
        else:
            formulas[op] = None
    return formulas


FORMULAS = readme_formulas()
OPS = [name for name in op_names() if name != "input"]  # a graph input computes nothing


def table_flops(analysis: netspec.Analysis, layer: netspec.LayerInfo) -> int | None:
    node = analysis.graph.nodes[layer.name]
    formula = FORMULAS[REGISTRY[node.op].name]
    if formula is None:
        return None
    first = analysis.layer(layer.inputs[0]).output_shape if layer.inputs else layer.output_shape
    dims = dict(zip("CHW", first, strict=False))
    kernel = getattr(node.attrs, "kernel", (0, 0))
    values = {
        "E_out": math.prod(layer.output_shape),
        "MACs": layer.macs,
        "kh": kernel[0],
        "kw": kernel[1],
        "C": dims.get("C", 0),
        "H": dims.get("H", 0),
        "W": dims.get("W", 0),
        "size": getattr(node.attrs, "size", 0),
        "n": len(layer.inputs),
        "bias": getattr(node.attrs, "bias", False),
    }
    return int(eval(formula, {"__builtins__": {}}, values))


def check_against_table(analysis: netspec.Analysis) -> int:
    checked = 0
    for layer in analysis.layers:
        if layer.op == "input":
            assert layer.flops == 0
            continue
        expected = table_flops(analysis, layer)
        if expected is not None:
            assert layer.flops == expected, f"{layer.name} ({layer.op}): {layer.flops} != table's {expected}"
            checked += 1
    return checked


def test_the_table_has_a_formula_for_every_op() -> None:
    assert set(FORMULAS) == set(OPS)
    for op, formula in FORMULAS.items():
        if formula is not None:
            names = set(re.findall(r"[A-Za-z_]\w*", formula)) - {"if", "else"}
            assert names <= set(NAMES), f"{op}: the README's FLOPs use {names - set(NAMES)}"
    assert [op for op, f in FORMULAS.items() if f is None] == ["adaptive_avgpool2d"]  # counted below


@pytest.mark.parametrize("name", OPS)
def test_docstring_example_counts_as_the_table_says(name: str) -> None:
    text, _ = example(REGISTRY[name])
    a = netspec.analyze_text(text, path=f"<{name} example>")
    if FORMULAS[name] is not None:
        assert check_against_table(a) >= 1


VARIED = """
inputs: {x: [6, 11, 9]}
layers:
  - {op: conv2d, name: c1, out: 8, kernel: [3, 2], stride: 2, padding: 1, bias: false}
  - {op: conv2d, name: c2, out: 8, kernel: 3, groups: 4, dilation: 2, padding: same}
  - {op: batchnorm, name: bn}
  - {op: maxpool2d, name: mp, kernel: 3, stride: 2, padding: 1, ceil_mode: true}
  - {op: avgpool2d, name: ap, kernel: [2, 1], stride: 1}
  - {op: lrn, name: n1, size: 3}
  - {op: relu6, name: r6}
  - {op: conv2d, name: side, inputs: r6, out: 8, kernel: 1}
  - {op: add, name: sum, inputs: [r6, side, r6]}
  - {op: multiply, name: prod, inputs: [sum, r6]}
  - {op: global_maxpool, name: gmax}
  - {op: flatten, name: flat}
  - {op: linear, name: fc, out: 5, bias: false}
  - {op: batchnorm, name: bn1d}
  - {op: softmax, name: sm}
"""


@pytest.mark.parametrize("spec", ["lenet5", "alexnet_paper", "resnet18", "googlenet", "densenet121", "mobilenet_v2"])
def test_every_layer_of_zoo_networks_counts_as_the_table_says(spec: str) -> None:
    assert check_against_table(netspec.analyze(spec)) > 10


def test_varied_attributes_count_as_the_table_says() -> None:
    assert check_against_table(analyze_yaml(VARIED)) == 15


@pytest.mark.parametrize(("h", "w", "oh", "ow"), [(7, 7, 3, 3), (10, 5, 4, 5), (5, 13, 7, 2), (9, 9, 1, 1)])
def test_adaptive_pooling_counts_every_element_of_pytorchs_windows(h: int, w: int, oh: int, ow: int) -> None:
    def windows(n: int, m: int) -> int:  # PyTorch: window i spans [floor(i*n/m), ceil((i+1)*n/m))
        return sum(-((-(i + 1) * n) // m) - (i * n) // m for i in range(m))

    a = analyze_yaml(f"inputs: {{x: [3, {h}, {w}]}}\nlayers:\n  - {{op: adaptive_avgpool2d, size: [{oh}, {ow}]}}")
    assert a.layers[-1].flops == 3 * windows(h, oh) * windows(w, ow)


@pytest.mark.parametrize(
    "layer",
    [
        "{op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1}",
        "{op: conv2d, out: 6, kernel: [3, 1], groups: 3, dilation: 2, bias: false}",
        "{op: conv2d, groups: depthwise, kernel: 5, padding: same}",
    ],
)
def test_convolution_flops_agree_with_torchs_flop_counter(layer: str) -> None:
    assert_torch_counts(f"inputs: {{x: [6, 12, 10]}}\nlayers:\n  - {layer}")


@pytest.mark.parametrize(("shape", "bias"), [("[20]", "true"), ("[4, 20]", "false")])
def test_linear_flops_agree_with_torchs_flop_counter(shape: str, bias: str) -> None:
    assert_torch_counts(f"inputs: {{x: {shape}}}\nlayers:\n  - {{op: linear, out: 7, bias: {bias}}}")


def assert_torch_counts(text: str) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    a = analyze_yaml(text)
    (layer,) = [x for x in a.layers if x.op != "input"]
    model: Any = netspec.compile(a)
    x = torch.zeros(1, *next(iter(a.inputs.values())))
    with FlopCounterMode(display=False) as counter:
        model(x)
    # PyTorch counts the multiply-adds (2 FLOPs each), without the bias additions.
    bias = math.prod(layer.output_shape) if a.graph.nodes[layer.name].attrs.bias else 0
    assert counter.get_total_flops() == 2 * layer.macs
    assert layer.flops == 2 * layer.macs + bias
