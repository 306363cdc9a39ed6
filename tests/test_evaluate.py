"""``netspec eval`` and ``netspec predict`` (``netspec.evaluate``, ``netspec.predict``):
a run's checkpoint or a plain state_dict, against the module computed by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import netspec
from netspec import SpecError
from netspec.cli import main

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

TINY = """\
name: tiny
params: {classes: 3}
inputs: {image: [1, 8, 8]}
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - flatten
  - {op: linear, out: $classes}
"""
OTHER = TINY.replace("name: tiny", "name: other").replace("out: 4,", "out: 5,")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line in this process (a subprocess would spend its time importing torch)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def bars(n: int, seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2] = 250
    return x, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-epoch run with EMA and a measured normalize, on data with class names."""
    root = tmp_path_factory.mktemp("eval")
    (root / "tiny.yaml").write_text(TINY)
    (root / "other.yaml").write_text(OTHER)
    x, y = bars(120)
    xt, yt = bars(30, seed=1)
    np.savez(root / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    r = netspec.train(
        root / "tiny.yaml",
        str(root / "d.npz"),
        out=root / "runs",
        epochs=2,
        batch_size=16,
        ema=0.9,
        augment=["crop", "normalize"],
        device="cpu",
        quiet=True,
    )
    for i in range(3):
        Image.fromarray(xt[i]).save(root / f"img{i}.png")
    return {"root": root, "run": r, "x": xt, "y": yt}


def by_hand(t: dict[str, Any], x: Any) -> Any:
    """Softmax of the saved model (the EMA) on images normalised as the run did."""
    last = torch.load(t["run"].directory / "last.pt", weights_only=True)
    model = netspec.compile(t["root"] / "tiny.yaml", weights=last["model"]).eval()
    (norm,) = last["eval_transform"]
    images = torch.from_numpy(x[:, None]).float() / 255
    with torch.no_grad():
        return model((images - norm["mean"][0]) / norm["std"][0]).softmax(1)


def test_eval_of_the_last_checkpoint_is_the_runs_test(trained: dict[str, Any]) -> None:
    t = trained
    e = netspec.evaluate(t["root"] / "tiny.yaml", t["run"].directory / "last.pt", str(t["root"] / "d.npz"))
    test = json.loads((t["run"].directory / "test.json").read_text())
    assert e.split == "test" and e.metrics.images == 30
    assert e.confusion == test["confusion"] and e.top1 == test["test_top1"]
    assert e.loss == pytest.approx(test["test_loss"], rel=1e-6)
    p = by_hand(t, t["x"])
    y = torch.from_numpy(t["y"])
    assert e.loss == pytest.approx(torch.nn.functional.nll_loss(p.log(), y).item(), rel=1e-5)
    assert e.top1 == pytest.approx((p.argmax(1) == y).float().mean().item())


def test_eval_on_digits_draws_the_runs_test_split(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    r = netspec.train(spec, out=tmp_path, epochs=1, seed=3, classes=10, device="cpu", quiet=True, augment=[])
    e = netspec.evaluate(spec, r.directory / "last.pt")  # classes=10 comes from the checkpoint
    assert r.test is not None and e.confusion == r.test["confusion"] and e.metrics.images == 360


def test_predict_top_classes_by_hand(trained: dict[str, Any]) -> None:
    t = trained
    images = [t["root"] / f"img{i}.png" for i in range(3)]
    found = netspec.predict(t["root"] / "tiny.yaml", t["run"].directory / "last.pt", images, top=2)
    p = by_hand(t, t["x"][:3])
    top = p.topk(2, dim=1)
    for pred, probs, index, path in zip(found, top.values, top.indices, images):
        assert pred.image == str(path)
        assert [name for name, _ in pred.top] == [str(i) for i in index.tolist()]
        assert [prob for _, prob in pred.top] == pytest.approx(probs.tolist(), abs=1e-6)


def test_plain_state_dict_and_class_names_file(trained: dict[str, Any], tmp_path: Path) -> None:
    t = trained
    model = netspec.compile(t["root"] / "tiny.yaml")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    (tmp_path / "names.txt").write_text("low\nmiddle\nhigh\n")
    images = [t["root"] / "img0.png"]
    found = netspec.predict(t["root"] / "tiny.yaml", tmp_path / "plain.pt", images, classes=tmp_path / "names.txt")
    x = torch.from_numpy(t["x"][:1, None]).float() / 255  # no normalisation: a plain state_dict has none
    with torch.no_grad():
        p = model.eval()(x).softmax(1)[0]
    names = ["low", "middle", "high"]
    order = p.argsort(descending=True).tolist()
    assert [name for name, _ in found[0].top] == [names[i] for i in order]
    assert [prob for _, prob in found[0].top] == pytest.approx([p[i].item() for i in order], abs=1e-6)


def test_cli_eval_and_predict_json(trained: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    t = trained
    spec, last = str(t["root"] / "tiny.yaml"), str(t["run"].directory / "last.pt")
    code, out, err = cli(capsys, "eval", spec, "--weights", last, "--data", str(t["root"] / "d.npz"), "--json")
    assert code == 0, err
    got = json.loads(out)
    test = json.loads((t["run"].directory / "test.json").read_text())
    assert got["confusion"] == test["confusion"] and got["per_class_top1"] == test["per_class_top1"]
    code, out, err = cli(capsys, "eval", spec, "--weights", last, "--data", str(t["root"] / "d.npz"), "--device", "cpu")
    assert code == 0 and out.startswith(f"tiny with {last} on ") and "per class:  0 " in out
    code, out, err = cli(
        capsys, "predict", spec, str(t["root"] / "img1.png"), "--weights", last, "--top", "1", "--json"
    )
    assert code == 0, err
    (one,) = json.loads(out)
    p = by_hand(t, t["x"][1:2])[0]
    assert one["top"] == [{"class": str(int(p.argmax())), "probability": pytest.approx(p.max().item(), abs=1e-6)}]


def test_errors_are_located_one_line_exit_2(
    trained: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = trained
    spec, last = str(t["root"] / "tiny.yaml"), str(t["run"].directory / "last.pt")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cases = [
        (["predict", spec, str(bad), "--weights", last], str(bad)),
        (["predict", str(t["root"] / "other.yaml"), str(t["root"] / "img0.png"), "--weights", last], last),
        (["eval", spec, "--weights", str(tmp_path / "none.pt")], str(tmp_path / "none.pt")),
        (["eval", spec, "--weights", last, "--set", "classes=4"], last),
        (["eval", spec, "--weights", last, "--data", str(tmp_path / "none.npz")], str(tmp_path / "none.npz")),
        (["predict", spec, str(t["root"] / "img0.png"), "--weights", last, "--classes", str(bad)], str(bad)),
    ]
    for args, where in cases:
        code, out, err = cli(capsys, *args)
        assert code == 2 and err.startswith(where + ": error: ") and out == "", (args, err)
        assert len(err.splitlines()) <= 2  # the error, and a hint
    with pytest.raises(SpecError, match="the checkpoint is of spec 'tiny', not 'other'") as e:
        netspec.predict(t["root"] / "other.yaml", last, [t["root"] / "img0.png"])
    assert e.value.hint is not None and "spec 'tiny'" in e.value.hint
    with pytest.raises(SpecError, match="weights") as e:
        netspec.evaluate(spec, last, str(t["root"] / "d.npz"), classes=4)


def test_resume_refuses_a_checkpoint_of_another_spec(trained: dict[str, Any], tmp_path: Path) -> None:
    t = trained
    x, y = bars(60)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    other = netspec.train(t["root"] / "other.yaml", str(tmp_path / "d.npz"), out=tmp_path, epochs=1, quiet=True)
    shutil.copy(t["run"].directory / "last.pt", other.directory / "last.pt")
    with pytest.raises(SpecError, match="the checkpoint is of spec 'tiny', not 'other'") as e:
        netspec.train(resume=other.directory, quiet=True)
    assert e.value.location is not None and e.value.location.path == str(other.directory / "last.pt")
