"""No silent wrong weights: every tensor of a built module is written by its
initialisation, for every op in the registry and both schemes.

Under the torchvision scheme the modules are built on the meta device, materialised
with ``torch.empty`` and then set by the initialisation each op's lowering gives
(``Emit.init``); a tensor that no rule sets
would keep whatever that memory held. Here ``torch.empty`` hands out memory filled with
a sentinel, so such a tensor shows up instead of passing as plausible small numbers.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import analyze_yaml
from test_ops import example

import netspec
from netspec.ops import REGISTRY

torch = pytest.importorskip("torch")
backend = pytest.importorskip("netspec.backends.torch")
cli = pytest.importorskip("netspec.cli")


def _examples() -> dict[str, str]:
    cases = {}
    for name, op in REGISTRY.items():  # aliases included, spelt as the alias
        text, _ = example(op)
        cases[name] = text.replace(f"op: {op.name}", f"op: {name}")
    return cases


#: every op's docstring example, and the variants of the ops with tensors that change
#: which tensors (or which module class) a layer has
CASES: dict[str, str] = {
    **_examples(),
    "batchnorm 1d": "inputs: {x: [16]}\nlayers: [{op: batchnorm, name: bn1}]",
    "batchnorm without affine or running statistics": (
        "inputs: {x: [4, 5, 5]}\nlayers: [{op: batchnorm, affine: false, track_running_stats: false}]"
    ),
    "batchnorm without affine": "inputs: {x: [4, 5, 5]}\nlayers: [{op: batchnorm, affine: false}]",
    "conv2d without bias": "inputs: {x: [4, 5, 5]}\nlayers: [{op: conv2d, out: 8, kernel: 3, bias: false}]",
    "depthwise conv2d": "inputs: {x: [4, 5, 5]}\nlayers: [{op: conv2d, out: 8, kernel: 3, groups: depthwise}]",
    "conv2d with a fixed weight": "inputs: {x: [1, 5, 5]}\nlayers: [{op: conv2d, weight: [[[[1, 0, -1]]]]}]",
    "linear without bias": "inputs: {x: [6]}\nlayers: [{op: linear, out: 3, bias: false}]",
}


def _sentinel(dtype: Any) -> float | int:
    return float("nan") if dtype.is_floating_point else int(torch.iinfo(dtype).min)


@pytest.fixture
def poisoned_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.empty`` returns memory filled with the sentinel (the generated module
    materialises its meta tensors with it; PyTorch's own constructors use it too)."""
    real = torch.empty

    def empty(*args: Any, **kwargs: Any) -> Any:
        t = real(*args, **kwargs)
        if t.device.type != "meta":
            with torch.no_grad():
                t.fill_(_sentinel(t.dtype))
        return t

    monkeypatch.setattr(torch, "empty", empty)


def unwritten(model: Any) -> list[str]:
    """The parameters and buffers still holding the sentinel somewhere."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return [
        name for name, t in tensors.items() if (t.isnan() if t.is_floating_point() else t == _sentinel(t.dtype)).any()
    ]


@pytest.mark.usefixtures("poisoned_empty")
@pytest.mark.parametrize("init", backend.INITS)
@pytest.mark.parametrize("case", CASES)
def test_every_tensor_is_initialised(case: str, init: str) -> None:
    model = backend.build(analyze_yaml(CASES[case]), init=init)
    assert unwritten(model) == []


def with_init(monkeypatch: pytest.MonkeyPatch, op: str, init: Any) -> None:
    """Op ``op``'s lowering, giving ``init`` (a function of the lowering's context, or
    a value) as its module's initialisation."""
    lowering = backend.LOWERINGS[op]

    def emit(c: Any) -> Any:
        return dataclasses.replace(lowering.emit(c), init=init(c) if callable(init) else init)

    monkeypatch.setitem(backend.LOWERINGS, op, dataclasses.replace(lowering, emit=emit))


@pytest.mark.usefixtures("poisoned_empty")
def test_the_sentinel_finds_a_rule_that_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with_init(monkeypatch, "batchnorm", ("pass",))
    model = backend.build(analyze_yaml(CASES["batchnorm 1d"]))
    names = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert unwritten(model) == [f"bn1.{n}" for n in names]


def _ops_with_tensors() -> dict[str, str]:
    """For each op whose layers hold tensors in some case, the first such case."""
    first: dict[str, str] = {}
    for case, text in CASES.items():
        for info in analyze_yaml(text).layers:
            if info.params or info.buffers:
                first.setdefault(info.op, case)
    return first


FIRST_CASE = _ops_with_tensors()


def test_the_ops_with_tensors_are_those_whose_lowering_makes_a_module() -> None:
    made = {
        case: {f"nn.{type(m).__name__}" for m in backend.build(analyze_yaml(CASES[case]), device="meta").modules()}
        for case in FIRST_CASE.values()
    }
    assert all(len(classes) > 1 for classes in made.values())  # the model and a layer's module
    assert set(FIRST_CASE) >= {"conv2d", "linear", "batchnorm"}


@pytest.mark.parametrize("op", FIRST_CASE)
def test_a_lowering_without_an_initialisation_is_an_internal_error_at_build_time(
    op: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CASES[FIRST_CASE[op]]
    a = analyze_yaml(text)
    layer = next(info for info in a.layers if info.params or info.buffers)
    kind = f"nn.{type(backend.build(a, device='meta').get_submodule(layer.name)).__name__}"
    with_init(monkeypatch, op, None)
    message = f"the torch backend has no torchvision initialisation for {kind} (layer '{layer.name}', op '{op}')"
    with pytest.raises(NotImplementedError, match=re.escape(message)):
        backend.build(a)
    # The CLI calls it a bug in netspec (exit 1), not a mistake in the spec (exit 2),
    # and writes no source.
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(text))
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "net.py")]) == 1
    assert "internal error" in capsys.readouterr().err
    assert not (tmp_path / "net.py").exists()


def test_one_module_class_initialised_two_ways_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with_init(monkeypatch, "conv2d", lambda c: (f"pass  # {c.out[0]} channels",))
    two = "inputs: {x: [3, 8, 8]}\nlayers: [{op: conv2d, out: 4, kernel: 3}, {op: conv2d, out: 5, kernel: 3}]"
    with pytest.raises(
        NotImplementedError, match=r"two lowerings initialise nn\.Conv2d differently \(layer 'conv2d_2'"
    ):
        backend.build(analyze_yaml(two))


def test_the_initialisation_is_the_lowerings_in_the_generated_source() -> None:
    source = backend.generate_source(analyze_yaml(CASES["conv2d"]))
    body = source.split("def init_torchvision", 1)[1]
    assert "isinstance(m, nn.Conv2d)" in body and 'nn.init.kaiming_normal_(m.weight, mode="fan_out"' in body


def test_the_error_names_the_layer_of_a_zoo_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with_init(monkeypatch, "batchnorm", None)
    with pytest.raises(NotImplementedError, match=r"nn\.BatchNorm2d \(layer 'bn1', op 'batchnorm'\)"):
        netspec.compile("resnet18", device="meta")
