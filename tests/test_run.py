"""``netspec run``: a spec on an input file, its outputs printed; checked against the
lecture's worked example and against the compiled module run by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_errors import run_cli

import netspec

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

EDGES = """\
inputs: {image: [1, 6, 6]}
layers:
  - {op: conv2d, name: vertical_edges, weight: [[1, 0, -1], [1, 0, -1], [1, 0, -1]]}
"""
IMAGE = [
    [3, 0, 1, 2, 7, 4],
    [1, 5, 8, 9, 3, 1],
    [2, 7, 2, 5, 1, 3],
    [0, 1, 3, 1, 7, 8],
    [4, 2, 1, 6, 2, 8],
    [2, 4, 5, 2, 3, 9],
]


def grid(text: str) -> list[list[int]]:
    return [[int(v) for v in line.split()] for line in text.splitlines() if re.fullmatch(r"\s+[-\d ]+", line)]


def test_the_vertical_edge_example_of_the_lecture(tmp_path: Path) -> None:
    (tmp_path / "edges.yaml").write_text(EDGES)
    np.save(tmp_path / "image.npy", np.array(IMAGE, dtype=np.float32))  # [H, W] for a grey input
    r = run_cli("run", "edges.yaml", "--input", "image.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    kernel = torch.tensor([[1.0, 0, -1]] * 3)[None, None]
    expected = torch.nn.functional.conv2d(torch.tensor(IMAGE, dtype=torch.float32)[None, None], kernel)[0, 0]
    assert (
        grid(r.stdout)
        == expected.int().tolist()
        == [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]
    )


def test_a_classifier_prints_its_top_classes(tmp_path: Path) -> None:
    model = netspec.compile("lenet5").eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_cli("run", "lenet5", "-i", "x.npy", "--weights", "w.pt", "--top", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for n, block in enumerate(r.stdout.split("fc3 (sample ")[1:]):
        rows = [line.split() for line in block.splitlines()[2:5]]
        assert [int(row[1]) for row in rows] == logits[n].argsort(descending=True)[:3].tolist()
        probs = logits[n].softmax(0)
        assert [row[3] for row in rows] == [
            f"{100 * float(probs[k]):.2f}%" for k in logits[n].argsort(descending=True)[:3]
        ]


def test_an_image_is_read_as_the_spec_wants_it(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    pixels = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    image_module.fromarray(pixels).convert("RGB").save(tmp_path / "digit.png")
    model = netspec.compile("lenet5").eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    r = run_cli("run", "lenet5", "-i", "digit.png", "-w", "w.pt", "--top", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        best = int(model(torch.from_numpy(pixels / np.float32(255))[None, None]).argmax())
    assert r.stdout.splitlines()[2].split()[1] == str(best)
    image_module.fromarray(pixels).resize((40, 20)).save(tmp_path / "wide.png")
    r = run_cli("run", "lenet5", "-i", "wide.png", cwd=tmp_path)
    assert r.returncode == 0 and "note: wide.png is 40x20; resized to 32x32" in r.stderr


def test_inputs_that_do_not_fit_are_located_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "small.npy", np.zeros((1, 8, 8), dtype=np.float32))
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        "small.npy": "small.npy has shape [1, 8, 8]; the spec's input is [1, 32, 32] per sample",
        "missing.npy": "no such input file: missing.npy",
        "notes.txt": "cannot read notes.txt: expected a .npy array or an image",
    }
    for path, message in cases.items():
        r = run_cli("run", "lenet5", "-i", path, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        # a data file has no lines: its path is the location
        assert r.stderr.startswith(f"{path}: error: {message}"), r.stderr
