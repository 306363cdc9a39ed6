"""The spec's init rules (``init: {scheme, ops, layers}``): the zoo's families
initialised as their reference implementations initialise themselves, the rules'
order and reach, the generated source, and every mistake located.

The reference modules (``torch_references.py``) carry torchvision's own
initialisation code; a built model's tensors must have the same distributions:
the same zeros and constants, the same spread and the same family (uniform or bell)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from conftest import analyze_yaml
from test_errors import error_of

import netspec

torch = pytest.importorskip("torch")
backend = pytest.importorskip("netspec.backends.torch")
from test_init import poisoned_empty, unwritten  # noqa: E402, F401 (the fixture, by name)
from torch_references import build_reference  # noqa: E402 (needs torch)

#: families whose reference module (with its initialisation) is cheap enough to build
#: at full size: their classifiers' initialisation depends on the 1,000 classes
FAMILIES = [
    *("alexnet", "resnet18", "resnext50_32x4d", "densenet121", "mobilenet_v2", "squeezenet1_0", "squeezenet1_1"),
    *("mnasnet1_0", "mobilenet_v3_small", "shufflenet_v2_x1_0"),
]


def _trunc_normal_init(std: float, stddev: dict[str, float]) -> Any:
    """torchvision's GoogLeNet and Inception v3 initialisation: truncated normal
    (``std``, or the module's own ``stddev``; a=-2, b=2) for convolution and linear
    weights, 1 and 0 for batch norm; linear biases keep PyTorch's default."""

    def init(model: Any) -> None:
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=stddev.get(name, std), a=-2, b=2)
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.constant_(m.weight, 1)
                torch.nn.init.constant_(m.bias, 0)

    return init


def _timm_resnet_init(model: Any) -> None:
    """timm's ResNet: He normal (fan out) for convolution weights, 1/0 batch norm, each
    bottleneck's bn3 weight 0 (zero_init_last); convolution biases and the classifier
    keep PyTorch's default."""
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
            if name.endswith(".bn3"):
                torch.nn.init.zeros_(m.weight)


def _tensorflow_init(fan_out_per_group: bool) -> Any:
    """EfficientNet's initialisation, after TensorFlow's: normal with std
    sqrt(2 / fan_out) for convolutions (torchvision's efficientnet counts the fan out
    over all channels, as kaiming_normal does; timm's MobileNetV1 per group), batch
    norm 1/0, linear weights uniform within 1/sqrt(out features), zero biases."""

    def init(model: Any) -> None:
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                fan_out //= m.groups if fan_out_per_group else 1
                torch.nn.init.normal_(m.weight, 0, (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.Linear):
                bound = 1.0 / m.out_features**0.5
                torch.nn.init.uniform_(m.weight, -bound, bound)
                torch.nn.init.zeros_(m.bias)

    return init


def _timm_xception_init(model: Any) -> None:
    """timm's Xception: He normal (fan out) convolutions, batch norm 1/0; the classifier
    keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()


#: families without a reference module here: their reference's initialisation code,
#: run over the model as PyTorch's constructors leave it (spec values for each)
HAND_WRITTEN: dict[str, tuple[dict[str, Any], Any]] = {
    "googlenet": ({}, _trunc_normal_init(0.01, {})),
    "inception_v3": ({"aux": True}, _trunc_normal_init(0.1, {"AuxLogits.conv1.conv": 0.01, "AuxLogits.fc": 0.001})),
    "efficientnet_b0": ({}, _tensorflow_init(fan_out_per_group=False)),
    "se_resnet50": ({}, _timm_resnet_init),
    "mobilenet_v1": ({}, _tensorflow_init(fan_out_per_group=True)),
    "xception": ({}, _timm_xception_init),
}


def _profile(t: Any) -> tuple[str, float]:
    """What a tensor's initialisation shows: a constant (and its value), or a spread
    and its family, told apart by max/std (a uniform's is at most sqrt(3), a normal
    sample's of 1,000 values or more is above 3)."""
    t = t.detach().double().reshape(-1)
    if bool((t == t[0]).all()):
        return "constant", float(t[0])
    std = float(t.std())
    return ("uniform" if float(t.abs().max()) / std < 2.0 else "bell"), std


def _same_distributions(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert list(ours) == list(theirs)  # by name: the comparison pairs the right tensors
    checked = 0
    for key, t in theirs.items():
        if t.numel() < 1000 and not bool((t == t.reshape(-1)[0]).all()):
            continue  # too few values to tell a spread
        (kind, value), (want_kind, want) = _profile(ours[key]), _profile(t)
        assert kind == want_kind, f"{key}: {kind}, the reference's is {want_kind}"
        assert value == pytest.approx(want, rel=0.1, abs=1e-12), key
        checked += 1
    assert checked > len(theirs) // 2


@pytest.mark.parametrize("name", FAMILIES)
def test_a_family_is_initialised_as_its_reference_does(name: str) -> None:
    torch.manual_seed(0)
    ours = netspec.compile(name).state_dict()
    torch.manual_seed(1)
    _same_distributions(ours, build_reference(name).state_dict())


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_a_family_is_initialised_as_its_references_code_does(name: str) -> None:
    values, init = HAND_WRITTEN[name]
    torch.manual_seed(0)
    ours = netspec.compile(name, values).state_dict()
    a = netspec.analyze(name, values)
    a.init_rules.clear()  # the modules as PyTorch makes them, then the reference's code
    torch.manual_seed(1)
    model = backend.build(a, init="pytorch")
    with torch.no_grad():
        init(model)
    _same_distributions(ours, model.state_dict())


def test_without_its_rules_squeezenet_would_differ() -> None:
    """The comparison can fail: the torchvision scheme alone gives SqueezeNet's convs
    He normal fan-out and its classifier He too, not the reference's."""
    torch.manual_seed(0)
    a = netspec.analyze("squeezenet1_0")
    a.init_rules.clear()
    model = backend.build(a)
    ref = build_reference("squeezenet1_0").state_dict()
    assert _profile(model.state_dict()["classifier.1.weight"])[0] == "bell"
    assert _profile(model.state_dict()["classifier.1.weight"])[1] > 2 * _profile(ref["classifier.1.weight"])[1]
    assert _profile(model.state_dict()["features.0.weight"])[0] != _profile(ref["features.0.weight"])[0]


NET = """
    inputs: {x: [3, 8, 8]}
    layers:
      - {op: conv2d, name: c1, out: 64, kernel: 3}
      - {op: batchnorm, name: bn}
      - {op: conv2d, name: c2, out: 64, kernel: 3, bias: false}
      - {op: flatten, name: flat}
      - {op: linear, name: fc, out: 32}
"""


def net(init: str) -> Any:
    return analyze_yaml(textwrap.dedent(NET) + textwrap.dedent(init))


def test_layer_rules_come_after_op_rules_and_apply_over_either_scheme() -> None:
    a = net("""
        init:
          layers:
            c2: {weight: "constant(0.5)"}
          ops:
            conv2d: {weight: zeros, bias: "constant(-1)"}
            batchnorm: {weight: "constant(2)"}
    """)
    for scheme in backend.INITS:
        m = backend.build(a, init=scheme)
        assert bool((m.c1.weight == 0).all()) and bool((m.c1.bias == -1).all())
        assert bool((m.c2.weight == 0.5).all())  # its layer's rule, written first, applied last
        assert bool((m.bn.weight == 2).all())
        assert bool((m.bn.running_var == 1).all())  # buffers are the module's
    # the linear layer keeps its scheme: N(0, 0.01) under torchvision, PyTorch's uniform otherwise
    torch.manual_seed(0)
    assert _profile(backend.build(a).fc.weight) == ("bell", pytest.approx(0.01, rel=0.05))
    assert _profile(backend.build(a, init="pytorch").fc.weight)[0] == "uniform"


def test_a_pattern_picks_layers_by_block_or_glob() -> None:
    a = net("init: {layers: {'c*': {weight: ones}}}")
    m = backend.build(a)
    assert bool((m.c1.weight == 1).all()) and bool((m.c2.weight == 1).all())
    assert not bool((m.fc.weight == 1).all())
    # a layer rule over layers of two ops: each op's own statement
    b = net("init: {layers: {'*': {weight: pytorch}}}")
    m = backend.build(b)
    assert bool((m.bn.weight == 1).all())
    fan_in = 3 * 3 * 3
    assert _profile(m.c1.weight) == ("uniform", pytest.approx((1 / fan_in / 3) ** 0.5, rel=0.1))


def test_the_pytorch_initializer_is_the_modules_own() -> None:
    """``pytorch``: PyTorch's constructor's distribution (uniform, bound 1/sqrt(fan_in)
    for weights and biases alike), checked against a module PyTorch made."""
    a = net("init: {ops: {linear: {weight: pytorch, bias: pytorch}}}")
    m = backend.build(a)
    ref = torch.nn.Linear(64 * 4 * 4, 32)
    for tensor in ("weight", "bias"):
        ours, theirs = getattr(m.fc, tensor).detach(), getattr(ref, tensor).detach()
        bound = (64 * 4 * 4) ** -0.5
        assert float(ours.abs().max()) <= bound and float(theirs.abs().max()) <= bound
    assert _profile(m.fc.weight) == ("uniform", pytest.approx(_profile(ref.weight)[1], rel=0.05))


def test_the_generated_source_applies_the_rules() -> None:
    a = net("""
        init:
          ops:
            linear:
              weight: trunc_normal(std=0.02, a=-0.04, b=0.04)
              bias: zeros
    """)
    source = backend.generate_source(a)
    assert "# init: ops: linear: weight: trunc_normal(std=0.02, a=-0.04, b=0.04)" in source
    assert "nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)" in source
    scope: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), scope)  # the standalone file, as users run it
    m = scope[backend.class_name(a.name)]()
    assert float(m.fc.weight.detach().abs().max()) <= 0.04 and bool((m.fc.bias == 0).all())
    # built on the meta device: nothing to initialise, nothing fails
    scope[backend.class_name(a.name)](device="meta")


HINTS = {
    "{ops: {conv2d: {bias: kaiming_normal}}}": "use zeros, constant, normal or uniform",
    "{ops: {conv2d: {wieght: zeros}}}": "did you mean 'weight'?",
    "{ops: {conv2: {weight: zeros}}}": "did you mean 'conv2d'?",
    "{layers: {c3: {weight: zeros}}}": "layers: c1, bn, c2, flat, fc",
    "{schem: pytorch}": "did you mean 'scheme'?",
}


@pytest.mark.parametrize(
    ("init", "message", "at"),
    [
        ("{ops: {conv2d: {weight: kaiming_unifrom}}}", "unknown initializer 'kaiming_unifrom' (did you mean 'kaiming_uniform'?)", "kaiming_unifrom"),
        ("{ops: {conv2d: {weight: 'normal(sdt=0.1)'}}}", "normal has no parameter 'sdt' (did you mean 'std'?)", "'normal"),
        ("{ops: {conv2d: {weight: 'kaiming_normal(mode=fan_ot)'}}}", "mode must be one of fan_in, fan_out, not 'fan_ot'", "'kaiming"),
        ("{ops: {conv2d: {weight: 'uniform(1, 0)'}}}", "the range a=1.0, b=0.0 is empty", "'uniform"),
        ("{ops: {conv2d: {weight: constant}}}", "constant needs val", "constant"),
        ("{ops: {conv2d: {weight: 'normal(std=$s)'}}}", "init: ops: conv2d: weight: undefined variable '$s'", "'normal"),
        ("{ops: {conv2d: {weight: 'normal(std=sqrt(2))'}}}", "std must be a number or an expression of variables, not 'sqrt(2)'", "'normal"),
        ("{ops: {conv2d: {bias: kaiming_normal}}}", "kaiming_normal reads the fans of a tensor of at least 2 dimensions, and 'c1.bias' has shape [64]", "kaiming_normal"),
        ("{ops: {conv2: {weight: zeros}}}", "init: unknown op 'conv2'", "conv2"),
        ("{ops: {relu: {weight: zeros}}}", "init: op 'relu' has no parameters to initialise", "relu"),
        ("{ops: {batchnorm: {running_mean: zeros}}}", "'running_mean' is a buffer, not a parameter", "zeros"),
        ("{ops: {conv2d: {wieght: zeros}}}", "no layer of op 'conv2d' has a parameter 'wieght'", "zeros"),
        ("{layers: {c3: {weight: zeros}}}", "init: layers: 'c3' names no layer", "c3"),
        ("{layers: {c2: {bias: zeros}}}", "no layer picked by 'c2' has a parameter 'bias'", "zeros"),
        ("{ops: {conv2d: {weight: 'normal(std=1e999)'}}}", "normal: std must be a finite number, not inf", "'normal"),
        ("{ops: {conv2d: {weight: 'normal(**k)'}}}", "arguments are written name=value, not '**k'", "'normal"),
        ("{ops: {conv2d: {weight: 'normal(1, 2, 3)'}}}", "normal takes at most 2 argument(s) (mean, std)", "'normal"),
        ("{schem: pytorch}", "unknown key 'init.schem'", "schem"),
        ("pytroch", "input should be 'torchvision' or 'pytorch', got 'pytroch'", "pytroch"),
    ],
)  # fmt: skip
def test_a_mistake_is_located_at_the_rule(init: str, message: str, at: str) -> None:
    text = textwrap.dedent(NET) + f"init: {init}\n"
    e = error_of(text)
    assert message in e.message
    where = (text.count("\n"), len("init: ") + init.index(at) + 1)
    assert e.location is not None and (e.location.line, e.location.col) == where
    hint = HINTS.get(init)
    assert hint is None or hint in (e.hint or "")
    assert "Traceback" not in str(e)


def test_numbers_may_be_expressions_of_the_variables() -> None:
    """EfficientNet's classifier: uniform within 1/sqrt(classes), for any classes."""
    text = """
        params: {classes: 10}
        inputs: {x: [512]}
        init:
          ops:
            linear: {weight: "uniform(-$classes ** -0.5, $classes ** -0.5)", bias: zeros}
        layers:
          - {op: linear, name: fc, out: $classes}
    """
    for classes in (10, 400):
        torch.manual_seed(0)
        m = backend.build(analyze_yaml(text, classes=classes))
        bound = classes**-0.5
        assert _profile(m.fc.weight) == ("uniform", pytest.approx(bound / 3**0.5, rel=0.05))
        assert float(m.fc.weight.detach().abs().max()) <= bound
    with pytest.raises(netspec.SpecError, match=r"uniform: the range a=-0.1, b=-0.1 is empty"):
        analyze_yaml(text.replace("-0.5, $classes", "-0.5, -$classes"), classes=100)


def test_a_rule_on_a_fixed_tensor_is_refused() -> None:
    text = "inputs: {x: [1, 4, 4]}\nlayers: [{op: conv2d, name: edge, weight: [[1, 0], [0, 1]]}]\n"
    with pytest.raises(netspec.SpecError, match="layer 'edge' gives its weight's values in the spec"):
        netspec.analyze_text(text + "init: {ops: {conv2d: {weight: zeros}}}\n")


def test_an_op_the_model_lacks_is_no_error() -> None:
    """A rule for every linear layer of a variant that has none (the spec's rules are
    written once for all its variants)."""
    text = "inputs: {x: [3, 8, 8]}\nlayers: [{op: conv2d, out: 4, kernel: 3}]\ninit: {ops: {linear: {weight: zeros}}}\n"
    assert netspec.analyze_text(text).init_rules == []


def test_a_layer_rule_for_layers_left_out_by_when_is_no_error() -> None:
    """Inception v3's rules for its auxiliary head hold whether ``aux`` is on or off;
    a pattern that names no layer, left out or not, stays an error."""
    off = netspec.analyze("inception_v3").init_rules
    on = netspec.analyze("inception_v3", {"aux": True}).init_rules
    assert [r.layers for r in on[len(off) :]] == [("AuxLogits.conv1.conv",), ("AuxLogits.fc",)]
    text = textwrap.dedent(NET).replace("name: fc, out: 32", "name: fc, out: 32, when: false")
    assert netspec.analyze_text(text + "init: {layers: {fc: {weight: zeros}}}\n").init_rules == []
    with pytest.raises(netspec.SpecError, match="init: layers: 'fcc' names no layer"):
        netspec.analyze_text(text + "init: {layers: {fcc: {weight: zeros}}}\n")


@pytest.mark.usefixtures("poisoned_empty")
@pytest.mark.parametrize("name", ["squeezenet1_1", "densenet121", "se_resnet50", "mobilenet_v1", "inception_v3"])
def test_layers_left_to_the_rules_are_still_initialised_whole(name: str) -> None:
    """The scheme skips the layers whose every tensor a rule sets (no double work); a
    tensor nobody sets would keep the sentinel that torch.empty hands out here."""
    model = netspec.compile(name)
    assert unwritten(model) == []
    source = backend.generate_source(netspec.analyze(name))
    assert "by_rules = {" in source  # each has layers the rules set whole (its classifier at least)
