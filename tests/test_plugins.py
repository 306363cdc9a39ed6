"""Custom ops from plugins (netspec/plugins.py): a CBAM attention op in a user's file,
run through summary, compile (module and written source) and training; entry points;
and every way a plugin can be wrong, each one located line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import netspec
from netspec import cli, plugins
from netspec.ops import REGISTRY

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
torch_backend = pytest.importorskip("netspec.backends.torch")

#: the README's example: CBAM (Woo et al., 2018), channel then spatial attention
CBAM = '''
import torch
from torch import nn

from netspec.ops import Attrs, Op, Tensor, register_op
from netspec.plugins import torch_module


class CBAMAttrs(Attrs):
    reduction: int = 16
    kernel: int = 7


@register_op("cbam")
class CBAM(Op):
    """Channel, then spatial attention (Woo et al., 2018); layers: [{op: cbam, reduction: 4}]"""

    Attrs = CBAMAttrs

    def shape(self, a, ins):
        return ins[0]

    def tensors(self, a, ins, out):
        c, r, k = ins[0][0], ins[0][0] // a.reduction, a.kernel
        return [Tensor("mlp.0.weight", (r, c, 1, 1), "parameter"), Tensor("mlp.2.weight", (c, r, 1, 1), "parameter"),
                Tensor("spatial.weight", (1, 2, k, k), "parameter")]

    def macs(self, a, ins, out):  # the MLP on two pooled vectors, the 2-channel convolution
        c, h, w = ins[0]
        return 2 * 2 * c * (c // a.reduction) + h * w * 2 * a.kernel**2


@torch_module("cbam", lambda a, ins, out: {"channels": ins[0][0], "reduction": a.reduction, "kernel": a.kernel})
class CBAMModule(nn.Module):
    def __init__(self, channels, reduction, kernel):
        super().__init__()
        r = channels // reduction
        self.mlp = nn.Sequential(nn.Conv2d(channels, r, 1, bias=False), nn.ReLU(), nn.Conv2d(r, channels, 1, bias=False))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x):
        x = x * torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
'''

SPEC = """
name: tiny_cbam
plugins: [cbam_ops.py]
inputs: {x: [3, 12, 12]}
layers:
  - {op: conv2d, name: conv, out: 16, kernel: 3, padding: 1}
  - relu
  - {op: cbam, name: att, reduction: 4, kernel: 3}
  - {op: global_avgpool, flatten: true}
  - {op: linear, name: fc, out: 3}
"""


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Each test's plugins are forgotten after it: the registry-driven tests of the other
    files see the built-in ops only."""
    registry, loaded, ops = dict(REGISTRY), dict(plugins._PLUGINS), dict(plugins._OPS)
    modules, entry_points = set(sys.modules), plugins._entry_points_loaded
    yield
    REGISTRY.clear()
    REGISTRY.update(registry)
    plugins._PLUGINS.clear()
    plugins._PLUGINS.update(loaded)
    plugins._OPS.clear()
    plugins._OPS.update(ops)
    plugins._entry_points_loaded = entry_points
    for name in set(sys.modules) - modules:
        if name.startswith(("netspec_plugin_", "ep_ops")):
            del sys.modules[name]


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text) if name.endswith(".yaml") else text)
    return tmp_path


def cbam_spec(tmp_path: Path) -> Path:
    write(tmp_path, {"cbam_ops.py": CBAM, "net.yaml": SPEC})
    return tmp_path / "net.yaml"


def reference_cbam(x: Any, w1: Any, w2: Any, ws: Any) -> Any:
    """CBAM written out with torch.nn.functional, from the paper's equations."""
    gate = torch.sigmoid(
        sum(F.conv2d(F.relu(F.conv2d(p, w1)), w2) for p in (F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)))
    )
    x = x * gate
    pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    return x * torch.sigmoid(F.conv2d(pooled, ws, padding=ws.shape[-1] // 2))


# --- the plugin op, end to end -------------------------------------------------------


def test_the_readme_example_is_this_one_in_at_most_30_lines() -> None:
    assert len([line for line in CBAM.splitlines() if line.strip()]) <= 30
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Custom ops (plugins)") :]
    assert section.split("```python\n", 1)[1].split("```", 1)[0] == CBAM.lstrip("\n")
    assert section.split("```yaml\n", 1)[1].split("```", 1)[0] == SPEC.lstrip("\n")


def test_summary_counts_the_plugin_op_by_its_own_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = netspec.analyze(cbam_spec(tmp_path))
    att = a.layer("att")
    c, r = 16, 4
    assert att.op == "cbam" and att.output_shape == (16, 12, 12)
    assert att.params == r * c + c * r + 2 * 3 * 3
    assert att.macs == 2 * 2 * c * r + 12 * 12 * 2 * 3 * 3
    # the CLI too: the summary table has the plugin's layer
    assert cli.main(["summary", str(tmp_path / "net.yaml")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["att"])
    assert row.split()[1] == "cbam" and "[N, 16, 12, 12]" in row
    assert f"{att.params:,}" in row.split() and f"{att.macs:,}" in row.split()


def test_the_module_counts_and_computes_as_the_spec_says(tmp_path: Path) -> None:
    from test_torch_backend import check_parity

    a = netspec.analyze(cbam_spec(tmp_path))
    torch.manual_seed(0)
    model = netspec.compile(a)
    x = torch.randn(2, 3, 12, 12)
    check_parity(a, model, [x])  # params, buffers, output shape, MACs by forward hooks
    assert [k for k in model.state_dict() if k.startswith("att.")] == [
        "att.mlp.0.weight",
        "att.mlp.2.weight",
        "att.spatial.weight",
    ]
    # every tensor initialised (the torchvision scheme materialises them uninitialised)
    for key, value in model.state_dict().items():
        if key.startswith("att."):
            assert torch.isfinite(value).all() and value.std() > 0 and value.abs().max() < 10, key
    sd = model.state_dict()
    with torch.no_grad():
        h = F.relu(F.conv2d(x, sd["conv.weight"], sd["conv.bias"], padding=1))
        h = reference_cbam(h, sd["att.mlp.0.weight"], sd["att.mlp.2.weight"], sd["att.spatial.weight"])
        want = F.linear(h.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])
        torch.testing.assert_close(model.eval()(x), want)


def test_the_written_source_imports_the_plugin_and_runs_alone(tmp_path: Path) -> None:
    spec = cbam_spec(tmp_path)
    (tmp_path / "out").mkdir()
    torch_backend.write(spec, tmp_path / "out" / "model.py")
    text = (tmp_path / "out" / "model.py").read_text()
    assert f"load_plugin({json.dumps(str((tmp_path / 'cbam_ops.py').resolve()))})" in text
    # a fresh interpreter, elsewhere: the file finds the plugin by its path
    run = subprocess.run([sys.executable, "model.py"], capture_output=True, text=True, cwd=tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["fc", "(1,", "3)"]
    # and in this process, with the compiled module's weights, the same outputs
    from test_torch_backend import standalone

    a = netspec.analyze(spec)
    model = netspec.compile(a).eval()
    other = standalone(a, tmp_path)(device="meta")
    other.load_state_dict(model.state_dict(), assign=True)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(x), model(x), rtol=0, atol=0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only contend
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_a_few_training_steps_reach_the_plugins_parameters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = netspec.compile(cbam_spec(tmp_path)).train()
    x, y = torch.randn(8, 3, 12, 12), torch.randint(0, 3, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("att.")}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # it fits a batch of 8
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)


def test_two_specs_may_name_the_same_plugin(tmp_path: Path) -> None:
    spec = cbam_spec(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.yaml").write_text(SPEC.replace("cbam_ops.py", "../cbam_ops.py"))
    a, b = netspec.analyze(spec), netspec.analyze(tmp_path / "sub" / "other.yaml")
    assert a.totals.params == b.totals.params
    assert netspec.load(spec) is not None  # and a third time


# --- backends without a lowering, and lowerings a plugin gives -------------------------


def test_onnx_and_graphviz_refuse_a_plugin_op_they_cannot_lower_in_one_located_line(tmp_path: Path) -> None:
    onnx_backend = pytest.importorskip("netspec.backends.onnx")
    from netspec.backends import graphviz

    spec = cbam_spec(tmp_path)
    for call, backend in (
        (lambda: onnx_backend.export(spec, structure_only=True), "onnx"),
        (lambda: graphviz.to_digraph(spec), "graphviz"),
    ):
        with pytest.raises(netspec.SpecError) as e:
            call()
        assert e.value.message == f"layer 'att': op 'cbam' of plugin cbam_ops.py has no {backend} lowering"
        assert e.value.location is not None and e.value.location.line == 8  # the layer's line in net.yaml


def test_a_plugin_may_give_onnx_and_graphviz_lowerings(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx_backend = pytest.importorskip("netspec.backends.onnx")
    from netspec.backends import graphviz

    plugin = '''
from torch import nn
from netspec.ops import Op, register_op
from netspec.plugins import lowering, torch_module


@register_op("negate")
class Negate(Op):
    """-x::

    layers: [{op: negate}]
    """

    def shape(self, a, ins):
        return ins[0]


@torch_module("negate", lambda a, ins, out: {})
class NegateModule(nn.Module):
    def forward(self, x):
        return -x


@lowering("onnx", "negate")
def _onnx(c):
    c.emit("Neg", [c.args[0]])


@lowering("graphviz", "negate")
def _label(c):
    return "negate"
'''
    write(
        tmp_path, {"neg.py": plugin, "n.yaml": "plugins: [neg.py]\ninputs: {x: [4]}\nlayers: [{op: negate, name: n}]\n"}
    )
    spec = tmp_path / "n.yaml"
    model = onnx_backend.export(spec)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 4).numpy()
    assert (session.run(None, {"x": x})[0] == -x).all()
    assert "negate" in graphviz.to_digraph(spec).source


# --- entry points ------------------------------------------------------------------------


def test_an_installed_package_registers_ops_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "ep_ops_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "ep_ops_pkg-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ep-ops-pkg\nVersion: 1.0\n"
    )
    (site / "ep_ops_pkg-1.0.dist-info" / "entry_points.txt").write_text("[netspec.ops]\ncbam = ep_ops_cbam\n")
    (site / "ep_ops_cbam.py").write_text(CBAM)
    monkeypatch.syspath_prepend(str(site))
    plugins._entry_points_loaded = False
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.replace("plugins: [cbam_ops.py]\n", ""))
    a = netspec.analyze(spec)
    assert a.layer("att").op == "cbam"
    assert "import ep_ops_cbam as plugin_ep_ops_cbam" in torch_backend.generate_source(a)
    model = netspec.compile(a)
    assert model(torch.randn(1, 3, 12, 12)).shape == (1, 3)


# --- every way a plugin can be wrong: one located line -----------------------------------


def refused(tmp_path: Path, plugin: str, spec_name: str = "bad.py") -> netspec.SpecError:
    write(tmp_path, {spec_name: plugin, "s.yaml": f"plugins: [{spec_name}]\ninputs: {{x: [4]}}\nlayers: [relu]\n"})
    with pytest.raises(netspec.SpecError) as e:
        netspec.load(tmp_path / "s.yaml")
    assert "\n" not in e.value.message
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)  # no chain
    return e.value


OP = '''
from netspec.ops import Op, register_op


@register_op("{name}")
class Mine(Op):
    """::

    layers: [{{op: {name}}}]
    """
'''


def test_a_syntax_error_is_located_at_its_line(tmp_path: Path) -> None:
    e = refused(tmp_path, "x = 1\ndef broken(:\n")
    assert e.message.startswith("plugin bad.py cannot be imported: ")
    assert e.location is not None and (e.location.path, e.location.line) == (str((tmp_path / "bad.py").resolve()), 2)


def test_an_exception_at_import_is_located_at_the_line_that_raised_it(tmp_path: Path) -> None:
    e = refused(tmp_path, "import os\n\nvalue = undefined_name + 1\n")
    assert e.message == "plugin bad.py cannot be imported: NameError: name 'undefined_name' is not defined"
    assert e.location is not None and e.location.line == 3


def test_a_plugin_without_an_op_is_refused(tmp_path: Path) -> None:
    e = refused(tmp_path, "x = 1\n")
    assert e.message == "plugin bad.py defines no op"


def test_a_plugin_never_shadows_a_builtin_op(tmp_path: Path) -> None:
    relu = REGISTRY["relu"]
    e = refused(tmp_path, OP.format(name="relu"))
    assert e.message == "plugin bad.py registers op 'relu', which is a built-in op"
    assert e.location is not None and e.location.line == 5  # the decorated class
    assert REGISTRY["relu"] is relu


def test_a_name_another_plugin_registered_is_refused_and_nothing_half_registered_stays(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"first.py": OP.format(name="mine"), "a.yaml": "plugins: [first.py]\ninputs: {x: [4]}\nlayers: [mine]\n"},
    )
    netspec.load(tmp_path / "a.yaml")
    two = OP.format(name="other") + OP.format(name="mine").replace("class Mine", "class Again")
    e = refused(tmp_path, two, "second.py")
    assert e.message == "plugin second.py registers op 'mine', which is plugin first.py"
    assert "other" not in REGISTRY  # the failed file's other op went with it


def test_a_missing_plugin_file_is_located_at_the_spec(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("inputs: {x: [4]}\nplugins: [ops.py, nowhere.py]\nlayers: [relu]\n")
    (tmp_path / "ops.py").write_text(OP.format(name="fine"))
    with pytest.raises(netspec.SpecError) as e:
        netspec.load(tmp_path / "s.yaml")
    assert e.value.message.startswith("plugin nowhere.py: no such file")
    assert e.value.location is not None and (e.value.location.line, e.value.location.col) == (2, 19)


def test_the_cli_prints_a_broken_plugin_as_one_line_and_exits_2(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "bad.py": "raise RuntimeError('no GPU here')\n",
            "s.yaml": "plugins: [bad.py]\ninputs: {x: [4]}\nlayers: [relu]\n",
        },
    )
    out = subprocess.run(
        [sys.executable, "-m", "netspec", "check", "s.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip().splitlines()[0]
        == f"{(tmp_path / 'bad.py').resolve()}:1:1: error: plugin bad.py cannot be imported: RuntimeError: no GPU here"
    )
    assert "Traceback" not in out.stderr


def test_a_plugin_op_without_a_torch_lowering_is_refused_by_the_torch_backend(tmp_path: Path) -> None:
    shaped = OP.format(name="identity") + "\n    def shape(self, a, ins):\n        return ins[0]\n"
    spec = "plugins: [ops.py]\ninputs: {x: [4]}\nlayers:\n  - {op: identity, name: s}\n"
    write(tmp_path, {"ops.py": shaped, "s.yaml": spec})
    with pytest.raises(netspec.SpecError) as e:
        torch_backend.generate_source(netspec.analyze(tmp_path / "s.yaml"))
    assert e.value.message == "layer 's': op 'identity' of plugin ops.py has no torch lowering"
    assert e.value.location is not None and e.value.location.line == 4


def test_a_lowering_for_an_op_the_plugin_does_not_register_is_refused(tmp_path: Path) -> None:
    stray = (
        OP.format(name="mine")
        + '\n\nfrom netspec.plugins import lowering\n\n\n@lowering("onnx", "relu")\ndef _relu(c):\n    pass\n'
    )
    e = refused(tmp_path, stray)
    assert e.message == "plugin bad.py gives op 'relu' a lowering in onnx but does not register it"
    assert "mine" not in REGISTRY


def test_netspec_train_trains_a_plugin_spec_and_resumes_it(tmp_path: Path) -> None:
    """The run keeps a copy of the spec; its plugins are named relative to the
    original, which resume reads them from."""
    np = pytest.importorskip("numpy")
    spec = cbam_spec(tmp_path)
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.integers(0, 255, (60, 3, 12, 12)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    options = {"epochs": 1, "batch_size": 8, "augment": [], "quiet": True, "out": tmp_path / "runs"}
    run = netspec.train(spec, str(tmp_path / "d.npz"), **options)
    assert any(k.startswith("att.") for k in run.module.state_dict())  # the plugin's parameters trained
    again = netspec.train(resume=run.directory, quiet=True)  # finished: loads it, trains nothing more
    assert again.history == run.history
