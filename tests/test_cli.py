"""The command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BLOCK_HEAVY = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "onnx", "onnxruntime", "graphviz", "networkx", "numpy"}:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def run(*args: str, cwd: Path = REPO, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = prelude + "\nimport sys\nfrom netspec.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_summary_runs_with_torch_onnx_graphviz_unimportable() -> None:
    probe = "\nimport atexit\natexit.register(lambda: print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'graphviz', 'networkx'})))"
    r = run("summary", "specs/vgg16.yaml", prelude=BLOCK_HEAVY + probe)
    assert r.returncode == 0, r.stderr
    assert "138,357,544" in r.stdout
    assert "HEAVY []" in r.stdout


def test_summary_skips_pydantic_plugin_discovery() -> None:
    # importlib.metadata (pydantic's plugin scan) costs ~60 ms of the 0.5 s budget
    probe = "\nimport atexit\natexit.register(lambda: print('METADATA', 'importlib.metadata' in sys.modules))"
    r = run("summary", "specs/vgg16.yaml", prelude=probe)
    assert r.returncode == 0, r.stderr
    assert "METADATA False" in r.stdout


def test_summary_of_a_builtin_spec_from_any_directory(tmp_path: Path) -> None:
    r = run("summary", "vgg16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "features.28" in r.stdout  # conv5_3
    assert "15,470,264,320" in r.stdout


def test_a_local_file_wins_over_a_builtin_name(tmp_path: Path) -> None:
    (tmp_path / "vgg16.yaml").write_text("inputs: {x: [4]}\nlayers: [{op: linear, out: 2}]\n")
    r = run("summary", "vgg16.yaml", "--format", "json", cwd=tmp_path)
    assert json.loads(r.stdout)["totals"]["params"] == 10


def test_set_overrides_a_variable() -> None:
    r = run("summary", "lenet5", "--set", "classes=100", "--format", "json")
    data = json.loads(r.stdout)
    assert data["layers"][-1]["output_shape"] == [100]
    assert data["totals"]["params"] == 61_706 + 90 * 85  # fc3 grows from 10 to 100 outputs


def test_json_schema() -> None:
    data = json.loads(run("summary", "vgg16_bn", "--format", "json").stdout)
    assert set(data) == {"name", "inputs", "outputs", "variables", "layers", "totals"}
    assert data["variables"] == {"classes": 1000, "resolution": 224, "dropout": 0.5}
    assert data["inputs"] == {"image": [3, 224, 224]}
    assert set(data["layers"][1]) == {
        *("name", "label", "op", "inputs", "output_shape", "params", "macs", "flops", "line"),
        *("receptive_field", "effective_stride", "count", "attrs", "activation_bytes"),
    }
    conv = next(x for x in data["layers"] if x["name"] == "features.0")
    spec_lines = (REPO / "specs" / "vgg16_bn.yaml").read_text().splitlines()
    conv1_1 = 1 + next(i for i, line in enumerate(spec_lines) if "label: conv1_1," in line)  # the line it is on
    assert conv == {
        "name": "features.0",
        "label": "conv1_1",
        "op": "conv2d",
        "inputs": ["image"],
        "output_shape": [64, 224, 224],
        "attrs": "k3 p1",
        "params": 1_792,
        "macs": 86_704_128,
        "flops": 2 * 86_704_128 + 64 * 224 * 224,
        "activation_bytes": 4 * 64 * 224 * 224,
        "receptive_field": [3, 3],
        "effective_stride": [1, 1],
        "count": 1,
        "line": conv1_1,
    }
    t = data["totals"]
    assert t["params"] == 138_365_992 and t["trainable_params"] == t["params"]
    assert t["buffers"] == 2 * 4_224 + 13
    assert t["param_bytes"] == 4 * (t["params"] + t["buffers"])
    assert t["activation_bytes"] == 4 * sum(_numel(x["output_shape"]) for x in data["layers"] if x["op"] != "input")
    assert 0 < t["peak_activation_bytes"] < t["activation_bytes"]


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_csv_and_markdown_agree_with_json() -> None:
    data = json.loads(run("summary", "alexnet", "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(run("summary", "alexnet", "--format", "csv").stdout)))
    assert [r["name"] for r in rows] == [x["name"] for x in data["layers"]]
    assert sum(int(r["macs"]) for r in rows) == data["totals"]["macs"]
    md = run("summary", "alexnet", "--format", "markdown").stdout
    assert "| features.0 (conv1) | conv2d | [N, 64, 55, 55] | 11 | 4 | 23,296 |" in md
    assert "| MACs | 714,188,480 (714.19 M) |" in md


def test_table_matches_the_golden_file() -> None:
    r = run("summary", "specs/lenet5.yaml")
    assert r.stdout == (REPO / "tests" / "golden" / "lenet5.txt").read_text()


def test_collapsed_table_matches_the_golden_file() -> None:
    r = run("summary", "specs/resnet18.yaml", "--depth", "2")
    assert r.stdout == (REPO / "tests" / "golden" / "resnet18_depth2.txt").read_text()


def test_json_matches_the_golden_file() -> None:
    r = run("summary", "alexnet_paper", "--format", "json")
    assert json.loads(r.stdout) == json.loads((REPO / "tests" / "golden" / "alexnet_paper.json").read_text())


def test_check_reports_each_spec(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: {x: [3, 8, 8]}\nlayers:\n  - {op: conv2d, out: 4, kernel: 3, strde: 2}\n")
    r = run("check", "specs/lenet5.yaml", str(bad), "specs/alexnet.yaml")
    assert r.returncode == 2
    assert "lenet5.yaml: ok (13 layers, 61,706 params, 416,520 MACs)" in r.stdout
    assert "alexnet.yaml: ok" in r.stdout
    assert r.stderr.splitlines()[0] == f"{bad}:3:37: error: layer 'conv2d_1' (conv2d): unknown attribute 'strde'"
    assert "did you mean 'stride'?" in r.stderr
    assert run("check", "specs/lenet5.yaml", "specs/vgg11.yaml").returncode == 0


def test_zoo_lists_builtin_specs_with_their_figures() -> None:
    r = run("zoo")
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("vgg16 "))
    assert "3x224x224" in line and "138,357,544" in line and "15,470,264,320" in line
    data = json.loads(run("zoo", "--format", "json").stdout)
    assert {
        "name": "lenet5",
        "input": "1x32x32",
        "params": 61_706,
        "macs": 416_520,
        "description": "LeNet-5 on 32x32 grayscale digits",
    } in data
