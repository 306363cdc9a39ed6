"""The Graphviz backend: DOT structure, collapsing, files, and the render command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_ops import example

import netspec
from netspec.ops import REGISTRY, op_names

graphviz = pytest.importorskip("graphviz")
backend = pytest.importorskip("netspec.backends.graphviz")

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed (apt-get install graphviz)")

_ID = r'(?:"(?:[^"\\]|\\.)*"|[\w.]+)'


def _unquote(token: str) -> str:
    return token[1:-1] if token.startswith('"') else token


class Dot:
    """The parts of DOT source the tests look at: the cluster path of every node, the
    edges with their labels, and the node labels."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.cluster_of: dict[str, tuple[str, ...]] = {}
        self.labels: dict[str, str] = {}
        self.cluster_labels: dict[str, str] = {}
        self.edges: dict[tuple[str, str], set[str]] = {}
        stack: list[str] = []
        for raw in source.splitlines():
            line = raw.strip()
            if m := re.match(rf"subgraph ({_ID}) {{$", line):
                stack.append(_unquote(m.group(1)))
            elif line == "}":
                if stack:
                    stack.pop()
            elif m := re.match(rf"({_ID}) -> ({_ID}) \[label=({_ID})\]$", line):
                edge = (_unquote(m.group(1)), _unquote(m.group(2)))
                self.edges.setdefault(edge, set()).add(_unquote(m.group(3)))
            elif m := re.match(rf"({_ID}) \[label=({_ID})", line):
                name = _unquote(m.group(1))
                self.cluster_of[name] = tuple(stack)
                self.labels[name] = _unquote(m.group(2)).replace("\\n", "\n")
            elif (m := re.match(rf"(?:.* )?label=({_ID})", line)) and stack and stack[-1] not in self.cluster_labels:
                self.cluster_labels[stack[-1]] = _unquote(m.group(1))


def dot_of(spec: str, **kw: object) -> Dot:
    return Dot(backend.to_digraph(spec, **kw).source)


# --- labels for every op ------------------------------------------------------------


def test_every_op_has_a_label() -> None:
    assert backend.missing_labels() == [], "ops without a label in backends/graphviz.py LABELS"
    assert set(backend.LABELS) == set(op_names())  # canonical names only: nodes never carry an alias


@pytest.mark.parametrize("name", op_names())
def test_every_op_draws(name: str) -> None:
    text, _ = example(REGISTRY[name])
    a = netspec.analyze_text(text, path=f"<{name} example>")
    d = Dot(backend.to_digraph(a).source)
    assert {x.name for x in a.layers} == set(d.labels)


@pytest.mark.parametrize(
    ("spec", "layer", "label"),
    [
        ("resnet18", "conv1", "conv 7x7/2, 64"),
        ("resnet18", "maxpool", "maxpool 3x3/2"),
        ("resnet18", "fc", "linear 1000"),
        ("resnet18", "layer2.0.add", "add"),
        ("googlenet", "inception3a.concat", "concat"),
        ("mobilenet_v1", "blocks.0.0.conv_dw", "conv 3x3, 32, dw"),
        ("mobilenet_v1", "blocks.1.0.conv_dw", "conv 3x3/2, 64, dw"),
        ("lenet5", "image", "input 1x32x32"),
    ],
)
def test_op_labels(spec: str, layer: str, label: str) -> None:
    d = dot_of(spec)
    lines = d.labels[layer].split("\n")
    assert lines[:2] == [layer, label] or lines == [layer] == [label]  # "relu", not "relu / relu"


# --- structure --------------------------------------------------------------------


def test_node_ids_are_the_layer_names_and_edges_carry_shapes() -> None:
    a = netspec.analyze("resnet18")
    d = Dot(backend.to_digraph(a).source)
    assert set(d.labels) == {x.name for x in a.layers}
    assert '"layer2.0.conv1" [label=' in d.source  # dotted names are quoted ids
    shapes = {x.name: "x".join(map(str, x.output_shape)) for x in a.layers}
    expected = {(ref, x.name) for x in a.layers for ref in x.inputs}
    assert set(d.edges) == expected
    for (src, _), labels in d.edges.items():
        assert labels == {shapes[src]}
    assert d.edges["layer2.0.conv1", "layer2.0.bn1"] == {"128x28x28"}


def test_blocks_are_nested_clusters() -> None:
    d = dot_of("resnet18")
    assert d.cluster_of["layer2.0.conv1"] == ("cluster_layer2", "cluster_layer2.0")
    assert d.cluster_of["conv1"] == ()
    assert d.cluster_labels["cluster_layer2"] == "layer2: basic x2"
    assert d.cluster_labels["cluster_layer2.0"] == "layer2.0: basic"


def test_residual_shortcut_is_an_edge_from_the_real_producer() -> None:
    d = dot_of("resnet18")
    assert ("maxpool", "layer1.0.add") in d.edges  # identity shortcut
    # projection shortcut: torchvision's downsample Sequential, conv (0) then batch norm (1)
    assert ("layer1.1.relu2", "layer2.0.downsample.0") in d.edges
    assert ("layer2.0.downsample.0", "layer2.0.downsample.1") in d.edges
    assert ("layer2.0.downsample.1", "layer2.0.add") in d.edges
    assert d.cluster_of["layer2.0.downsample.1"][-1] == "cluster_layer2.0.downsample"  # a block of its own


def test_inception_branches_fan_out_and_concat() -> None:
    d = dot_of("googlenet", depth=2)
    into = {src for src, dst in d.edges if dst == "inception3a.concat"}
    assert into == {f"inception3a.{b}" for b in ("branch1", "branch2", "branch3", "branch4")}
    out_of = {dst for src, dst in d.edges if src == "maxpool2"}
    assert out_of == into  # every branch reads the block input, branch4 (pool, then conv) too
    assert d.cluster_of["inception3a.branch2"] == ("cluster_inception3a",)
    assert "basic_conv x2" in d.labels["inception3a.branch2"]
    assert "pool_branch" in d.labels["inception3a.branch4"]
    deeper = dot_of("googlenet", depth=3)
    assert ("maxpool2", "inception3a.branch4.0") in deeper.edges  # the pool, torchvision's branch4.0
    assert ("inception3a.branch4.0", "inception3a.branch4.1") in deeper.edges
    assert ("inception3a.branch4.1", "inception3a.concat") in deeper.edges


def test_collapse_marks_repeats_and_sums_params_and_macs() -> None:
    a = netspec.analyze("resnet50")
    d = Dot(backend.to_digraph(a, depth=1).source)
    row = next(r for r in a.rows(1) if r.name == "layer3")
    assert d.labels["layer3"] == "\n".join(
        ["layer3", "bottleneck x6", f"{backend.compact(row.params)} params, {backend.compact(row.macs)} MACs"]
    )
    assert row.params == sum(x.params for x in a.layers if x.name.startswith("layer3."))
    assert set(d.labels) == {r.name for r in a.rows(1)}
    assert d.edges["layer2", "layer3"] == {"512x28x28"}
    assert all(c == () for c in d.cluster_of.values())  # nothing left to cluster at depth 1


def test_collapse_keeps_clusters_above_the_depth() -> None:
    d = dot_of("resnet18", depth=2)
    assert d.cluster_of["layer2.1"] == ("cluster_layer2",)
    assert "74k params, 231M MACs" in d.labels["layer1.0"]
    assert ("layer1.1", "layer2.0") in d.edges


def test_show_adds_params_macs_and_shapes() -> None:
    d = dot_of("lenet5", show="params,macs,shapes")
    a = netspec.analyze("lenet5")
    conv = next(x for x in a.layers if x.op == "conv2d")
    label = d.labels[conv.name].split("\n")
    assert label[2] == f"{backend.compact(conv.params)} params, {backend.compact(conv.macs)} MACs"
    assert label[3] == "x".join(map(str, conv.output_shape))
    with pytest.raises(netspec.SpecError, match="cannot show 'flops'"):
        backend.to_digraph("lenet5", show="flops")


def test_python_api_is_lazy_and_returns_a_digraph() -> None:
    g = netspec.to_digraph("lenet5", rankdir="LR")
    assert isinstance(g, graphviz.Digraph)
    assert "rankdir=LR" in g.source


def test_compact() -> None:
    assert [backend.compact(n) for n in (0, 999, 1_000, 74_000, 11_689_512, 1_814_073_856)] == [
        "0",
        "999",
        "1k",
        "74k",
        "11.7M",
        "1.81G",
    ]


# --- files --------------------------------------------------------------------------


def test_dot_source_needs_no_dot_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "dot_program", lambda: None)
    out = netspec.render("lenet5", tmp_path / "lenet.dot")
    assert out.read_text().startswith("digraph lenet5 {")
    assert os.listdir(tmp_path) == ["lenet.dot"]


@needs_dot
@pytest.mark.parametrize(("ext", "magic"), [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_image_files_are_written(tmp_path: Path, ext: str, magic: bytes) -> None:
    out = backend.render("resnet18", tmp_path / f"r.{ext}", depth=2)
    assert out.read_bytes().startswith(magic)
    assert os.listdir(tmp_path) == [f"r.{ext}"]  # no temporary file left


@needs_dot
def test_svg_contains_the_layer_names(tmp_path: Path) -> None:
    text = backend.render("googlenet", tmp_path / "g.svg", depth=2).read_text()
    assert "<title>inception3a.branch4</title>" in text
    assert "inception3a: inception" in text


def test_missing_dot_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "dot_program", lambda: None)
    with pytest.raises(netspec.SpecError) as e:
        backend.render("lenet5", tmp_path / "x.png")
    text = e.value.format()
    assert "\n" not in text
    assert "apt-get install graphviz" in text and "brew install graphviz" in text
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "g.dot"
    target.write_text("old")

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backend.os, "replace", fail)
    with pytest.raises(netspec.SpecError, match="No space left on device"):
        backend.render("lenet5", target)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["g.dot"]


def test_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # os.access is what the check asks; root passes it everywhere, so simulate the answer
    monkeypatch.setattr(backend.os, "access", lambda path, mode: False)
    with pytest.raises(netspec.SpecError, match="is not writable") as e:
        backend.render("lenet5", tmp_path / "x.dot")
    assert str(e.value.location) == str(tmp_path / "x.dot")


# --- the command line -------------------------------------------------------------


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys\nfrom netspec.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_cli_writes_dot(tmp_path: Path) -> None:
    r = run("render", "resnet18", "-o", str(tmp_path / "r.dot"), "--depth", "1", "--rankdir", "LR")
    assert r.returncode == 0, r.stderr
    source = (tmp_path / "r.dot").read_text()
    assert "rankdir=LR" in source and "basic x2" in source


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/x.svg", "directory '{tmp}/missing' does not exist"),
        ("x.jpg", "cannot tell what to draw from the extension '.jpg'"),
        ("x", "a name without an extension"),
    ],
)
def test_cli_bad_output_is_one_located_line(tmp_path: Path, name: str, message: str) -> None:
    out = tmp_path / name
    r = run("render", "lenet5", "-o", str(out))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"{out}: error: ")
    assert message.format(tmp=tmp_path) in r.stderr
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_cli_read_only_directory(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    r = run("render", "lenet5", "-o", str(folder / "x.dot"))
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"{folder / 'x.dot'}: error: cannot write the diagram: directory '{folder}' is not writable"
    )


def test_cli_without_dot_program(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing to find there
    r = run("render", "lenet5", "-o", str(tmp_path / "x.svg"), env=env)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "apt-get install graphviz" in r.stderr and "brew install graphviz" in r.stderr
    assert not (tmp_path / "x.svg").exists()
    r = run("render", "lenet5", "-o", str(tmp_path / "x.dot"), env=env)
    assert r.returncode == 0, r.stderr


# --- one block's body ----------------------------------------------------------------


def test_a_block_is_drawn_from_its_first_instance_with_its_parameters() -> None:
    a = netspec.analyze("resnet50")
    d = Dot(backend.to_digraph(a, block="bottleneck", show="shapes").source)
    body = {x.name for x in a.layers if x.name.startswith("layer1.0.")}
    assert set(d.labels) == body | {"maxpool"}  # what it takes from outside is drawn as its input
    assert d.labels["layer1.0.conv2"].split("\n")[:2] == ["conv2", "conv 3x3, 64"]  # named as in the block
    assert ("maxpool", "layer1.0.conv1") in d.edges and ("maxpool", "layer1.0.downsample.0") in d.edges
    assert all(dst in body for _, dst in d.edges)  # no edge leaves the block
    assert 'label="block bottleneck (as layer1.0)\\nmid=64, out=256, stride=1, project=True\\n' in d.source
    assert "shape=invhouse" in d.source.split('maxpool [label="maxpool')[1].split("\n")[0]


def test_a_block_with_depth_collapses_its_nested_blocks() -> None:
    a = netspec.analyze("googlenet")
    full = Dot(backend.to_digraph(a, block="inception").source)
    inner = {k for k, g in a.graph.groups.items() if k.startswith("inception3a.")}
    assert inner and any(c for c in full.cluster_of.values())  # the branches are clusters
    collapsed = Dot(backend.to_digraph(a, block="inception", depth=1).source)
    assert {n for n in collapsed.labels if n.startswith("inception3a.")} == {
        ".".join(n.split(".")[:2]) for n in full.labels if n.startswith("inception3a.")
    }


def test_an_unknown_block_is_explained() -> None:
    with pytest.raises(netspec.SpecError, match="no instance of a block 'botleneck'") as e:
        backend.to_digraph("resnet50", block="botleneck")
    assert e.value.hint == "did you mean 'bottleneck'?"


# --- a long network in columns ------------------------------------------------------


def test_wrap_lays_a_long_chain_out_in_columns() -> None:
    source = backend.to_digraph("vgg16", wrap=12).source
    across = [line for line in source.splitlines() if "constraint=false" in line]
    a = netspec.analyze("vgg16")
    assert len(across) == -(-len(a.layers) // 12) - 1 == 3  # one edge from each column to the next
    unwrapped = backend.to_digraph("vgg16").source
    assert "constraint" not in unwrapped
    assert source.replace(" constraint=false", "") == unwrapped  # the same drawing otherwise


def test_wrap_splits_a_block_only_when_it_is_taller_than_a_column() -> None:
    a = netspec.analyze("resnet34")  # stages of 3, 4, 6 and 3 basic blocks

    def columns_of(rows: list[netspec.LayerInfo], wrap: int, parts: int) -> dict[str, set[int]]:
        """The columns each name prefix of ``parts`` parts is drawn in."""
        by_prefix: dict[str, set[int]] = {}
        for name, column in backend._columns(rows, "", wrap).items():
            by_prefix.setdefault(".".join(name.split(".")[:parts]), set()).add(column)
        return by_prefix

    fits = columns_of(a.rows(2), 6, 1)
    assert all(len(c) == 1 for c in fits.values())  # layer3's 6 instances share one column
    assert fits["layer3"] != fits["layer2"]
    split = columns_of(a.rows(2), 4, 1)
    assert len(split["layer3"]) == 2  # 6 instances in columns of 4: layer3 alone is split
    assert all(len(c) == 1 for stage, c in split.items() if stage != "layer3")
    instances = columns_of(a.rows(2), 4, 2)
    assert [min(instances[f"layer3.{i}"]) for i in range(6)] == [min(split["layer3"])] * 4 + [max(split["layer3"])] * 2
    # at full depth a stage is taller than a column of 12, an instance (7 to 9 layers) is not
    deep = columns_of(a.rows(), 12, 2)
    assert all(len(c) == 1 for c in deep.values())
    assert len(columns_of(a.rows(), 12, 1)["layer3"]) > 1


@needs_dot
def test_a_wrapped_drawing_is_wider_and_shorter(tmp_path: Path) -> None:
    def size(path: Path) -> tuple[float, float]:
        m = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', path.read_text())
        assert m
        return float(m.group(1)), float(m.group(2))

    netspec.render("vgg16", tmp_path / "tall.svg")
    netspec.render("vgg16", tmp_path / "wrapped.svg", wrap=12)
    (tw, th), (ww, wh) = size(tmp_path / "tall.svg"), size(tmp_path / "wrapped.svg")
    assert wh < th / 2 and ww > tw * 2
