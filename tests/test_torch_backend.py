"""The PyTorch backend against PyTorch itself.

Registry-driven: every registered op needs a lowering, and every op's docstring
example and every spec in ``specs/`` is built and checked against the static
analysis (output shape, parameters, buffers, MACs counted with forward hooks), so new
ops and new zoo specs are covered without touching this file.
"""

from __future__ import annotations

import builtins
import importlib.util
import keyword
import shutil
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, small_zoo
from conftest import analyze_yaml as spec
from test_ops import example

import netspec
from netspec.ops import REGISTRY, op_names

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
backend = pytest.importorskip("netspec.backends.torch")

ZOO = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))


def sample_inputs(a: netspec.Analysis, batch: int = 2, device: str = "cpu") -> list[Any]:
    torch.manual_seed(0)
    return [torch.randn(batch, *a.inputs[name], device=device) for name in a.graph.inputs]


def as_tuple(y: Any) -> tuple[Any, ...]:
    return y if isinstance(y, tuple) else (y,)


def forward_counting_macs(model: Any, inputs: list[Any]) -> tuple[tuple[Any, ...], int]:
    """The outputs (eval mode, no grad) and the MACs per sample, counted by forward
    hooks on the built module: convolution = output elements x in_channels/groups x
    kh x kw; linear = output elements x in_features."""
    total = 0

    def conv(m: Any, args: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: Any, args: Any, out: Any) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
    model.eval()
    with torch.no_grad():
        ys = as_tuple(model(*inputs))
    for h in hooks:
        h.remove()
    return ys, total


def check_parity(a: netspec.Analysis, model: Any, inputs: list[Any]) -> tuple[Any, ...]:
    """Forward shapes, parameters, trainable parameters, buffers and MACs against the
    static analysis; returns the outputs."""
    ys, macs = forward_counting_macs(model, inputs)
    assert len(ys) == len(a.outputs)
    for name, y in zip(a.outputs, ys):
        assert tuple(y.shape) == (inputs[0].shape[0], *a.layer(name).output_shape), name
    t = a.totals
    assert sum(p.numel() for p in model.parameters()) == t.params
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == t.trainable_params
    assert sum(b.numel() for b in model.buffers()) == t.buffers
    assert macs == t.macs  # per sample
    return ys


def import_file(path: Path) -> Any:
    spec_ = importlib.util.spec_from_file_location(path.stem, path)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def standalone(a: netspec.Analysis, tmp_path: Path) -> Any:
    """The class of the generated source file, imported from ``tmp_path``."""
    path = tmp_path / f"gen_{a.name}.py"
    path.write_text(backend.generate_source(a))
    return getattr(import_file(path), backend.class_name(a.name))


def check_standalone_matches(
    a: netspec.Analysis, model: Any, tmp_path: Path, inputs: list[Any], outputs: tuple[Any, ...]
) -> None:
    """The generated file, imported, with the model's weights gives ``outputs``."""
    cls = standalone(a, tmp_path)
    other = cls(device="meta")  # no initialisation: the weights come from the model
    assert list(other.state_dict()) == list(model.state_dict())
    other.load_state_dict(model.state_dict(), assign=True)
    with torch.no_grad():
        for y1, y2 in zip(outputs, as_tuple(other.eval()(*inputs))):
            torch.testing.assert_close(y2, y1, rtol=0, atol=0)


# --- coverage -----------------------------------------------------------------------


def test_every_registered_op_has_a_lowering() -> None:
    assert backend.missing_lowerings() == [], "ops without a torch lowering"
    assert set(backend.LOWERINGS) == set(op_names())  # canonical names only: nodes never carry an alias


def test_an_op_without_a_lowering_is_a_located_error(monkeypatch: pytest.MonkeyPatch) -> None:
    a = spec("""
        inputs: {x: [4]}
        layers: [{op: linear, name: fc, out: 2}]
    """)
    monkeypatch.delitem(backend.LOWERINGS, "linear")
    with pytest.raises(netspec.SpecError, match="the torch backend has no lowering for op 'linear'") as e:
        backend.build(a)
    assert e.value.location is not None and e.value.location.line == 3


# --- every op's docstring example -------------------------------------------------


@pytest.mark.parametrize("name", [*op_names(), "swish"])
def test_op_example_parity(name: str, tmp_path: Path) -> None:
    text, expected = example(REGISTRY[name])
    if name != REGISTRY[name].name:  # an alias: the canonical example, spelt with the alias
        text = text.replace(f"op: {REGISTRY[name].name}", f"op: {name}")
    a = netspec.analyze_text(text, path=f"<{name} example>")
    torch.manual_seed(0)
    model = netspec.compile(a)  # the default (torchvision) scheme
    inputs = sample_inputs(a, batch=1)
    outputs = check_parity(a, model, inputs)
    assert a.layers[-1].output_shape == expected
    check_standalone_matches(a, model, tmp_path, inputs, outputs)


# --- every zoo spec -----------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO)
def test_zoo_parity(name: str, tmp_path: Path) -> None:
    a = small_zoo(name)
    torch.manual_seed(0)
    model = netspec.compile(a)
    inputs = sample_inputs(a, batch=1)
    outputs = check_parity(a, model, inputs)
    assert all(torch.isfinite(y).all() for y in outputs)
    check_standalone_matches(a, model, tmp_path, inputs, outputs)


@pytest.mark.parametrize("name", [n for n in ("vgg16", "resnet50") if n in ZOO])
def test_zoo_parity_at_full_size(name: str) -> None:
    # The meta device gives shapes without memory or arithmetic; parameters, buffers
    # and MACs are those of the real module.
    a = netspec.analyze(name)
    model = netspec.compile(a, device="meta")
    check_parity(a, model, sample_inputs(a, batch=1, device="meta"))


def test_state_dict_keys_follow_the_hierarchical_layer_names() -> None:
    a = spec("""
        inputs: {x: [3, 8, 8]}
        layers:
          - {op: conv2d, name: conv, out: 4, kernel: 3, padding: 1, repeat: 2}
          - {op: batchnorm, name: bn}
          - relu
          - {op: global_avgpool, flatten: true}
          - {op: linear, name: head, out: 2}
    """)
    model = netspec.compile(a)
    assert list(model.state_dict()) == [
        "conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias",
        "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
        "head.weight", "head.bias",
    ]  # fmt: skip


def test_block_names_give_nested_keys() -> None:
    if not (REPO / "specs" / "resnet18.yaml").is_file():
        pytest.skip("no resnet18 spec")
    keys = list(netspec.compile("resnet18", device="meta").state_dict())
    assert "layer2.0.conv1.weight" in keys and "layer4.1.bn2.running_var" in keys


@pytest.mark.parametrize(
    "layers,where,message",
    [
        (
            "[{op: linear, name: forward, out: 2}]",
            (3, 10),
            r"'forward' is reserved: it is an attribute of PyTorch's nn\.Module",
        ),
        (
            "[{op: linear, name: INPUT_SHAPES, out: 2}]",
            (3, 10),
            r"'INPUT_SHAPES' is reserved: it is a member of the generated",
        ),
        ("[{op: relu, name: training}]", (3, 10), r"'training' is reserved"),
        ("[{op: linear, name: train, out: 2, repeat: 2}]", (3, 10), r"layer 'train\.0': the name 'train' is reserved"),
        ("[{op: b, name: to}]", (3, 10), r"layer 'to\.fc': the name 'to' is reserved"),
        ("[{op: b, name: blk}, {op: b, name: eval, repeat: 2}]", (3, 30), r"layer 'eval\.0\.fc': the name 'eval'"),
    ],
)
def test_a_layer_name_that_pytorch_reserves_is_refused_at_the_spec(
    layers: str, where: tuple[int, int], message: str
) -> None:
    # Refused by the analysis (so `netspec check` too), located at the layer or block
    # instance, never a module that breaks when it is built.
    text = f"""
        inputs: {{x: [4]}}
        layers: {layers}
        blocks:
          b: {{layers: [{{op: linear, name: fc, out: 4}}]}}
    """
    with pytest.raises(netspec.SpecError, match=message) as e:
        spec(text)
    assert e.value.location is not None and (e.value.location.line, e.value.location.col) == where
    assert e.value.hint is not None and e.value.hint.startswith("rename the")


def test_a_block_layer_named_like_a_module_dict_method_is_refused() -> None:
    with pytest.raises(netspec.SpecError, match=r"layer 'blk\.items': .* nn\.ModuleDict") as e:
        spec("""
            inputs: {x: [4]}
            blocks:
              b: {layers: [{op: linear, name: fc, out: 4}, {op: relu, name: items}]}
            layers: [{op: b, name: blk}]
        """)
    assert e.value.location is not None and e.value.location.line == 4


def test_the_core_lists_every_name_the_module_class_reserves() -> None:
    # The core's list is written out (no torch import); it must cover the installed
    # torch and every member the generated class defines.
    from netspec.names import NESTED_RESERVED, ROOT_RESERVED

    assert set(dir(nn.Module())) <= ROOT_RESERVED
    assert set(dir(nn.ModuleDict())) <= NESTED_RESERVED
    cls = type(netspec.compile(spec("inputs: {x: [1, 2, 2]}\nlayers: [{op: conv2d, weight: [[1]]}]")))
    assert set(vars(cls)) - {"__module__", "__doc__", "__annotations__"} <= ROOT_RESERVED


NAMES_NET = """
    name: f                          # class F would shadow torch.nn.functional
    inputs: {input: [4]}             # a builtin as a forward() argument
    blocks:
      b:
        layers:
          - {op: linear, name: fc, out: 4}
          - {op: relu, name: getattr}
    layers:
      - {op: b, name: class}          # keywords: registered with add_module, not at the root
      - {op: b, name: def, repeat: 2}
      - {op: linear, name: getattr, out: 4}   # a local 'getattr' beside getattr(self, "class")
      - {op: linear, name: __x, out: 4}       # not name-mangled into _NetF__x
      - {op: linear, name: _NetF__x, out: 4}
      - {op: relu, name: self}
      - {op: linear, name: F, out: 3}
"""


def test_generated_names_never_collide_whatever_the_spec_names(tmp_path: Path) -> None:
    a = spec(NAMES_NET)
    torch.manual_seed(0)
    model = netspec.compile(a)
    assert backend.class_name(a.name) == "NetF"
    keys = list(model.state_dict())
    assert keys == [
        "class.fc.weight", "class.fc.bias", "def.0.fc.weight", "def.0.fc.bias", "def.1.fc.weight", "def.1.fc.bias",
        "getattr.weight", "getattr.bias", "__x.weight", "__x.bias", "_NetF__x.weight", "_NetF__x.bias",
        "F.weight", "F.bias",
    ]  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == a.totals.params == 6 * 20 + 15
    inputs = sample_inputs(a)
    outputs = check_parity(a, model, inputs)
    check_standalone_matches(a, model, tmp_path, inputs, outputs)


@pytest.mark.parametrize("name", ["f", "nn", "torch", "value_error", "print", "class", "T", "F"])
def test_the_class_name_is_never_a_name_the_file_uses(name: str) -> None:
    ident = backend.class_name(name)
    assert ident.isidentifier() and not keyword.iskeyword(ident)
    assert ident not in {"F", "nn", "torch", "annotations", *dir(builtins)}
    model = netspec.compile(spec(f"name: '{name}'\ninputs: {{x: [4]}}\nlayers: [{{op: linear, out: 2}}, relu]"))
    assert model(torch.randn(2, 4)).shape == (2, 2)


# --- training semantics, freezing, initialisation ----------------------------------

SMALL_NET = """
    inputs: {x: [3, 8, 8]}
    layers:
      - {op: conv2d, name: conv, out: 4, kernel: 3, padding: 1}
      - {op: batchnorm, name: bn}
      - relu
      - flatten
      - {op: dropout, p: 0.5}
      - {op: linear, name: fc, out: 5}
"""


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(256, 5)

    def forward(self, x: Any) -> Any:
        return self.fc(self.drop(torch.flatten(torch.relu(self.bn(self.conv(x))), 1)))


def test_train_and_eval_semantics_match_a_hand_written_module() -> None:
    ref = SmallNet()
    model = netspec.compile(spec(SMALL_NET), weights=ref.state_dict())
    x = torch.randn(6, 3, 8, 8)
    for mode in ("train", "eval"):
        getattr(ref, mode)()
        getattr(model, mode)()
        torch.manual_seed(1)
        y_ref = ref(x)
        torch.manual_seed(1)
        y = model(x)
        torch.testing.assert_close(y, y_ref)
    # batch statistics were used and the running statistics updated in train mode only
    torch.testing.assert_close(model.bn.running_mean, ref.bn.running_mean)
    assert int(model.bn.num_batches_tracked) == 1
    model.eval()
    assert torch.equal(model(x), model(x))  # no dropout at inference
    model.train()
    assert not torch.equal(model(x), model(x))


def test_trainable_false_freezes_the_layer() -> None:
    a = spec(SMALL_NET.replace("name: conv,", "name: conv, trainable: false,"))
    model = netspec.compile(a)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"conv.weight", "conv.bias"}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == a.totals.trainable_params
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert model.conv.weight.grad is None and model.fc.weight.grad is not None


def test_torchvision_initialisation() -> None:
    torch.manual_seed(0)
    a = spec("""
        inputs: {x: [64, 8, 8]}
        layers:
          - {op: conv2d, name: conv, out: 256, kernel: 3, padding: 1}
          - {op: batchnorm, name: bn}
          - flatten
          - {op: linear, name: fc, out: 512}
    """)
    model = netspec.compile(a)
    fan_out = 256 * 3 * 3
    assert model.conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    assert model.conv.bias.abs().max().item() == 0
    assert torch.equal(model.bn.weight, torch.ones(256)) and torch.equal(model.bn.bias, torch.zeros(256))
    assert torch.equal(model.bn.running_var, torch.ones(256)) and model.bn.running_mean.abs().max().item() == 0
    assert int(model.bn.num_batches_tracked) == 0
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert model.fc.bias.abs().max().item() == 0


def test_pytorch_initialisation_is_each_modules_default() -> None:
    torch.manual_seed(0)
    model = netspec.compile(spec(SMALL_NET), init="pytorch")
    torch.manual_seed(0)
    ref = SmallNet()  # the same modules in the same order draw the same numbers
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(v1, v2), (k1, k2)


def test_a_spec_chooses_its_initialisation() -> None:
    text = "init: pytorch\n" + textwrap.dedent(SMALL_NET)
    torch.manual_seed(0)
    model = netspec.compile(netspec.analyze_text(text))
    torch.manual_seed(0)
    ref = SmallNet()
    assert all(torch.equal(v1, v2) for v1, v2 in zip(model.state_dict().values(), ref.state_dict().values()))
    assert model.conv.bias.abs().max().item() > 0  # PyTorch's default: uniform biases
    # an explicit argument wins over the spec
    assert netspec.compile(netspec.analyze_text(text), init="torchvision").conv.bias.abs().max().item() == 0
    # and the standalone source carries the spec's choice as its default
    assert 'init: str = "pytorch"' in backend.generate_source(netspec.analyze_text(text))
    with pytest.raises(netspec.SpecError, match="init"):
        netspec.analyze_text("init: xavier\n" + textwrap.dedent(SMALL_NET))


def test_unknown_init_device_and_dtype_are_one_line_errors() -> None:
    a = spec(SMALL_NET)
    with pytest.raises(netspec.SpecError, match="unknown init 'xavier'"):
        netspec.compile(a, init="xavier")
    with pytest.raises(netspec.SpecError, match="unknown device 'gpu0'"):
        netspec.compile(a, device="gpu0")
    with pytest.raises(netspec.SpecError, match="unknown dtype 'int8'"):
        netspec.compile(a, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(netspec.SpecError, match="device 'cuda' is not available") as e:
            netspec.compile(a, device="cuda")
        assert "\n" not in e.value.message


def test_keyword_overrides_set_spec_variables() -> None:
    model = netspec.compile("lenet5", classes=3)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)
    with pytest.raises(netspec.SpecError, match="no such variable"):
        netspec.compile("lenet5", clases=3)


# --- devices, dtypes, memory format -------------------------------------------------


def test_dtype_and_channels_last() -> None:
    a = spec(SMALL_NET)
    torch.manual_seed(0)
    model = netspec.compile(a).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = model(x)
        wide = netspec.compile(a, dtype="float64", weights=model.state_dict()).eval()
        assert all(p.dtype == torch.float64 for p in wide.parameters())
        torch.testing.assert_close(wide(x.double()).float(), y)
        half = netspec.compile(a, dtype=torch.bfloat16, weights=model.state_dict()).eval()
        assert half(x.bfloat16()).dtype == torch.bfloat16
        model.to(memory_format=torch.channels_last)
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), y)


def test_device_argument_builds_on_that_device() -> None:
    model = netspec.compile(spec(SMALL_NET), device="cpu", init="pytorch")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    meta = netspec.compile(spec(SMALL_NET), device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}


# --- memory: liveness and in-place activations ------------------------------------


def test_intermediates_are_freed_after_their_last_use() -> None:
    a = spec("""
        inputs: {x: [3, 16, 16]}
        layers:
          - {op: conv2d, name: c, out: 4, kernel: 3, padding: 1, repeat: 4}
          - relu
          - {op: conv2d, name: d, out: 4, kernel: 3, padding: 1}
    """)
    model = netspec.compile(a)
    outputs: list[Any] = []
    alive_at_each_conv: list[int] = []

    def before(m: Any, args: Any) -> None:
        alive_at_each_conv.append(sum(r() is not None for r in outputs))

    def after(m: Any, args: Any, out: Any) -> None:
        outputs.append(weakref.ref(out))

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(before)
            m.register_forward_hook(after)
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    # each conv's input is the previous conv's output: nothing older is alive
    assert alive_at_each_conv == [0, 1, 1, 1, 1]


def test_in_place_activations_never_overwrite_a_value_still_needed() -> None:
    a = spec("""
        inputs: {x: [4, 6, 6]}
        layers:
          - {op: relu, name: r0}
          - {op: conv2d, name: c, out: 4, kernel: 1, inputs: [x]}
          - {op: relu, name: r1}
          - {op: add, name: s, inputs: [c, r1]}
          - {op: sigmoid, name: g}
          - {op: relu, name: r2}
          - {op: batchnorm, name: bn, inputs: [s]}
          - {op: dropout, name: dr}
          - {op: relu, name: r3}
          - {op: add, name: t, inputs: [r2, r3, bn, r0]}
          - {op: conv2d, name: e, out: 4, kernel: 1}
          - {op: relu6, name: r4}
        outputs: [e, r4]
    """)
    torch.manual_seed(0)
    model = netspec.compile(a).eval()
    x = torch.randn(2, 4, 6, 6)
    x0 = x.clone()
    with torch.no_grad():
        e, r4 = model(x)
        c = model.c(x)
        s = c + torch.relu(c)
        dr = model.bn(s)
        t = torch.relu(torch.sigmoid(s)) + torch.relu(dr) + dr + torch.relu(x)
        e_ref = model.e(t)
    assert torch.equal(x, x0)  # the caller's tensor is untouched
    torch.testing.assert_close(e, e_ref)
    torch.testing.assert_close(r4, F.relu6(e_ref))
    source = backend.generate_source(a)
    assert "r1 = F.relu(c)" in source  # c is read again by s
    assert "r0 = F.relu(x)" in source  # a graph input
    assert "r3 = F.relu(dr)" in source  # dropout returns its input (bn, read again) in eval mode
    assert "r4 = F.relu6(e)" in source  # e is an output
    # and in training, autograd still has what it keeps (sigmoid keeps its output)
    model.train()
    y = model(x.requires_grad_())
    (y[0].sum() + y[1].sum()).backward()


def test_in_place_where_safe() -> None:
    source = backend.generate_source(netspec.analyze("vgg16_bn"))
    assert "features_2 = F.relu(features_1, inplace=True)" in source  # conv1_1's ReLU, after its batch norm


# --- fixed weights: the lecture examples --------------------------------------------

IMAGE_6X6 = [[3, 0, 1, 2, 7, 4], [1, 5, 8, 9, 3, 1], [2, 7, 2, 5, 1, 3], [0, 1, 3, 1, 7, 8], [4, 2, 1, 6, 2, 8], [2, 4, 5, 2, 3, 9]]  # fmt: skip
VERTICAL = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
IMAGE_7X7 = [
    [2, 3, 7, 4, 6, 2, 9],
    [6, 6, 9, 8, 7, 4, 3],
    [3, 4, 8, 3, 8, 9, 7],
    [7, 8, 3, 6, 6, 3, 4],
    [4, 2, 1, 8, 3, 4, 6],
    [3, 2, 4, 1, 9, 8, 3],
    [0, 1, 3, 9, 2, 1, 4],
]


def run_fixed(image: list[list[int]], kernel: list[list[int]], stride: int = 1) -> list[list[float]]:
    model = netspec.compile(
        spec(f"""
            inputs: {{image: [1, {len(image)}, {len(image[0])}]}}
            layers:
              - {{op: conv2d, name: filter, weight: {kernel}, stride: {stride}}}
        """)
    )
    with torch.no_grad():
        y = model(torch.tensor(image, dtype=torch.float32)[None, None])
    result: list[list[float]] = y[0, 0].tolist()
    return result


def test_vertical_edge_detection_of_the_lecture_notes() -> None:
    assert run_fixed(IMAGE_6X6, VERTICAL) == [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]


def test_a_step_image_gives_a_bright_vertical_edge() -> None:
    step = [[10, 10, 10, 0, 0, 0]] * 6
    assert run_fixed(step, VERTICAL) == [[0, 30, 30, 0]] * 4


def test_7x7_example_with_stride_2() -> None:
    # The slide prints 83 for the top-right entry; the arithmetic on its numbers gives 88.
    assert run_fixed(IMAGE_7X7, [[3, 4, 4], [1, 0, 2], [-1, 0, 3]], stride=2) == [
        [91, 100, 88],
        [69, 91, 117],
        [44, 72, 74],
    ]


def test_fixed_weights_with_channels_groups_and_bias_match_torch() -> None:
    torch.manual_seed(0)
    w = torch.randint(-3, 4, (4, 1, 2, 3)).float()
    a = spec(f"""
        inputs: {{x: [2, 5, 5]}}
        layers:
          - {{op: conv2d, name: k, weight: {w.tolist()}, groups: 2, bias: [1, 2, 3, 4.5]}}
    """)
    for init in ("torchvision", "pytorch"):
        model = netspec.compile(a, init=init)
        x = torch.randn(1, 2, 5, 5)
        with torch.no_grad():
            torch.testing.assert_close(model(x), F.conv2d(x, w, torch.tensor([1, 2, 3, 4.5]), groups=2))


def test_a_fixed_weight_that_does_not_fit_the_input_is_a_located_error() -> None:
    with pytest.raises(netspec.SpecError, match="input channel") as e:
        spec("""
            inputs: {x: [3, 6, 6]}
            layers:
              - {op: conv2d, name: k, weight: [[1, 0], [0, 1]]}
        """)
    assert e.value.location is not None and e.value.location.line == 4


# --- torch.compile and torch.export -------------------------------------------------


def graph_net() -> netspec.Analysis:
    """A small net with branches, concatenation, a residual, batch norm and dropout."""
    return spec("""
        inputs: {x: [3, 16, 16]}
        layers:
          - {op: conv2d, name: stem, out: 8, kernel: 3, padding: 1}
          - {op: batchnorm, name: bn}
          - relu
          - {op: conv2d, name: a, out: 8, kernel: 1}
          - {op: conv2d, name: b, out: 8, kernel: 3, padding: 1, inputs: [relu_1]}
          - {op: concat, name: cat, inputs: [a, b]}
          - {op: conv2d, name: mix, out: 8, kernel: 1}
          - {op: add, name: res, inputs: [mix, relu_1]}
          - relu
          - {op: maxpool2d, kernel: 2}
          - {op: global_avgpool, flatten: true}
          - {op: dropout, p: 0.2}
          - {op: linear, name: fc, out: 4}
    """)


def test_torch_compile_fullgraph_has_no_graph_breaks() -> None:
    model = netspec.compile(graph_net()).eval()
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # tracing only: no C compiler needed
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="inductor needs a C compiler")
def test_torch_compile_with_inductor() -> None:
    model = netspec.compile("lenet5").eval()
    x = torch.randn(2, 1, 32, 32)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_torch_export() -> None:
    model = netspec.compile(graph_net()).eval()
    x = torch.randn(2, 3, 16, 16)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))
    assert "fc.weight" in exported.state_dict


def test_torch_export_of_a_zoo_model() -> None:
    name = "resnet18" if (REPO / "specs" / "resnet18.yaml").is_file() else "vgg11"
    model = netspec.compile(name, classes=10, resolution=32).eval()
    x = torch.randn(1, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


# --- the command line ---------------------------------------------------------------

BLOCK_NETSPEC = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "netspec":
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    code = "import sys\nfrom netspec.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_writes_standalone_source_that_needs_only_torch(tmp_path: Path) -> None:
    r = cli("compile", "lenet5", "-o", str(tmp_path / "lenet.py"), "--set", "classes=7")
    assert r.returncode == 0, r.stderr
    run = subprocess.run(
        [sys.executable, "-c", BLOCK_NETSPEC + "\nimport runpy\nrunpy.run_path('lenet.py', run_name='__main__')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "fc3 (1, 7)"


def test_cli_writes_a_state_dict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    assert main(["compile", "lenet5", "-o", str(tmp_path / "lenet.pt")]) == 0
    state = torch.load(tmp_path / "lenet.pt", weights_only=True)
    assert list(state) == list(netspec.compile("lenet5", device="meta").state_dict())
    assert main(["compile", "lenet5"]) == 0  # no -o: the source on stdout
    assert "class Lenet5(nn.Module):" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: {x: [3, 8, 8]}\nlayers:\n  - {op: conv2d, out: 4, kernal: 3}\n")
    assert main(["compile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3:" in err and "Traceback" not in err
    assert main(["compile", "lenet5", "-o", str(tmp_path / "m.txt")]) == 2
    assert "use .py (source), .pt (state_dict) or .onnx" in capsys.readouterr().err
    for name in ("m.py", "m.pt"):  # a missing directory is the user's mistake, not an internal error
        missing = tmp_path / "missing" / name
        assert main(["compile", "lenet5", "-o", str(missing)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"{missing}: error: cannot write the ") and err.endswith("does not exist"), err
    if not torch.cuda.is_available():
        assert main(["compile", "lenet5", "--device", "cuda:7", "-o", str(tmp_path / "m.pt")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("netspec: error: device 'cuda:7' is not available")
        assert len(err.splitlines()) == 1
