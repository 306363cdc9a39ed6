"""Output shapes and parameter counts against PyTorch itself: netspec's static rules
must agree with what the modules give (floor and ceil modes, dilation, padding,
groups, ``same``)."""

from __future__ import annotations

import itertools
import random

import pytest
from conftest import analyze_yaml

import netspec

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def conv_cases() -> list[tuple[int, int, int, int, int | str, int]]:
    rng = random.Random(0)
    cases = []
    for _ in range(60):
        size, k, s, d = rng.randint(1, 20), rng.randint(1, 7), rng.randint(1, 4), rng.randint(1, 3)
        p: int | str = rng.choice([0, 1, 2, 3, "same", "valid"])
        if p == "same":
            s = 1
        cases.append((size, k, s, d, p, rng.choice([1, 2, 4])))
    return cases


@pytest.mark.parametrize("size,k,s,d,p,groups", conv_cases())
def test_conv2d_matches_torch(size: int, k: int, s: int, d: int, p: int | str, groups: int) -> None:
    c_in, c_out = 4, 8
    module = nn.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=groups)
    x = torch.zeros(1, c_in, size, size + 3)
    try:
        expected = tuple(module(x).shape[1:])
    except RuntimeError:
        expected = None  # torch refuses: the output would be empty
    spec = f"""
        inputs: {{x: [{c_in}, {size}, {size + 3}]}}
        layers: [{{op: conv2d, out: {c_out}, kernel: {k}, stride: {s}, padding: {p}, dilation: {d}, groups: {groups}}}]
    """
    if expected is None:
        with pytest.raises(Exception, match="output size would be"):
            analyze_yaml(spec)
        return
    layer = analyze_yaml(spec).layers[-1]
    assert layer.output_shape == expected
    assert layer.params == sum(q.numel() for q in module.parameters())


POOL_CASES = [
    (size, k, s, p, ceil)
    # small sizes: ceil-mode windows that overhang the padded input (kernel 4 on 1x3)
    for size, k, s, p, ceil in itertools.product(
        [1, 2, 3, 5, 6, 7, 13, 55], [2, 3, 4, 5], [1, 2, 3], [0, 1, 2], [False, True]
    )
    if 2 * p <= k
]


@pytest.mark.parametrize("size,k,s,p,ceil", POOL_CASES)
def test_pooling_matches_torch(size: int, k: int, s: int, p: int, ceil: bool) -> None:
    x = torch.zeros(1, 2, size, size)
    for op, module in (
        ("maxpool2d", nn.MaxPool2d(k, s, p, ceil_mode=ceil)),
        ("avgpool2d", nn.AvgPool2d(k, s, p, ceil_mode=ceil)),
    ):
        spec = f"""
            inputs: {{x: [2, {size}, {size}]}}
            layers: [{{op: {op}, kernel: {k}, stride: {s}, padding: {p}, ceil_mode: {str(ceil).lower()}}}]
        """
        try:
            expected = tuple(module(x).shape[1:])
        except RuntimeError:  # torch refuses: the output would be empty
            with pytest.raises(Exception, match="output size would be"):
                analyze_yaml(spec)
            continue
        assert analyze_yaml(spec).layers[-1].output_shape == expected, op


def test_avgpool_ceil_mode_overhang_is_pytorchs_size() -> None:
    a = analyze_yaml("inputs: {x: [2, 1, 3]}\nlayers: [{op: avgpool2d, kernel: 4, padding: 1, ceil_mode: true}]")
    expected = nn.AvgPool2d(4, padding=1, ceil_mode=True)(torch.zeros(1, 2, 1, 3)).shape[1:]
    assert a.layers[-1].output_shape == tuple(expected) == (2, 1, 1)


@pytest.mark.parametrize("ceil", [False, True])
def test_dilated_maxpool_windows_wholly_in_the_padding_are_refused(ceil: bool) -> None:
    # PyTorch gives -inf for such a window (and its backward writes out of bounds)
    refused = 0
    for size, k, s, p, d in itertools.product(range(1, 6), range(2, 5), range(1, 4), range(0, 3), range(2, 6)):
        if 2 * p > k:
            continue
        spec = f"""
            inputs: {{x: [1, 1, {size}]}}
            layers: [{{op: maxpool2d, kernel: [1, {k}], stride: [1, {s}], padding: [0, {p}], dilation: [1, {d}],
                      ceil_mode: {str(ceil).lower()}}}]
        """
        try:
            y = F.max_pool2d(torch.ones(1, 1, 1, size), (1, k), (1, s), (0, p), (1, d), ceil_mode=ceil)
        except RuntimeError:
            with pytest.raises(netspec.SpecError, match="output size would be"):
                analyze_yaml(spec)
            continue
        if torch.isinf(y).any():
            refused += 1
            with pytest.raises(netspec.SpecError, match="every tap lies in the padding") as e:
                analyze_yaml(spec)
            assert e.value.location is not None and e.value.location.line == 3
        else:
            assert analyze_yaml(spec).layers[-1].output_shape == tuple(y.shape[1:])
    assert refused > 0


def test_multiply_of_different_ranks_is_refused_as_pytorch_would_misalign_the_batch() -> None:
    x, gate = torch.zeros(3, 4, 3, 3), torch.zeros(3, 3)  # a batch of 3
    assert (x * gate).shape == (3, 4, 3, 3)  # runs, but the batch axis met the height
    with pytest.raises(netspec.SpecError, match="different ranks") as e:
        analyze_yaml("""
            inputs: {x: [4, 3, 3], gate: [3]}
            layers: [{op: multiply, name: m, inputs: [x, gate]}]
        """)
    assert e.value.layer == "m" and e.value.location is not None and e.value.location.line == 3


@pytest.mark.parametrize("size,out", [(13, 6), (7, 7), (1, 7), (10, 3), (224, 7), (5, 2)])
def test_adaptive_pooling_shape_and_window_flops(size: int, out: int) -> None:
    layer = analyze_yaml(f"""
        inputs: {{x: [3, {size}, {size}]}}
        layers: [{{op: adaptive_avgpool2d, size: {out}}}]
    """).layers[-1]
    assert layer.output_shape == tuple(nn.AdaptiveAvgPool2d(out)(torch.zeros(1, 3, size, size)).shape[1:])
    # one FLOP per input element read: count the windows' elements by brute force
    starts = [(i * size) // out for i in range(out)]
    ends = [-(-((i + 1) * size) // out) for i in range(out)]
    per_axis = sum(e - b for b, e in zip(starts, ends))
    assert layer.flops == 3 * per_axis * per_axis


def test_batchnorm_parameters_and_buffers_match_torch() -> None:
    for shape, module in (([64, 8, 8], nn.BatchNorm2d(64)), ([100], nn.BatchNorm1d(100))):
        layer = analyze_yaml(f"""
            inputs: {{x: {shape}}}
            layers: [batchnorm]
        """).layers[-1]
        assert layer.params == sum(p.numel() for p in module.parameters())
        assert layer.buffers == sum(b.numel() for b in module.buffers())


def test_linear_flatten_concat_multiply_match_torch() -> None:
    a = analyze_yaml("""
        inputs: {x: [16, 5, 5]}
        layers:
          - {op: flatten, name: flat}
          - {op: linear, name: fc, out: 120}
          - {op: global_avgpool, name: gap, inputs: [x]}
          - {op: multiply, name: gated, inputs: [x, gap]}
          - {op: concat, name: cat, inputs: [x, gated]}
          - {op: flatten, name: partial, start_dim: 2}
    """)
    x = torch.zeros(1, 16, 5, 5)
    fc = nn.Linear(400, 120)
    assert a.layer("flat").output_shape == tuple(torch.flatten(x, 1).shape[1:])
    assert a.layer("fc").params == sum(p.numel() for p in fc.parameters())
    gated = x * x.mean((2, 3), keepdim=True)
    assert a.layer("gated").output_shape == tuple(gated.shape[1:])
    cat = torch.cat([x, gated], 1)
    assert a.layer("cat").output_shape == tuple(cat.shape[1:])
    assert a.layer("partial").output_shape == tuple(torch.flatten(cat, 2).shape[1:])
