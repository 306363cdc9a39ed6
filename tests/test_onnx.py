"""The ONNX backend against ONNX's checker and shape inference, and against PyTorch
through onnxruntime.

Registry-driven: every registered op (aliases included) needs a lowering, and every
op's docstring example and every spec in ``specs/`` is exported with the weights of
the compiled PyTorch model, checked (``full_check``), shape-inferred by ONNX (which
must agree with netspec on every layer's output) and run by onnxruntime, whose
outputs must match the PyTorch module's in eval mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, small_zoo
from conftest import analyze_yaml as spec
from test_ops import example

import netspec
from netspec.ops import REGISTRY, op_names

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
backend = pytest.importorskip("netspec.backends.onnx")

ZOO = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))
RTOL = 1e-4  # max |onnxruntime - torch| / max |torch|, per output


def check_shapes(a: netspec.Analysis, model: Any) -> None:
    """ONNX's own shape inference (from the inputs alone) agrees with netspec's on the
    output of every layer."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]  # our annotations out: ONNX infers everything itself
    del bare.graph.output[:]
    inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True, data_prop=True)
    found: dict[str, list[Any]] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = v.type.tensor_type.shape.dim
        found[v.name] = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    n = batch.dim_param or batch.dim_value
    for info in a.layers:
        assert info.name in found, f"ONNX inferred no shape for '{info.name}'"
        assert found[info.name] == [n, *info.output_shape], info.name


def run_ort(data: bytes, a: netspec.Analysis, inputs: list[Any]) -> list[Any]:
    options = ort.SessionOptions()
    # the model as written, not onnxruntime's rewrite of it (and 2x faster to load)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    feed = {name: x.numpy() for name, x in zip(a.graph.inputs, inputs)}
    return list(session.run(list(a.outputs), feed))


def check_against_torch(a: netspec.Analysis, torch_model: Any, data: bytes, batches: tuple[int, ...]) -> None:
    torch_model.eval()
    for batch in batches:
        torch.manual_seed(batch)
        inputs = [torch.randn(batch, *a.inputs[n]) for n in a.graph.inputs]
        with torch.no_grad():
            ys = torch_model(*inputs)
        ys = ys if isinstance(ys, tuple) else (ys,)
        for name, y, got in zip(a.outputs, ys, run_ort(data, a, inputs)):
            ref = y.numpy()
            assert got.shape == ref.shape, name
            err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))
            assert err <= RTOL, f"{name}: relative error {err:.2e} at batch {batch}"


def export_checked(a: netspec.Analysis, torch_model: Any, **options: Any) -> bytes:
    """The model with the torch model's weights, checked (full check), serialised once
    (for the checker and onnxruntime: serialising VGG's 500 MB takes a second). Shape
    inference runs on the structure-only export: the same nodes, without the tensors."""
    data: bytes = backend.export(a, weights=torch_model, **options).SerializeToString()
    onnx.checker.check_model(data, full_check=True)
    check_shapes(a, backend.export(a, structure_only=True, **options))
    return data


# --- coverage -----------------------------------------------------------------------


def test_every_registered_op_has_a_lowering() -> None:
    assert backend.missing_lowerings() == [], "ops without an onnx lowering"
    assert set(backend.LOWERINGS) == set(op_names())  # canonical names only: nodes never carry an alias


def test_an_op_without_a_lowering_is_a_located_error(monkeypatch: pytest.MonkeyPatch) -> None:
    a = spec("""
        inputs: {x: [4]}
        layers: [{op: linear, name: fc, out: 2}]
    """)
    monkeypatch.delitem(backend.LOWERINGS, "linear")
    with pytest.raises(netspec.SpecError, match="the onnx backend has no lowering for op 'linear'") as e:
        backend.export(a, structure_only=True)
    assert e.value.location is not None and e.value.location.line == 3


# --- every op's docstring example, every zoo spec ----------------------------------


@pytest.mark.parametrize("name", [*op_names(), "swish"])
def test_op_example(name: str) -> None:
    text, _ = example(REGISTRY[name])
    if name != REGISTRY[name].name:  # an alias: the canonical example, spelt with the alias
        text = text.replace(f"op: {REGISTRY[name].name}", f"op: {name}")
    a = netspec.analyze_text(text, path=f"<{name} example>")
    torch.manual_seed(0)
    torch_model = netspec.compile(a)  # the default (torchvision) scheme
    data = export_checked(a, torch_model, dynamic_batch=True)
    check_against_torch(a, torch_model, data, (1, 3))


@pytest.mark.parametrize("name", ZOO)
def test_zoo(name: str) -> None:
    a = small_zoo(name)
    torch.manual_seed(0)
    torch_model = netspec.compile(a)
    data = export_checked(a, torch_model, dynamic_batch=True)
    check_against_torch(a, torch_model, data, (3,))


OPS_VARIANTS = """
    inputs: {x: [6, 9, 9], v: [6, 5]}
    layers:
      - {op: conv2d, name: same, out: 6, kernel: 4, padding: same, dilation: 2, bias: false, inputs: [x]}
      - {op: conv2d, name: dw, groups: depthwise, kernel: 3, padding: [1, 0]}
      - {op: batchnorm, name: bn_plain, affine: false, track_running_stats: false}
      - {op: avgpool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false}
      - {op: maxpool2d, name: mp, kernel: 2, stride: 1, dilation: 2, ceil_mode: true}
      - {op: adaptive_avgpool2d, name: ada, size: [3, 2]}
      - {op: lrn, size: 3, inputs: [v]}
      - {op: batchnorm, name: bn_seq}
      - {op: linear, name: seq_fc, out: 4}
      - {op: softmax, dim: -1}
      - {op: flatten, name: fl, start_dim: 1, end_dim: 2, inputs: [ada]}
      - {op: gelu, approximate: tanh}
      - {op: multiply, name: m3, inputs: [fl, fl, fl]}
      - {op: add, name: a3, inputs: [m3, m3, fl]}
    outputs: [a3, softmax_1]
"""


@pytest.mark.parametrize("opset", [backend.MIN_OPSET, backend.DEFAULT_OPSET, 20])
def test_attribute_variants_and_opsets(opset: int) -> None:
    a = spec(OPS_VARIANTS)
    torch.manual_seed(0)
    torch_model = netspec.compile(a, init="pytorch")
    data = export_checked(a, torch_model, dynamic_batch=True, opset=opset)
    assert onnx.load_from_string(data).opset_import[0].version == opset
    check_against_torch(a, torch_model, data, (1, 3))


@pytest.mark.parametrize(
    "layer,shape",
    [
        # ONNX's Flatten is always 2-D ([6, 64] where PyTorch gives [2, 3, 64])
        ("{op: flatten, start_dim: 2}", [3, 8, 8]),
        ("{op: flatten, start_dim: 2, end_dim: 3}", [3, 4, 4, 2]),
        # ceil mode, where PyTorch drops a last window that would start in the padding
        ("{op: maxpool2d, kernel: 2, stride: 2, padding: 1, ceil_mode: true}", [2, 5, 5]),
        ("{op: avgpool2d, kernel: 2, stride: 2, padding: 1, ceil_mode: true}", [2, 5, 5]),
        ("{op: avgpool2d, kernel: 3, stride: 3, padding: 1, ceil_mode: true, count_include_pad: false}", [2, 5, 4]),
        # ceil-mode windows overhanging the padded input: PyTorch counts the declared
        # padding only; a dilated overhang longer than the kernel
        ("{op: avgpool2d, kernel: 4, padding: 1, ceil_mode: true}", [2, 1, 3]),
        ("{op: avgpool2d, kernel: 3, stride: 2, ceil_mode: true}", [2, 6, 6]),
        ("{op: maxpool2d, kernel: 2, stride: 3, dilation: 2, ceil_mode: true}", [2, 1, 1]),
        ("{op: maxpool2d, kernel: 4, stride: 3, padding: 2, dilation: 2, ceil_mode: true}", [2, 4, 7]),
    ],
)
def test_geometry_that_onnx_writes_differently(layer: str, shape: list[int]) -> None:
    a = spec(f"inputs: {{x: {shape}}}\nlayers: [{layer}]")
    torch_model = netspec.compile(a)
    check_against_torch(a, torch_model, export_checked(a, torch_model, dynamic_batch=True), (2,))


def test_static_batch() -> None:
    a = small_zoo("lenet5")
    model = backend.export(a, batch=2)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 1, 32, 32]
    check_shapes(a, model)


# --- names and weights ------------------------------------------------------------


def test_names_are_the_specs_and_the_state_dict_keys() -> None:
    a = small_zoo("resnet18")
    torch.manual_seed(0)
    torch_model = netspec.compile(a)
    model = backend.export(a, weights=torch_model)
    keys = [k for k in torch_model.state_dict() if not k.endswith("num_batches_tracked")]
    assert [t.name for t in model.graph.initializer] == keys
    assert "layer2.0.conv1.weight" in keys
    node_names = {n.name for n in model.graph.node}
    assert {info.name for info in a.layers if info.op != "input"} <= node_names


def test_seeded_weights_are_the_pytorch_backends() -> None:
    a = small_zoo("lenet5")
    model = backend.export(a, seed=3)
    torch.manual_seed(3)
    state = netspec.compile(a).state_dict()
    for t in model.graph.initializer:
        assert np.array_equal(onnx.numpy_helper.to_array(t), state[t.name].numpy()), t.name
    other = backend.export(a, seed=4)
    assert other.graph.initializer[0].raw_data != model.graph.initializer[0].raw_data


def test_weights_from_a_pt_file_and_a_numpy_mapping(tmp_path: Path) -> None:
    a = small_zoo("lenet5")
    torch.manual_seed(0)
    torch_model = netspec.compile(a)
    torch.save(torch_model.state_dict(), tmp_path / "w.pt")
    from_file = backend.export(a, weights=tmp_path / "w.pt")
    from_numpy = backend.export(a, weights={k: v.numpy() for k, v in torch_model.state_dict().items()})
    assert from_file.SerializeToString() == from_numpy.SerializeToString()
    check_against_torch(a, torch_model, from_file.SerializeToString(), (1,))


def test_weights_that_do_not_fit_name_the_key_and_both_shapes(tmp_path: Path) -> None:
    torch.save(netspec.compile("lenet5", classes=7).state_dict(), tmp_path / "w.pt")
    with pytest.raises(netspec.SpecError, match=r"model key 'fc3.weight' has shape \[10, 84\] but checkpoint key "
                       r"'fc3.weight' \(matched by name\) has shape \[7, 84\]") as e:  # fmt: skip
        backend.export("lenet5", weights=tmp_path / "w.pt", classes=10)
    assert e.value.location is not None and e.value.location.path.endswith("w.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(netspec.SpecError, match="cannot read the weights") as e:
        backend.export("lenet5", weights=tmp_path / "bad.safetensors")
    assert e.value.location is not None and e.value.location.path.endswith("bad.safetensors")


def test_safetensors_weights(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    torch.manual_seed(3)
    model = netspec.compile("lenet5").eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    safetensors.save_file(state, str(tmp_path / "w.safetensors"))
    from_file = backend.export("lenet5", weights=tmp_path / "w.safetensors")
    from_module = backend.export("lenet5", weights=model)
    assert from_file.SerializeToString() == from_module.SerializeToString()


def test_structure_only_export_needs_no_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch fails
        import netspec, onnx
        netspec.export_onnx("resnet18", {str(tmp_path / "r.onnx")!r}, structure_only=True, dynamic_batch=True)
        onnx.checker.check_model({str(tmp_path / "r.onnx")!r}, full_check=True)
        m = onnx.load({str(tmp_path / "r.onnx")!r})
        print(len(m.graph.initializer), len(m.graph.input))
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.onnx").stat().st_size < 200_000  # no tensors
    assert int(r.stdout.split()[1]) > 1  # the parameters are graph inputs


# --- writing and the CLI -----------------------------------------------------------


def test_the_written_file_is_the_model(tmp_path: Path) -> None:
    # the file streams the tensors around protobuf (see backends.onnx._serialize)
    a = small_zoo("resnet18")
    torch.manual_seed(0)
    torch_model = netspec.compile(a)
    assert backend.export(a, tmp_path / "r.onnx", weights=torch_model, dynamic_batch=True) is None
    assert onnx.load(tmp_path / "r.onnx") == backend.export(a, weights=torch_model, dynamic_batch=True)
    onnx.checker.check_model(tmp_path / "r.onnx", full_check=True)


def test_cli_writes_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netspec.cli import main

    out = tmp_path / "lenet.onnx"
    assert main(["compile", "lenet5", "-o", str(out), "--dynamic-batch", "--opset", "18", "--seed", "1"]) == 0
    model = onnx.load(out)
    assert model.opset_import[0].version == 18
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert os.listdir(tmp_path) == ["lenet.onnx"]  # no temporary file left
    torch.manual_seed(1)
    state = netspec.compile("lenet5").state_dict()
    assert np.array_equal(onnx.numpy_helper.to_array(model.graph.initializer[0]), state["conv1.weight"].numpy())


def cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from netspec.cli import main

    assert main(["compile", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 2 and "Traceback" not in err, err  # the error line (and a hint)
    return err


def test_cli_errors_are_one_located_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "m.onnx"
    assert cli_error(capsys, "lenet5", "-o", str(missing)).startswith(f"{missing}: error: cannot write the model")
    torch.save(netspec.compile("lenet5", classes=7).state_dict(), tmp_path / "w.pt")
    err = cli_error(capsys, "lenet5", "-o", str(tmp_path / "m.onnx"), "--weights", str(tmp_path / "w.pt"))
    assert err.startswith(f"{tmp_path / 'w.pt'}: error: weights do not fit: model key 'fc3.weight' has shape [10, 84]")
    assert "[7, 84]" in err
    assert "opset 3 is not supported" in cli_error(capsys, "lenet5", "-o", str(tmp_path / "m.onnx"), "--opset", "3")
    assert "--dynamic-batch applies to ONNX output only" in cli_error(capsys, "lenet5", "--dynamic-batch")
    assert "--device does not apply" in cli_error(capsys, "lenet5", "-o", str(tmp_path / "m.onnx"), "--device", "cpu")
    assert sorted(os.listdir(tmp_path)) == ["w.pt"]  # nothing partial left behind
    with pytest.raises(netspec.SpecError, match=r"use \.onnx"):
        backend.export("lenet5", tmp_path / "m.onnyx", structure_only=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_a_read_only_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        err = cli_error(capsys, "lenet5", "-o", str(ro / "m.onnx"), "--no-weights")
        assert "is not writable" in err
    finally:
        ro.chmod(0o755)


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")

    def fail(src: str, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backend.os, "replace", fail)
    with pytest.raises(netspec.SpecError, match="cannot write the model: No space left on device"):
        backend.export("lenet5", out, structure_only=True)
    assert os.listdir(tmp_path) == ["m.onnx"] and out.read_bytes() == b"previous"
