"""The edge cases of hardsigmoid, clamp, hardtanh, channel_shuffle, reshape, permute,
pad, crop and avgpool2d's count_include_pad: false, each against values written out
by hand (or a plain torch expression of the definition), in the built module and in
onnxruntime on the exported file. The registry-driven tests cover each op's docstring
example; these are what an example does not reach."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import netspec

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
ort = pytest.importorskip("onnxruntime")
onnx_backend = pytest.importorskip("netspec.backends.onnx")
F = torch.nn.functional


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend
    yield
    torch.set_num_threads(threads)


def analysis(shape: list[int], *layers: str) -> netspec.Analysis:
    body = "\n".join(f"  - {layer}" for layer in layers)
    return netspec.analyze_text(f"inputs: {{x: {shape}}}\nlayers:\n{body}\n", path="edge.yaml")


def outputs(a: netspec.Analysis, x: Any) -> tuple[Any, Any]:
    """The built module's output (eval mode) and onnxruntime's on the exported file."""
    model = netspec.compile(a).eval()
    with torch.no_grad():
        y = model(x)
    data = onnx_backend.export(a, weights=model, dynamic_batch=True).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    assert tuple(y.shape[1:]) == a.layers[-1].output_shape  # the static shape
    return y, torch.from_numpy(got)


def check(a: netspec.Analysis, x: Any, want: Any) -> None:
    y, got = outputs(a, x)
    torch.testing.assert_close(y, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_pad_is_asymmetric_in_f_pads_order_with_a_value() -> None:
    x = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(1, 2, 2, 3) + 1
    a = analysis([2, 2, 3], "{op: pad, padding: [0, 1, 2, 3], value: -1.5}")  # left, right, top, bottom
    want = torch.full((1, 2, 2 + 2 + 3, 3 + 0 + 1), -1.5)
    want[:, :, 2:4, 0:3] = x  # two rows above, three below, one column on the right
    check(a, x, want)


def test_nasnets_pad_then_crop_is_x_shifted_by_one_pixel() -> None:
    x = torch.randn(2, 3, 5, 5)
    a = analysis([3, 5, 5], "{op: pad, padding: [0, 1, 0, 1]}", "{op: crop, crop: [1, 0, 1, 0]}")
    want = torch.zeros(2, 3, 5, 5)
    want[:, :, :4, :4] = x[:, :, 1:, 1:]  # ZeroPad2d((0, 1, 0, 1)) then x[:, :, 1:, 1:]
    check(a, x, want)


def test_crop_of_every_side() -> None:
    x = torch.randn(1, 2, 6, 7)
    check(analysis([2, 6, 7], "{op: crop, crop: [1, 2, 3, 1]}"), x, x[:, :, 3:5, 1:5])
    check(analysis([2, 6, 7], "{op: crop, crop: 1}"), x, x[:, :, 1:5, 1:6])


def test_reshape_infers_the_one_size_left_out() -> None:
    x = torch.randn(2, 4, 3, 4)
    a = analysis([4, 3, 4], "{op: reshape, shape: [2, -1, 4]}")
    assert a.layers[-1].output_shape == (2, 6, 4)
    check(a, x, x.reshape(2, 2, 6, 4))


def test_permute_numbers_the_per_sample_axes() -> None:
    x = torch.randn(2, 3, 4, 5)
    a = analysis([3, 4, 5], "{op: permute, dims: [1, 2, 0]}")
    want = torch.empty(2, 4, 5, 3)
    for c in range(3):
        want[:, :, :, c] = x[:, c]
    check(a, x, want)


def test_channel_shuffle_interleaves_the_groups() -> None:
    # channel c holds the value c: with 2 groups of 3 the order is 0 3 1 4 2 5
    x = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1, 1).expand(2, 6, 2, 3).contiguous()
    order = [0, 3, 1, 4, 2, 5]
    check(analysis([6, 2, 3], "{op: channel_shuffle, groups: 2}"), x, x[:, order])
    # three groups of two: 0 2 4 1 3 5
    check(analysis([6, 2, 3], "{op: channel_shuffle, groups: 3}"), x, x[:, [0, 2, 4, 1, 3, 5]])


def test_clamp_with_one_bound_leaves_the_other_side_alone() -> None:
    x = torch.linspace(-3, 3, 13).reshape(1, 13)
    check(analysis([13], "{op: clamp, min: -0.5}"), x, torch.where(x < -0.5, torch.tensor(-0.5), x))
    check(analysis([13], "{op: clamp, max: 1}"), x, torch.where(x > 1, torch.tensor(1.0), x))
    check(analysis([13], "{op: clamp, min: 0, max: 6}"), x, x.relu())


def test_hardtanh_and_hardsigmoid_as_pytorch_defines_them() -> None:
    x = torch.linspace(-5, 5, 21).reshape(1, 21)
    check(
        analysis([21], "hardtanh"), x, torch.where(x < -1, torch.tensor(-1.0), torch.where(x > 1, torch.tensor(1.0), x))
    )
    relu6 = (x + 3).clamp(0, 6)
    check(analysis([21], "hardsigmoid"), x, relu6 / 6)


def test_avgpool_count_include_pad_false_averages_only_the_input_at_the_border() -> None:
    x = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3)  # 0 1 2 / 3 4 5 / 6 7 8
    layer = "{op: avgpool2d, kernel: 3, stride: 1, padding: 1, count_include_pad: %s}"
    # corner (0, 0) covers 0, 1, 3, 4; edge (0, 1) covers 0..5; the centre all nine
    excluded = torch.tensor([[[[2.0, 2.5, 3.0], [3.5, 4.0, 4.5], [5.0, 5.5, 6.0]]]])
    check(analysis([1, 3, 3], layer % "false"), x, excluded)
    included = torch.tensor([[[[8.0, 15.0, 12.0], [21.0, 36.0, 27.0], [20.0, 33.0, 24.0]]]]) / 9
    check(analysis([1, 3, 3], layer % "true"), x, included)


def test_avgpool_count_include_pad_false_in_ceil_mode() -> None:
    # a 4-wide row, kernel 3, stride 2, padding 1, ceil: windows [-1, 1], [1, 3] and [3, 5],
    # the last reaching past the padding: it averages the one input element it holds
    x = torch.tensor([[[[1.0, 2.0, 4.0, 8.0]]]])
    a = analysis(
        [1, 1, 4],
        "{op: avgpool2d, kernel: [1, 3], stride: [1, 2], padding: [0, 1], ceil_mode: true, count_include_pad: false}",
    )
    check(a, x, torch.tensor([[[[1.5, 14 / 3, 8.0]]]]))


def test_in_place_activations_train_as_out_of_place_ones() -> None:
    spec = textwrap.dedent("""
        inputs: {x: [2, 4, 4]}
        layers:
          - {op: conv2d, name: conv, out: 3, kernel: 3, padding: 1}
          - {op: %s, inplace: true}
          - {op: global_avgpool, flatten: true}
    """)
    for op, fn in (("hardsigmoid", F.hardsigmoid), ("hardtanh", F.hardtanh)):
        a = netspec.analyze_text(spec % op, path="inplace.yaml")
        model = netspec.compile(a).train()
        assert ", inplace=True)" in netspec.backends.torch.generate_source(a)
        x = torch.randn(3, 2, 4, 4)
        model(x).sum().backward()
        w = model.conv.weight.detach().requires_grad_()
        fn(F.conv2d(x, w, model.conv.bias.detach(), padding=1)).mean((2, 3)).sum().backward()
        torch.testing.assert_close(model.conv.weight.grad, w.grad)


# --- located errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "layer", "message"),
    [
        ([6, 4, 4], "{op: channel_shuffle, groups: 4}", "6 channels do not split into 4 groups of equal size"),
        (
            [4, 3, 4],
            "{op: reshape, shape: [3, 4, 5]}",
            "cannot reshape [4, 3, 4] (48 elements) into [3, 4, 5] (60 elements)",
        ),
        ([4, 3, 4], "{op: reshape, shape: [5, -1]}", "48 is not a multiple of 5"),
        ([4, 3, 4], "{op: reshape, shape: [-1, -1]}", "at most one size may be -1"),
        ([4, 3, 4], "{op: permute, dims: [0, 2, 3, 1]}", "the batch axis is not numbered: write [1, 2, 0]"),
        (
            [4, 3, 4],
            "{op: crop, crop: [0, 0, 2, 1]}",
            "cropping 2 + 1 (top and bottom) of a height of 3 leaves nothing",
        ),
        ([12], "{op: pad, padding: 1}", "expects an input of shape [C, H, W] per sample, got [12]"),
        ([4, 3, 4], "{op: pad, padding: [1, 2]}", "expected [left, right, top, bottom] or one integer for all four"),
        ([12], "{op: clamp}", "clamp needs 'min', 'max' or both"),
        ([12], "{op: clamp, min: 2, max: 1}", "min 2 is greater than max 1"),
    ],
)
def test_bad_attributes_are_located_errors(shape: list[int], layer: str, message: str) -> None:
    with pytest.raises(netspec.SpecError) as e:
        analysis(shape, layer)
    assert message in e.value.message
    assert e.value.location is not None and e.value.location.line == 3
