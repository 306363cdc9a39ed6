"""Training data formats (``netspec train DATA``): image folders, CIFAR-10's binary
batches, ``.npz`` class names, streaming from a memory-mapped cache, ``read_images``
and ``check_source``. Every data set is made here, small, with known pixel values."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

import netspec
from netspec import SpecError

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
from netspec.backends.train import cifar, data, stream  # noqa: E402 (needs torch)

GREY = """\
name: grey
params: {classes: 3}
inputs: {image: [1, 8, 8]}
layers: [flatten, {op: linear, out: $classes}]
"""
RGB = GREY.replace("[1, 8, 8]", "[3, 8, 8]").replace("name: grey", "name: rgb")


def spec(text: str = GREY, **replace: str) -> Any:
    for old, new in replace.items():
        text = text.replace(old, new)
    return netspec.analyze_text(text)


def pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def folder(
    root: Path, counts: dict[str, int], mode: str = "L", size: tuple[int, int] = (8, 8), seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """``root/<class>/<i>.png`` with random pixels; returns them by class ([C, H, W])."""
    made: dict[str, list[np.ndarray]] = {}
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            hw = (size[1], size[0])
            a = pixels(seed + 100 * k + i, hw if mode == "L" else (*hw, 3))
            Image.fromarray(a, mode).save(root / name / f"{i:03}.png")
            made.setdefault(name, []).append(a[None] if mode == "L" else a.transpose(2, 0, 1))
    return made


def everything(d: data.Data) -> dict[tuple[int, ...], int]:
    """Each image of train + val (+ test) as bytes -> its label."""
    out: dict[tuple[int, ...], int] = {}
    for s in (d.train, d.val, d.test):
        if s is not None:
            x, y = s.batch(torch.arange(len(s)))
            for image, label in zip((x * 255).round().to(torch.uint8), y):
                out[tuple(image.flatten().tolist())] = int(label)
    return out


def raises(call: Any, message: str, path: str | Path | None = None, line: int = 0) -> SpecError:
    with pytest.raises(SpecError) as e:
        call()
    assert message in e.value.message, e.value.message
    if path is not None:
        assert e.value.location is not None and (e.value.location.path, e.value.location.line) == (str(path), line)
    return e.value


# --- image folders ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "mode"), [(GREY, "L"), (RGB, "RGB")])
def test_a_class_folder_loads_pixel_for_pixel(tmp_path: Path, text: str, mode: str) -> None:
    made = folder(tmp_path, {"b_cat": 5, "a_dog": 4, "c_owl": 6}, mode)
    (tmp_path / "a_dog" / "notes.txt").write_text("not an image")
    (tmp_path / "c_owl" / ".DS_Store").write_text("hidden")
    d = data.load(str(tmp_path), spec(text), 0.2, 0, {})
    assert d.classes == ["a_dog", "b_cat", "c_owl"]  # sorted folder names
    assert d.test is None and len(d.train) + len(d.val) == 15 and len(d.val) == 3
    assert sorted(d.val.y.tolist()) == [0, 1, 2]  # one of each class: stratified
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == ((1 if mode == "L" else 3), 8, 8)
    expected = {tuple(a.flatten().tolist()): d.classes.index(k) for k, v in made.items() for a in v}
    assert everything(d) == expected
    assert d.notes == [f"skipped 1 non-image file (e.g. {tmp_path / 'a_dog' / 'notes.txt'})"]


def test_jpeg_within_tolerance_and_grey_from_rgb(tmp_path: Path) -> None:
    smooth = np.add.outer(np.arange(8), np.arange(8)).astype(np.uint8) * 16  # JPEG keeps smooth images well
    for k in ("x", "y"):
        (tmp_path / k).mkdir()
        for i in range(3):
            rgb = np.stack([smooth + 10 * i, smooth, 255 - smooth], axis=2).astype(np.uint8)
            Image.fromarray(rgb, "RGB").save(tmp_path / k / f"{i}.jpg", quality=95, subsampling=0)
    d = data.load(str(tmp_path), spec(RGB, **{"classes: 3": "classes: 2"}), 0.34, 0, {})
    x, _ = d.train.batch(torch.arange(len(d.train)))
    got = (x * 255).numpy()
    assert np.abs(got[:, 1] - smooth).max() <= 8 and np.abs(got[:, 2] - (255 - smooth)).max() <= 8
    grey = data.read_images([str(tmp_path / "x" / "0.jpg")], 1, 8, 8)[0, 0].astype(float)
    luma = 0.299 * smooth + 0.587 * smooth + 0.114 * (255 - smooth)  # ITU-R 601, Pillow's L
    assert np.abs(grey - luma).max() <= 8


def test_images_are_scaled_to_cover_and_centre_cropped(tmp_path: Path) -> None:
    wide = np.zeros((8, 24), np.uint8)
    wide[:, 8:16] = np.arange(8, dtype=np.uint8)[None] * 30 + 5  # the middle third
    Image.fromarray(wide).save(tmp_path / "wide.png")
    # already 8 high: no scaling, the middle 8 of 24 columns, pixel for pixel
    assert np.array_equal(data.read_images([str(tmp_path / "wide.png")], 1, 8, 8)[0, 0], wide[:, 8:16])
    # 20 x 40, red left and right quarters, green middle half: scaled by 0.4 to 8 x 16,
    # then cropped to the middle: green; a plain resize would keep 2 red columns a side
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :10, 0] = rgb[:, 30:, 0] = 255
    rgb[:, 10:30, 1] = 255
    Image.fromarray(rgb, "RGB").save(tmp_path / "bands.png")
    out = data.read_images([str(tmp_path / "bands.png")], 3, 8, 8)[0].astype(int)
    assert (out[1] > 200).all() and (out[0] < 60).all() and (out[0, :, 2:6] == 0).all()
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 16-bit grey
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert np.array_equal(data.read_images([str(tmp_path / "deep.png")], 1, 8, 8)[0, 0], deep // 256)
    flat = np.full((30, 17), 77, np.uint8)  # any scaling keeps a flat image flat
    Image.fromarray(flat).save(tmp_path / "flat.png")
    assert (data.read_images([str(tmp_path / "flat.png")], 1, 5, 9) == 77).all()


def test_train_val_test_folders(tmp_path: Path) -> None:
    made = {
        s: folder(tmp_path / s, {"a": n, "b": n, "c": n}, seed=10 * k)
        for k, (s, n) in enumerate([("train", 4), ("val", 2), ("test", 3)])
    }
    d = data.load(str(tmp_path), spec(), 0.5, 0, {})  # val_split unused: val/ is the validation split
    assert (len(d.train), len(d.val)) == (12, 6) and d.test is not None and len(d.test) == 9
    for s, split in (("train", d.train), ("val", d.val), ("test", d.test)):
        x, y = split.batch(torch.arange(len(split)))
        want = [(a, "abc".index(k)) for k, images in made[s].items() for a in images]
        assert sorted(
            ((x * 255).round().to(torch.uint8)[i].numpy().tobytes(), int(y[i])) for i in range(len(y))
        ) == sorted((a.tobytes(), label) for a, label in want)
    only_train = tmp_path / "t2"
    folder(only_train / "train", {"a": 5, "b": 5, "c": 5})
    d2 = data.load(str(only_train), spec(), 0.2, 0, {})  # no val/: carved from train/
    assert (len(d2.train), len(d2.val), d2.test) == (12, 3, None)


def test_classes_txt_orders_the_classes(tmp_path: Path) -> None:
    made = folder(tmp_path, {"ant": 3, "bee": 3, "cow": 3})
    (tmp_path / "classes.txt").write_text("cow\nant\nbee\n\n")
    d = data.load(str(tmp_path), spec(), 0.34, 0, {})
    assert d.classes == ["cow", "ant", "bee"]
    assert everything(d) == {
        tuple(a.flatten().tolist()): ["cow", "ant", "bee"].index(k) for k, v in made.items() for a in v
    }


def test_classes_txt_that_does_not_match_the_folders(tmp_path: Path) -> None:
    folder(tmp_path, {"ant": 2, "bee": 2, "cow": 2})
    names = tmp_path / "classes.txt"
    load = lambda: data.load(str(tmp_path), spec(), 0.5, 0, {})  # noqa: E731
    names.write_text("ant\nbea\ncow\n")
    e = raises(load, f"class 'bea' has no folder in {tmp_path}", names, 2)
    assert e.hint == "did you mean 'bee'?"
    names.write_text("ant\ncow\n")
    raises(load, f"folder 'bee' in {tmp_path} is not named in classes.txt", names)
    names.write_text("ant\nbee\nant\ncow\n")
    raises(load, "class 'ant' is named twice (line 1 and here)", names, 3)


def test_folder_mistakes_are_located(tmp_path: Path) -> None:
    def load(root: Path, text: str = GREY, **kw: Any) -> Any:
        return lambda: data.load(str(root), spec(text), 0.5, 0, kw)

    folder(tmp_path / "empty", {"a": 2, "b": 2})
    (tmp_path / "empty" / "c").mkdir()
    (tmp_path / "empty" / "c" / "readme.md").write_text("")
    raises(
        load(tmp_path / "empty"),
        "the class folder holds no images (1 other files, e.g. 'readme.md')",
        tmp_path / "empty" / "c",
    )

    folder(tmp_path / "bad", {"a": 2, "b": 2, "c": 2})
    broken = tmp_path / "bad" / "b" / "001.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    raises(load(tmp_path / "bad"), "cannot read the image", broken)
    (tmp_path / "bad" / "b" / "001.png").write_bytes(b"not a png at all")
    raises(load(tmp_path / "bad"), "cannot read the image", broken)

    folder(tmp_path / "split" / "train", {"a": 2, "b": 2, "c": 2})
    folder(tmp_path / "split" / "val", {"a": 1, "c": 1})
    raises(load(tmp_path / "split"), "class folder 'b' is in train/ but not in val/", tmp_path / "split" / "val")
    folder(tmp_path / "split" / "val", {"bb": 1})
    e = raises(load(tmp_path / "split"), "class folder 'b' is in train/ but not in val/", tmp_path / "split" / "val")
    assert e.hint == "did you mean 'bb'?"
    folder(tmp_path / "split2" / "train", {"a": 2, "b": 2, "c": 2})
    folder(tmp_path / "split2" / "test", {"a": 1, "b": 1, "c": 1, "d": 1})
    e = raises(
        load(tmp_path / "split2"), "class folder 'd' is in test/ but not in train/", tmp_path / "split2" / "train"
    )
    assert e.hint == "every split holds the same class folders; add train/d/ or remove test/d/"

    folder(tmp_path / "stray" / "train", {"a": 1})
    folder(tmp_path / "stray", {"dog": 1})
    raises(load(tmp_path / "stray"), "folder 'dog' beside train/", tmp_path / "stray" / "dog")

    folder(tmp_path / "nottrain" / "val", {"a": 1})
    folder(tmp_path / "nottrain" / "training", {"a": 1})
    raises(load(tmp_path / "nottrain"), "folder 'val/' without train/", tmp_path / "nottrain" / "val")

    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(pixels(0, (8, 8))).save(flat / "0.png")
    raises(load(flat), "the directory holds no class folders (1 images lie in it directly)", flat)

    folder(tmp_path / "two", {"a": 2, "b": 2})
    e = raises(load(tmp_path / "two", classes=3), "the data has 2 classes, but spec 'grey' outputs 3", tmp_path / "two")
    assert e.hint == "--set classes=2"
    raises(
        load(tmp_path / "two", GREY.replace("[1, 8, 8]", "[2, 8, 8]")),
        "images decode to 1 (grey) or 3 (RGB) channels, but the spec takes 2",
        tmp_path / "two",
    )


def test_missing_pillow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder(tmp_path, {"a": 2, "b": 2, "c": 2})
    monkeypatch.setitem(sys.modules, "PIL", None)
    e = raises(lambda: data.load(str(tmp_path), spec(), 0.5, 0, {}), "reading images needs Pillow")
    assert e.hint == "pip install 'netspec[train]'"


# --- read_images, check_source -------------------------------------------------------


def test_read_images_and_its_errors(tmp_path: Path) -> None:
    made = folder(tmp_path, {"a": 3}, "RGB")
    paths = [str(tmp_path / "a" / f"{i:03}.png") for i in (2, 0)]
    got = data.read_images(paths, 3, 8, 8)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 8, 8)
    assert np.array_equal(got[0], made["a"][2]) and np.array_equal(got[1], made["a"][0])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    raises(
        lambda: data.read_images([paths[0], str(tmp_path / "bad.png")], 3, 8, 8),
        "cannot read the image",
        tmp_path / "bad.png",
    )
    raises(lambda: data.read_images([str(tmp_path / "none.png")], 3, 8, 8), "no such image file", tmp_path / "none.png")
    raises(
        lambda: data.read_images(paths, 4, 8, 8), "images decode to 1 (grey) or 3 (RGB) channels, but the spec takes 4"
    )


def test_check_source(tmp_path: Path) -> None:
    folder(tmp_path / "f", {"a": 1})
    np.savez(tmp_path / "d.npz", x_train=np.zeros((2, 8, 8), np.uint8), y_train=np.arange(2))
    (tmp_path / "c" / cifar.FOLDER).mkdir(parents=True)
    (tmp_path / "c" / cifar.FOLDER / "data_batch_1.bin").write_bytes(b"")
    for ok in ("digits", tmp_path / "f", tmp_path / "d.npz", tmp_path / "c"):
        data.check_source(str(ok))
    raises(
        lambda: data.check_source(str(tmp_path / "none")),
        "no such data file or directory (use 'digits', an .npz file",
        tmp_path / "none",
    )
    (tmp_path / "x.csv").write_text("1,2")
    raises(
        lambda: data.check_source(str(tmp_path / "x.csv")), "cannot tell what data the file holds", tmp_path / "x.csv"
    )
    (tmp_path / "e").mkdir()
    raises(
        lambda: data.check_source(str(tmp_path / "e")),
        "holds no class folders (and is not CIFAR-10's binary directory)",
        tmp_path / "e",
    )


# --- CIFAR-10 binary ---------------------------------------------------------------

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_dir(root: Path, per_file: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10's layout with ``per_file`` records a batch; returns the records'
    train and test images [N, 3, 32, 32] (red, green, blue planes) and labels."""
    root.mkdir(parents=True)
    xs, ys = [], []
    for k, name in enumerate([*cifar.TRAIN_FILES, cifar.TEST_FILE]):
        x, y = pixels(k, (per_file, 3, 32, 32)), (np.arange(per_file) + k) % 10
        with open(root / name, "wb") as f:
            for image, label in zip(x, y):
                f.write(bytes([label]) + image.tobytes())  # 1 label byte, then R, G, B planes
        xs.append(x)
        ys.append(y)
    (root / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_cifar_binary_batches(tmp_path: Path) -> None:
    x, y, xt, yt = cifar_dir(tmp_path / cifar.FOLDER)
    ten = spec(RGB, **{"[3, 8, 8]": "[3, 32, 32]", "classes: 3": "classes: 10"})
    for source in (tmp_path, tmp_path / cifar.FOLDER):  # the directory or its parent
        d = data.load(str(source), ten, 0.25, 0, {})
        assert d.classes == NAMES and (len(d.train), len(d.val)) == (15, 5)
        assert d.test is not None and torch.equal(d.test.x, torch.from_numpy(xt)) and d.test.y.tolist() == yt.tolist()
        got = everything(data.Data(d.train, d.val, None))
        assert got == {tuple(a.flatten().tolist()): int(label) for a, label in zip(x, y)}
    raises(
        lambda: data.load(str(tmp_path), spec(RGB), 0.25, 0, {}),
        "CIFAR-10 images are [3, 32, 32], but the spec takes [3, 8, 8]",
        tmp_path / cifar.FOLDER,
    )
    e = raises(
        lambda: data.load(str(tmp_path), spec(RGB, **{"[3, 8, 8]": "[3, 32, 32]"}), 0.25, 0, {"classes": 3}),
        "the data has 10 classes, but spec 'rgb' outputs 3",
    )
    assert e.hint == "--set classes=10"
    batch = tmp_path / cifar.FOLDER / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    raises(
        lambda: data.load(str(tmp_path), ten, 0.25, 0, {}),
        "not a whole number of 3,073-byte records (truncated?)",
        batch,
    )
    batch.unlink()
    raises(
        lambda: data.load(str(tmp_path), ten, 0.25, 0, {}),
        "the CIFAR-10 directory has no data_batch_3.bin",
        tmp_path / cifar.FOLDER,
    )


# --- .npz class names ----------------------------------------------------------------


def test_npz_class_names(tmp_path: Path) -> None:
    x, y = pixels(0, (12, 8, 8)), np.arange(12) % 3
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=y, classes=np.array(["zero", "one", "two"]))
    assert data.load(str(path), spec(), 0.25, 0, {}).classes == ["zero", "one", "two"]
    np.savez(path, x_train=x, y_train=y)
    assert data.load(str(path), spec(), 0.25, 0, {}).classes == ["0", "1", "2"]
    np.savez(path, x_train=x, y_train=y, classes=np.array(["a", "b", "c", "d"]))  # a class with no image yet
    e = raises(
        lambda: data.load(str(path), spec(), 0.25, 0, {"classes": 3}),
        "the data has 4 classes, but spec 'grey' outputs 3",
        path,
    )
    assert e.hint == "--set classes=4"
    np.savez(path, x_train=x, y_train=y, classes=np.array(["a", "b"]))
    raises(
        lambda: data.load(str(path), spec(), 0.25, 0, {}), "'classes' names 2 classes, but the labels go up to 2", path
    )
    np.savez(path, x_train=x, y_train=y, classes=np.arange(3))
    raises(lambda: data.load(str(path), spec(), 0.25, 0, {}), "'classes' must be a list of class names (strings)", path)
    np.savez(path, x_train=x, y_train=y, classes=np.array(["a", "b", "a"]))
    raises(lambda: data.load(str(path), spec(), 0.25, 0, {}), "'classes' names 'a' twice", path)


# --- streaming -----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1])
def test_a_streamed_folder_gives_the_same_batches(tmp_path: Path, workers: int) -> None:
    folder(tmp_path / "train", {"a": 7, "b": 6, "c": 5}, "RGB", size=(10, 12))  # resized on the way in
    folder(tmp_path / "test", {"a": 2, "b": 2, "c": 2}, "RGB", seed=50)
    memory = data.load(str(tmp_path), spec(RGB), 0.25, 0, {})
    streamed = data.load(str(tmp_path), spec(RGB), 0.25, 0, {}, stream_bytes=0, workers=workers).to(torch.device("cpu"))
    assert not isinstance(memory.train, stream.StreamSplit) and isinstance(streamed.train, stream.StreamSplit)
    assert streamed.classes == memory.classes and any(n.endswith("(built now)") for n in streamed.notes)
    assert memory.test is not None and streamed.test is not None
    for a, b in ((memory.train, streamed.train), (memory.val, streamed.val), (memory.test, streamed.test)):
        assert len(a) == len(b)
        order = torch.randperm(len(a), generator=torch.Generator().manual_seed(len(a)))
        got, want = list(b.batches(order, 4)), list(a.batches(order, 4))
        assert len(got) == len(want) == -(-len(a) // 4)
        for (x1, y1), (x2, y2) in zip(got, want):
            assert x1.dtype == torch.float32 and torch.equal(x1, x2) and torch.equal(y1, y2)
        shard = order[1::2]  # a data-parallel rank's share
        assert all(
            torch.equal(x1, x2) and torch.equal(y1, y2)
            for (x1, y1), (x2, y2) in zip(
                b.subset(shard).batches(torch.arange(len(shard)), 3),
                a.subset(shard).batches(torch.arange(len(shard)), 3),
                strict=True,
            )
        )
        assert torch.equal(b.subset(shard).y, a.y[shard])
        reference = a.x.double() / 255  # the whole split in memory
        mean, std = b.channel_stats(chunk=5)
        assert np.allclose(mean, reference.mean(dim=(0, 2, 3))) and np.allclose(std, reference.std(dim=(0, 2, 3)))
    caches = sorted(p.name for p in (tmp_path / "train").iterdir() if p.name.startswith(".netspec-cache"))
    assert len(caches) == 1 and caches[0].startswith(".netspec-cache-train-3x8x8-")
    again = data.load(str(tmp_path), spec(RGB), 0.25, 0, {}, stream_bytes=0, workers=workers)
    assert len(again.notes) == 2 and not any("built" in n for n in again.notes)  # train/ and test/, reused


def test_the_cache_is_rebuilt_when_the_data_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder(tmp_path, {"a": 3, "b": 3, "c": 3})
    monkeypatch.setenv(stream.STREAM_ENV, "0")
    first = data.load(str(tmp_path), spec(), 0.34, 0, {}, workers=0)
    assert isinstance(first.train, stream.StreamSplit)
    before = everything(first)
    changed = tmp_path / "b" / "001.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    second = data.load(str(tmp_path), spec(), 0.34, 0, {}, workers=0)
    assert isinstance(second.train, stream.StreamSplit) and second.train.path != first.train.path
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [
        Path(second.train.path).name
    ]  # the old one went
    assert (200,) * 64 in everything(second) and (200,) * 64 not in before
    images, cut = everything(second), Path(second.train.path)
    cut.write_bytes(cut.read_bytes()[:200])  # a cache cut short is rebuilt
    third = data.load(str(tmp_path), spec(), 0.34, 0, {}, workers=0)
    assert any(n.endswith("(built now)") for n in third.notes) and everything(third) == images
    bigger = data.load(str(tmp_path), spec(**{"[1, 8, 8]": "[1, 6, 6]"}), 0.34, 0, {}, workers=0)
    assert isinstance(bigger.train, stream.StreamSplit) and "-1x6x6-" in bigger.train.path
    monkeypatch.setenv(stream.STREAM_ENV, str(10**9))
    assert not isinstance(data.load(str(tmp_path), spec(), 0.34, 0, {}).train, stream.StreamSplit)
    monkeypatch.setenv(stream.STREAM_ENV, "lots")
    raises(lambda: data.load(str(tmp_path), spec(), 0.34, 0, {}), "NETSPEC_STREAM_BYTES must be a number of bytes")


def test_an_unwritable_folder_caches_elsewhere_and_a_bad_image_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    folder(root, {"a": 3, "b": 3, "c": 3})
    monkeypatch.setenv(stream.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(stream.os, "access", lambda path, mode: False)  # as for a read-only mount
    d = data.load(str(root), spec(), 0.34, 0, {}, stream_bytes=0, workers=0)
    assert isinstance(d.train, stream.StreamSplit) and Path(d.train.path).parent == tmp_path / "cache"
    monkeypatch.undo()
    (root / "c" / "002.png").write_bytes(b"garbage")
    raises(
        lambda: data.load(str(root), spec(), 0.34, 0, {}, stream_bytes=0, workers=0),
        "cannot read the image",
        root / "c" / "002.png",
    )
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # nothing half-written


def test_training_on_a_streamed_folder_matches_training_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    for k in range(3):  # a bright bar whose place is the class
        (tmp_path / "d" / f"c{k}").mkdir(parents=True)
        for i in range(12):
            a = rng.integers(0, 40, (8, 8)).astype(np.uint8)
            a[2 * k : 2 * k + 2] = 250
            Image.fromarray(a).save(tmp_path / "d" / f"c{k}" / f"{i}.png")
    (tmp_path / "grey.yaml").write_text(GREY)
    quick = {"epochs": 2, "batch_size": 8, "device": "cpu", "quiet": True, "out": tmp_path / "runs"}
    memory = netspec.train(tmp_path / "grey.yaml", str(tmp_path / "d"), **quick)
    monkeypatch.setenv(stream.STREAM_ENV, "0")
    streamed = netspec.train(tmp_path / "grey.yaml", str(tmp_path / "d"), **quick)
    assert [p.name for p in (tmp_path / "d").iterdir() if p.name.startswith(".netspec-cache")]
    assert memory.classes == streamed.classes == ["c0", "c1", "c2"]
    for a, b in zip(memory.history, streamed.history, strict=True):
        assert {k: v for k, v in a.items() if k not in ("images_per_s", "seconds")} == {
            k: v for k, v in b.items() if k not in ("images_per_s", "seconds")
        }
