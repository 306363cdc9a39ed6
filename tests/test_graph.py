"""Lowering a spec to the graph IR: default chaining, named inputs, repeats, forward
references, outputs, frozen layers."""

from __future__ import annotations

import pytest
from conftest import analyze_yaml

import netspec


def graph(text: str) -> netspec.Graph:
    import textwrap

    return netspec.lower(netspec.load_text(textwrap.dedent(text), "g.yaml"))


def test_layers_chain_by_default_and_get_names_per_op() -> None:
    g = graph("""
        inputs: {x: [3, 8, 8]}
        layers: [relu, {op: conv2d, out: 4, kernel: 1}, relu, {op: relu, name: last}]
    """)
    assert list(g.nodes) == ["x", "relu_1", "conv2d_1", "relu_2", "last"]
    assert [g[n].inputs for n in ["relu_1", "conv2d_1", "relu_2", "last"]] == [
        ("x",),
        ("relu_1",),
        ("conv2d_1",),
        ("relu_2",),
    ]
    assert g.outputs == ["last"]
    assert g["conv2d_1"].location.line == 3


def test_auto_names_skip_names_the_user_took() -> None:
    g = graph("""
        inputs: {x: [3]}
        layers: [{op: relu, name: relu_1}, relu]
    """)
    assert list(g.nodes) == ["x", "relu_1", "relu_2"]


def test_repeat_makes_scoped_copies_and_a_reference_means_the_last() -> None:
    a = analyze_yaml("""
        params: {n: 3}
        inputs: {x: [8, 16, 16]}
        layers:
          - {op: conv2d, name: body, out: 8, kernel: 3, stride: 2, padding: 1, repeat: $n}
          - {op: relu, name: after, inputs: [body]}
    """)
    names = [x.name for x in a.layers]
    assert names == ["x", "body.0", "body.1", "body.2", "after"]
    assert a.layer("body.1").inputs == ("body.0",)
    assert a.layer("after").inputs == ("body.2",)
    assert a.layer("body.2").output_shape == (8, 2, 2)
    assert a.layer("body.0").scope == "body"
    assert a.totals.params == 3 * (8 * 8 * 9 + 8)


def test_forward_references_are_reordered_topologically() -> None:
    g = graph("""
        inputs: {x: [4, 8, 8]}
        layers:
          - {op: add, name: merge, inputs: [left, right]}
          - {op: relu, name: left, inputs: [x]}
          - {op: sigmoid, name: right, inputs: [x]}
    """)
    order = list(g.nodes)
    assert order.index("merge") > order.index("left") and order.index("merge") > order.index("right")
    assert g.outputs == ["right"]  # the last layer written


def test_explicit_outputs_and_several_inputs() -> None:
    a = analyze_yaml("""
        inputs: {image: [3, 8, 8], extra: [5, 8, 8]}
        layers:
          - {op: conv2d, name: a, out: 4, kernel: 1, inputs: image}
          - {op: concat, name: both, inputs: [a, extra]}
          - {op: global_avgpool, name: pooled, flatten: true}
        outputs: [both, pooled]
    """)
    assert a.inputs == {"image": (3, 8, 8), "extra": (5, 8, 8)}
    assert a.outputs == ["both", "pooled"]
    assert a.layer("both").output_shape == (9, 8, 8)
    assert a.layer("pooled").output_shape == (9,)


def test_frozen_layers_count_as_not_trainable() -> None:
    a = analyze_yaml("""
        inputs: {x: [10]}
        layers:
          - {op: linear, name: backbone, out: 20, trainable: false}
          - {op: linear, name: head, out: 2}
    """)
    assert a.totals.params == 220 + 42
    assert a.totals.trainable_params == 42


def test_peak_memory_frees_tensors_after_their_last_use() -> None:
    a = analyze_yaml("""
        inputs: {x: [1000]}
        layers: [relu, relu, relu]
    """)
    assert a.totals.activation_bytes == 3 * 4000  # three layer outputs
    assert a.totals.peak_activation_bytes == 2 * 4000  # one input and one output alive at a time


def test_to_networkx() -> None:
    nx = pytest.importorskip("networkx")
    g = graph("""
        inputs: {x: [4, 8, 8]}
        layers:
          - {op: relu, name: a}
          - {op: add, name: b, inputs: [x, a]}
    """).to_networkx()
    assert set(g.edges) == {("x", "a"), ("x", "b"), ("a", "b")}
    assert nx.is_directed_acyclic_graph(g)
