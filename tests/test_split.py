"""Taking channels: the ``slice`` op and ``split`` layers whose parts later layers name
(``inputs: [s.0]``). Checked against PyTorch's own ``torch.split`` and slicing, and
against onnxruntime, on tiny tensors."""

from __future__ import annotations

import pytest
from conftest import analyze_yaml
from test_errors import assert_at, error_of, spec

SHUFFLE_HALF = """
inputs: {x: [6, 3, 3]}
layers:
  - {op: split, name: s, parts: 2}
  - {op: conv2d, name: branch, inputs: s.1, out: 3, kernel: 1, bias: false}
  - {op: concat, name: cat, inputs: [s.0, branch]}
"""


def test_a_split_makes_one_slice_per_part_named_by_index() -> None:
    a = analyze_yaml(SHUFFLE_HALF)
    assert [(x.name, x.op, x.output_shape) for x in a.layers[1:3]] == [
        ("s.0", "slice", (3, 3, 3)),
        ("s.1", "slice", (3, 3, 3)),
    ]
    assert a.layer("branch").inputs == ("s.1",)
    assert a.layer("cat").output_shape == (6, 3, 3)
    assert a.layer("branch").params == 3 * 3  # 1x1 conv, 3 -> 3 channels, no bias


def test_given_sizes_take_consecutive_channel_ranges() -> None:
    a = analyze_yaml(
        "inputs: {x: [10, 2, 2]}\nlayers:\n  - {op: split, name: s, sizes: [2, 3, 5]}\n"
        "  - {op: concat, inputs: [s.2, s.0, s.1]}"
    )
    assert [a.layer(f"s.{k}").output_shape[0] for k in range(3)] == [2, 3, 5]
    nodes = a.graph.nodes
    assert [(nodes[f"s.{k}"].attrs.start, nodes[f"s.{k}"].attrs.end) for k in range(3)] == [(0, 2), (2, 5), (5, 10)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, 6, 6), (-4, None, 4), (2, -2, 6), (0, None, 10)],
)
def test_slice_bounds_follow_python(start: int, end: int | None, expected: int) -> None:
    attrs = f"start: {start}" + ("" if end is None else f", end: {end}")
    a = analyze_yaml(f"inputs: {{x: [10, 2, 2]}}\nlayers:\n  - {{op: slice, {attrs}}}")
    assert a.layers[-1].output_shape == (len(range(10)[start:end]), 2, 2) == (expected, 2, 2)


@pytest.mark.parametrize("attrs", ["start: 10", "start: 4, end: 4", "end: 11", "start: -11"])
def test_an_empty_or_outside_slice_is_an_error(attrs: str) -> None:
    e = error_of(spec("inputs: {x: [10, 2, 2]}", "layers:", f"  - {{op: slice, name: s, {attrs}}}"))
    assert_at(e, 3, 5)
    assert "10 channels" in e.message, e.message


def test_sizes_that_do_not_add_up_name_both() -> None:
    e = error_of(spec("inputs: {x: [8, 2, 2]}", "layers:", "  - {op: split, name: s, sizes: [3, 4]}"))
    assert_at(e, 3, 5)
    assert "[3, 4] add up to 7" in e.message and "'x' has 8 channels" in e.message, e.message


def test_unequal_parts_are_an_error() -> None:
    e = error_of(spec("inputs: {x: [7, 2, 2]}", "layers:", "  - {op: split, name: s, parts: 2}"))
    assert "7 channels of 'x' into 2 equal parts" in e.message, e.message


def test_a_reference_to_the_whole_split_is_an_error_with_a_hint() -> None:
    e = error_of(spec("inputs: {x: [8, 2, 2]}", "layers:", "  - {op: split, name: s, parts: 2}", "  - relu"))
    assert_at(e, 4, 5)  # the previous layer is read where the relu is written
    assert "'s' is a split into 2 parts" in e.message
    assert e.hint is not None and "'s.0'" in e.hint and "'s.1'" in e.hint


def test_parts_or_sizes_but_not_both() -> None:
    e = error_of(spec("inputs: {x: [8, 2, 2]}", "layers:", "  - {op: split, name: s, parts: 2, sizes: [4, 4]}"))
    assert "'parts'" in e.message and "'sizes'" in e.message, e.message


def test_a_split_inside_a_block_reads_the_block_input() -> None:
    a = analyze_yaml(
        "inputs: {x: [8, 4, 4]}\n"
        "blocks:\n"
        "  unit:\n"
        "    layers:\n"
        "      - {op: split, name: s, parts: 2}\n"
        "      - {op: conv2d, name: c, inputs: s.1, out: channels(s.1), kernel: 3, padding: 1}\n"
        "      - {op: concat, name: cat, inputs: [s.0, c]}\n"
        "layers:\n"
        "  - {op: unit, name: u, repeat: 2}\n"
    )
    assert a.layer("u.1.s.0").inputs == ("u.0.cat",)
    assert a.layer("u.0.c").params == 4 * 4 * 9 + 4


def test_torch_and_onnx_compute_the_parts_as_torch_split_does() -> None:
    torch = pytest.importorskip("torch")
    import netspec

    torch.set_num_threads(1)
    a = analyze_yaml(
        "inputs: {x: [7, 3, 2]}\nlayers:\n  - {op: split, name: s, sizes: [2, 5]}\n"
        "  - {op: slice, name: tail, inputs: s.1, start: -3}\n"
        "  - {op: concat, name: cat, inputs: [tail, s.0]}\n"
        "outputs: [cat, s.0]"
    )
    model = netspec.compile(a).eval()
    x = torch.randn(2, 7, 3, 2)
    first, second = torch.split(x, [2, 5], dim=1)
    want = torch.cat([second[:, 2:], first], dim=1)
    cat, part = model(x)
    assert torch.equal(cat, want) and torch.equal(part, first)

    ort = pytest.importorskip("onnxruntime")
    onnx_backend = pytest.importorskip("netspec.backends.onnx")
    data = onnx_backend.export(a, weights=model, dynamic_batch=True).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got_cat, got_part = session.run(["cat", "s.0"], {"x": x.numpy()})
    assert (got_cat == want.numpy()).all() and (got_part == first.numpy()).all()


def test_graphviz_labels_a_slice_with_its_range() -> None:
    gv = pytest.importorskip("netspec.backends.graphviz")
    a = analyze_yaml(SHUFFLE_HALF)
    labels = [gv.op_label(n.op, n.attrs, a.layer(n.name).output_shape, n) for n in a.graph if n.op == "slice"]
    assert labels == ["slice 0:3", "slice 3:6"]


def test_the_parts_of_a_split_left_out_by_when_mean_its_input() -> None:
    """As any left-out layer: references to it, its parts too, mean its input (or its
    'otherwise'), so an optional split needs no rewiring."""
    text = """
        params: {halves: false}
        inputs: {x: [8, 4, 4]}
        layers:
          - {op: split, name: s, parts: 2, when: $halves}
          - {op: relu, name: a, inputs: s.0}
          - {op: relu, name: b, inputs: s.1}
          - {op: add, name: sum, inputs: [a, b]}
    """
    off = analyze_yaml(text)
    assert off.graph["a"].inputs == ("x",) and off.graph["b"].inputs == ("x",)
    assert off.layer("sum").output_shape == (8, 4, 4)
    on = analyze_yaml(text, halves=True)
    assert on.graph["a"].inputs == ("s.0",) and on.layer("sum").output_shape == (4, 4, 4)
