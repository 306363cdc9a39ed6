"""What the summary shows: its columns (``--columns``), the attributes in short, and
the memory figures for a batch and dtype (``--batch``, ``--dtype``), in a readable
unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import analyze_yaml
from test_errors import run_cli

import netspec
from netspec.summary import View, _bytes, _count, format_analysis, to_dict

NET = """
inputs: {x: [3, 32, 32]}
layers:
  - {op: conv2d, name: c1, out: 8, kernel: 3, stride: 2, padding: 1}
  - {op: conv2d, name: dw, kernel: [1, 7], padding: same, groups: depthwise, dilation: 2}
  - {op: maxpool2d, name: mp, kernel: 3, stride: 2, ceil_mode: true}
  - {op: flatten, name: flat}
  - {op: linear, name: fc, out: 10}
"""


def header_and_rows(text: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Layer "))
    head = [h.strip() for h in lines[at].split("  ") if h.strip()]
    rows = {}
    for line in lines[at + 2 :]:
        if not line:
            break
        rows[line.split()[0]] = line.split()
    return head, rows


def test_default_columns_are_shape_rf_params_and_macs() -> None:
    head, _ = header_and_rows(format_analysis(analyze_yaml(NET)))
    assert head == ["Layer", "Op", "Output shape", "RF", "Stride", "Params", "Params %", "MACs", "MACs %"]


def test_chosen_columns_in_their_order_with_attrs_flops_and_memory() -> None:
    a = analyze_yaml(NET)
    text = format_analysis(a, view=View(columns=("memory", "attrs", "flops")))
    head, rows = header_and_rows(text)
    assert head == ["Layer", "Op", "Attrs", "FLOPs", "Memory"]  # the order of COLUMNS, not of the list
    assert rows["c1"][2:5] == ["k3", "s2", "p1"]
    assert rows["dw"][2:6] == ["k1x7", "same", "d2", "dw"]
    assert rows["mp"][2:5] == ["k3", "s2", "ceil"]  # pooling's stride defaults to the kernel
    fc = a.layer("fc")
    assert rows["fc"][2:] == [f"{fc.flops:,}", "40", "B"]  # 10 floats
    assert "| Layer | Op | Attrs | FLOPs | Memory |" in format_analysis(
        a, "markdown", view=View(("attrs", "flops", "memory"))
    )


def test_memory_figures_follow_batch_and_dtype() -> None:
    a = netspec.analyze("resnet18")
    t = a.totals
    d = to_dict(a, view=View(batch=32, dtype="bfloat16"))["totals"]
    assert d["activation_bytes"] == t.activation_bytes * 32 // 2
    assert d["peak_activation_bytes"] == t.peak_activation_bytes * 16
    assert d["param_bytes"] == t.param_bytes // 2
    assert (d["batch"], d["dtype"]) == (32, "bfloat16")
    lines = format_analysis(a, view=View(batch=32, dtype="bfloat16")).splitlines()
    assert lines[-3] == "Parameter memory:   22.31 MiB (bfloat16, with buffers)"
    assert lines[-1].startswith("Peak activations:   98.00 MiB (inference, batch 32")  # not indented under a total


def test_units_and_small_counts_read_well() -> None:
    assert [_bytes(n) for n in (0, 1023, 1024, 241_040, 5 * 2**30)] == [
        "0 B",
        "1,023 B",
        "1.00 KiB",
        "235.39 KiB",
        "5.00 GiB",
    ]
    assert [_count(n) for n in (9, 999, 61_706)] == ["9", "999", "61,706 (61.71 K)"]
    small = format_analysis(analyze_yaml("inputs: {x: [3]}\nlayers: [{op: linear, out: 3}]"))
    assert "Params:             12\n" in small and "0.00 MiB" not in small


def test_bad_view_options_are_explained() -> None:
    with pytest.raises(netspec.SpecError, match="unknown column 'atrs'") as e:
        View(columns=("shape", "atrs"))
    assert e.value.hint == "did you mean 'attrs'?"
    with pytest.raises(netspec.SpecError, match="unknown dtype 'fp8'"):
        View(dtype="fp8")


def test_cli_columns_batch_and_dtype(tmp_path: Path) -> None:
    r = run_cli("summary", "lenet5", "--columns", "attrs,memory", "--batch", "8", "--dtype", "float16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    head, rows = header_and_rows(r.stdout)
    assert head == ["Layer", "Op", "Attrs", "Memory"]
    assert rows["conv1"][2:] == ["k5", "73.50", "KiB"]  # 6x28x28 at batch 8, 2 bytes each: 75,264 B
    bad = run_cli("summary", "lenet5", "-c", "shape,atrs", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'attrs'?" in bad.stderr
    data = json.loads(run_cli("summary", "lenet5", "-f", "json", "--batch", "2", cwd=tmp_path).stdout)
    assert data["layers"][1]["attrs"] == "k5" and data["layers"][1]["activation_bytes"] == 2 * 6 * 28 * 28 * 4
