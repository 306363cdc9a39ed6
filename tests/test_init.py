"""No silent wrong weights: every tensor of a built module is written by its
initialisation, for every op in the registry and both schemes.

Under the torchvision scheme the modules are built on the meta device, materialised
with ``torch.empty`` and then set by ``TORCHVISION_INIT``; a tensor that no rule sets
would keep whatever that memory held. Here ``torch.empty`` hands out memory filled with
a sentinel, so such a tensor shows up instead of passing as plausible small numbers.
"""

from __future__ import annotations

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


@pytest.mark.usefixtures("poisoned_empty")
def test_the_sentinel_finds_a_rule_that_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(backend.TORCHVISION_INIT, "nn.BatchNorm1d", ["pass"])
    model = backend.build(analyze_yaml(CASES["batchnorm 1d"]))
    names = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert unwritten(model) == [f"bn1.{n}" for n in names]


def _module_classes(text: str) -> set[str]:
    """The module classes (``nn.Conv2d``) of a case's layers that hold tensors."""
    model = backend.build(analyze_yaml(text), device="meta")
    return {
        f"nn.{type(m).__name__}"
        for m in model.modules()
        if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
    }


def _first_cases() -> dict[str, str]:
    """For each module class the cases build, the first case that builds one."""
    first: dict[str, str] = {}
    for case, text in CASES.items():
        for kind in sorted(_module_classes(text)):
            first.setdefault(kind, case)
    return first


FIRST_CASE = _first_cases()


def test_the_cases_build_exactly_the_classes_with_a_rule() -> None:
    assert set(FIRST_CASE) == set(backend.TORCHVISION_INIT)


@pytest.mark.parametrize("kind", backend.TORCHVISION_INIT)
def test_a_class_without_a_rule_is_an_internal_error_at_build_time(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CASES[FIRST_CASE[kind]]
    a = analyze_yaml(text)
    layer = next(info.name for info in a.layers if info.params or info.buffers)
    monkeypatch.delitem(backend.TORCHVISION_INIT, kind)
    message = f"the torch backend has no torchvision initialisation for {kind} (layer '{layer}'"
    with pytest.raises(NotImplementedError, match=re.escape(message)):
        backend.build(a)
    # The CLI calls it a bug in netspec (exit 1), not a mistake in the spec (exit 2),
    # and writes no source.
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(text))
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "net.py")]) == 1
    assert "internal error" in capsys.readouterr().err
    assert not (tmp_path / "net.py").exists()


def test_the_error_names_the_layer_of_a_zoo_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(backend.TORCHVISION_INIT, "nn.BatchNorm2d")
    with pytest.raises(NotImplementedError, match=r"nn\.BatchNorm2d \(layer 'bn1', op 'batchnorm'\)"):
        netspec.compile("resnet18", device="meta")
