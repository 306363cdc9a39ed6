"""Receptive field and effective stride columns, and collapsed (--depth) summaries."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

import netspec

HEAD = "inputs: {x: [3, 64, 64]}\n"


def test_published_receptive_fields() -> None:
    # Widely quoted figures: VGG-16's conv5_3 sees 196 pixels and pool5 212;
    # ResNet-18's last block 435 with an effective stride of 32.
    vgg = netspec.analyze("vgg16")
    assert vgg.layer("features.28").receptive_field == (196, 196)  # conv5_3
    assert vgg.layer("features.30").receptive_field == (212, 212)  # pool5
    assert vgg.layer("features.30").effective_stride == (32, 32)
    resnet = netspec.analyze("resnet18")
    assert resnet.layer("layer4.1.relu2").receptive_field == (435, 435)
    assert resnet.layer("layer4.1.relu2").effective_stride == (32, 32)


def test_receptive_field_arithmetic() -> None:
    a = netspec.analyze_text(
        HEAD
        + "layers:\n"
        + "  - {op: conv2d, name: c1, out: 4, kernel: 5}\n"  # 5, stride 1
        + "  - {op: maxpool2d, name: p1, kernel: 2}\n"  # 5 + 1*1 = 6, stride 2
        + "  - {op: conv2d, name: c2, out: 4, kernel: 3, dilation: 2}\n"  # 6 + 2*2*2 = 14
        + "  - {op: conv2d, name: c3, out: 4, kernel: [1, 3], stride: [1, 2]}\n"  # (14, 14 + 2*2) = (14, 18)
        + "  - relu\n"
    )
    got = {x.name: (x.receptive_field, x.effective_stride) for x in a.layers}
    assert got["c1"] == ((5, 5), (1, 1))
    assert got["p1"] == ((6, 6), (2, 2))
    assert got["c2"] == ((14, 14), (2, 2))
    assert got["c3"] == ((14, 18), (2, 4))
    assert got["relu_1"] == got["c3"]


def test_merges_take_the_widest_path() -> None:
    a = netspec.analyze_text(
        HEAD
        + "layers:\n"
        + "  - {op: conv2d, name: small, inputs: x, out: 4, kernel: 1}\n"
        + "  - {op: conv2d, name: big, inputs: x, out: 4, kernel: 7, padding: 3}\n"
        + "  - {op: add, name: sum, inputs: [small, big]}\n"
        + "  - {op: conv2d, name: after, out: 4, kernel: 3, padding: 1}\n"
    )
    assert a.layer("sum").receptive_field == (7, 7)
    assert a.layer("after").receptive_field == (9, 9)


def test_global_pooling_sees_everything() -> None:
    a = netspec.analyze_text(HEAD + "layers:\n  - {op: conv2d, out: 4, kernel: 3, stride: 2}\n  - global_avgpool\n")
    # the conv's output is 31x31 at stride 2: the pool adds (31 - 1) * 2 pixels, which
    # covers all but the last input row and column (a stride-2 conv skips them)
    assert a.layer("global_avgpool_1").receptive_field == (3 + 30 * 2, 3 + 30 * 2)


def test_depth_collapses_blocks_and_keeps_the_totals() -> None:
    a = netspec.analyze("resnet18")
    stages = {x.name: x for x in a.rows(1)}
    assert [stages[f"layer{i}"].instances for i in range(1, 5)] == [2, 2, 2, 2]
    assert stages["layer2"].op == "basic"
    assert stages["layer2"].output_shape == (128, 28, 28)
    assert stages["layer2"].params == sum(x.params for x in a.layers if x.name.startswith("layer2."))
    for depth in (1, 2, 3, 4):
        rows = a.rows(depth)
        assert sum(x.params for x in rows) == a.totals.params
        assert sum(x.macs for x in rows) == a.totals.macs
    instances = [x.name for x in a.rows(2) if x.name.startswith("layer3")]
    assert instances == ["layer3.0", "layer3.1"]
    assert a.rows(2)[0].name == "image"
    # the deepest names are four parts long (layer2.0.downsample.0): nothing deeper
    assert [x.name for x in a.rows(4)] == [x.name for x in a.layers]


def test_depth_collapses_plain_repeats() -> None:
    a = netspec.analyze_text(HEAD + "layers:\n  - {op: conv2d, name: c, out: 3, kernel: 3, padding: 1, repeat: 4}\n")
    (row,) = [x for x in a.rows(1) if x.name == "c"]
    assert (row.op, row.instances, row.params) == ("conv2d", 4, 4 * (3 * 3 * 9 + 3))


def test_cli_depth_option() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netspec", *args], capture_output=True, text=True, cwd=REPO)

    r = run("summary", "resnet18", "--depth", "1")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("layer3 "))
    assert "basic x2" in line and "[N, 256, 14, 14]" in line
    data = json.loads(run("summary", "resnet18", "-d", "2", "--format", "json").stdout)
    assert "layer1.0" in [x["name"] for x in data["layers"]]
    bad = run("summary", "resnet18", "--depth", "0")
    assert bad.returncode == 2 and "positive integer" in bad.stderr
