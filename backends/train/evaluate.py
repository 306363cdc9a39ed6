"""``netspec eval`` and ``netspec predict``: a spec with trained weights, on a data
set's test split or on image files.

The weights are a run checkpoint (``best.pt``/``last.pt``: its ``model``, which is the
EMA when the run had one; its class names, the spec's variables it was trained with
and the normalisation it applied) or a plain state_dict (numbered classes, no
normalisation), matched onto the module as ``netspec.load_weights`` does."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from netspec.analysis import Analysis, analyze
from netspec.backends.torch import build, load_weights, resolve_device
from netspec.backends.train import data
from netspec.backends.train.augment import Pipeline
from netspec.backends.train.checkpoint import CHECKPOINT_FORMAT
from netspec.backends.train.metrics import Metrics, Tally
from netspec.errors import Location, SpecError
from netspec.spec.recipe import Recipe
from netspec.zoo import resolve as resolve_spec


@dataclass
class Evaluation:
    """A spec's weights on ``images`` images of ``data`` (its ``split``)."""

    spec: str
    weights: str
    data: str
    split: str
    metrics: Metrics

    @property
    def loss(self) -> float:
        return self.metrics.loss

    @property
    def top1(self) -> float:
        return self.metrics.top1

    @property
    def top5(self) -> float:
        return self.metrics.top5

    @property
    def per_class(self) -> dict[str, float | None]:
        return self.metrics.per_class

    @property
    def confusion(self) -> list[list[int]]:
        return self.metrics.confusion

    def as_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "weights": self.weights, "data": self.data, "split": self.split} | (
            self.metrics.as_dict()
        )


@dataclass
class Prediction:
    """An image's ``top`` classes, most probable first: (class name, probability)."""

    image: str
    top: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.image, "top": [{"class": c, "probability": p} for c, p in self.top]}


@dataclass
class _Loaded:
    analysis: Analysis
    module: torch.nn.Module
    device: torch.device
    classes: list[str]
    transform: list[Any]  # the deterministic augmentations the run applied (normalize)
    recipe: dict[str, Any]
    variables: dict[str, Any]


def _read(weights: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any], str]:
    """The state_dict, the run checkpoint's other entries ({} for a plain state_dict)
    and the name to report."""
    if isinstance(weights, Mapping):
        return (*_split(weights), "<state_dict>")
    where = Location(os.fspath(weights))
    if not os.path.isfile(weights):
        raise SpecError("no such weights file", where)
    try:
        content = torch.load(os.fspath(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # torch reports unreadable files with many exception types
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"cannot read the weights: {message}", where) from None
    if not isinstance(content, Mapping):
        raise SpecError(f"the weights file holds a {type(content).__name__}, not a state_dict", where)
    return (*_split(content), os.fspath(weights))


def _split(content: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
    if content.get("format") == CHECKPOINT_FORMAT and isinstance(content.get("model"), Mapping):
        return content["model"], dict(content)
    for key in ("state_dict", "model"):  # other trainers' layouts
        inner = content.get(key)
        if isinstance(inner, Mapping) and not all(isinstance(v, torch.Tensor) for v in content.values()):
            return inner, {}
    return content, {}


def _load(
    source: Any,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    params: Mapping[str, Any] | None,
    device: str | None,
    classes_file: str | os.PathLike[str] | None = None,
) -> _Loaded:
    state, meta, where = _read(weights)
    from netspec.spec.load import load_file

    spec = source if not isinstance(source, (str, os.PathLike)) else None
    if spec is None:
        path = resolve_spec(source)
        spec = load_file(path)  # the declared variables, to take the run's values for them
        trained = {k: v for k, v in dict(meta.get("variables") or {}).items() if k in spec.model.params}
        spec = load_file(path, {**trained, **(params or {})}) if trained or params else spec
    analysis = spec if isinstance(spec, Analysis) else analyze(spec)
    dev = resolve_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    assert dev is not None
    module = build(analysis, device=dev)
    try:
        load_weights(module, state)
    except SpecError as e:
        if e.location is None:
            e.location = Location(where)
        of = meta.get("spec")
        if isinstance(of, str) and of != analysis.name:
            raise SpecError(
                f"the checkpoint is of spec '{of}', not '{analysis.name}' ({e.message})",
                e.location,
                hint=f"give spec '{of}' (its copy is the run's spec.yaml)",
            ) from None
        raise
    module.eval()
    *_, n = data.expected(analysis)
    names = _classes(classes_file, n) if classes_file is not None else list(meta.get("classes") or [])
    if len(names) != n:
        names = [str(i) for i in range(n)]
    transform = Recipe.model_validate({"augment": meta.get("eval_transform") or []}).augment
    variables = dict(getattr(spec, "variables", None) or {})
    return _Loaded(analysis, module, dev, names, transform, dict(meta.get("recipe") or {}), variables)


def _classes(path: str | os.PathLike[str], n: int) -> list[str]:
    where = Location(os.fspath(path))
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the class names: {getattr(e, 'strerror', None) or e}", where) from None
    if len(names) != n:
        raise SpecError(f"the file names {len(names)} classes (one a line); the spec outputs {n}", where)
    return names


def _outputs(loaded: _Loaded, split: data.Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The module's logits for each batch of ``split``, with the batch's labels."""
    channels = data.expected(loaded.analysis)[0]
    # the run's normalize carries its mean and std: nothing is measured on this tensor
    pipeline = Pipeline(loaded.transform, torch.zeros((1, channels, 1, 1), dtype=torch.uint8), 0, loaded.device)
    for x, y in split.batches(torch.arange(len(split), device=split.y.device), batch_size):
        yield loaded.module(pipeline.eval(x)), y


@torch.no_grad()
def evaluate(
    source: Any,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    data_source: str = "digits",
    *,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 256,
    **overrides: Any,
) -> Evaluation:
    """Loss, top-1, top-5, per-class accuracy and the confusion matrix of a spec with
    ``weights`` on the test split of ``data_source`` (as ``netspec train`` reads it;
    for ``digits``, the test split the run's seed drew), or on its validation split
    where it has no test split."""
    loaded = _load(source, weights, {**(params or {}), **overrides}, device)
    data.check_source(data_source)
    seed, share = int(loaded.recipe.get("seed", 0)), float(loaded.recipe.get("val_split", 0.1))
    d = data.load(data_source, loaded.analysis, share, seed, loaded.variables)
    split_name, split = ("test", d.test) if d.test is not None else ("validation", d.val)
    names = loaded.classes if loaded.classes != [str(i) for i in range(len(d.classes))] else d.classes
    tally = Tally(len(names), loaded.device)
    for logits, y in _outputs(loaded, split.to(loaded.device), batch_size):
        tally.add(logits, y)
    where = weights if isinstance(weights, (str, os.PathLike)) else "<state_dict>"
    return Evaluation(loaded.analysis.name, os.fspath(where), data_source, split_name, tally.result(names))


@torch.no_grad()
def predict(
    source: Any,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    images: Sequence[str | os.PathLike[str]],
    *,
    classes: str | os.PathLike[str] | None = None,
    top: int = 5,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    **overrides: Any,
) -> list[Prediction]:
    """The ``top`` most probable classes of each image file (decoded and fitted to the
    spec's input as training reads images), named from the checkpoint or ``classes``
    (a file, one name a line)."""
    if not images:
        raise SpecError("give one or more image files to predict")
    loaded = _load(source, weights, {**(params or {}), **overrides}, device, classes)
    c, h, w, _ = data.expected(loaded.analysis)
    paths = [os.fspath(p) for p in images]
    x = torch.from_numpy(data.read_images(paths, c, h, w)).to(loaded.device)
    split = data.Split(x, torch.zeros(len(paths), dtype=torch.int64, device=loaded.device))
    probabilities = torch.cat([logits.float().softmax(1) for logits, _ in _outputs(loaded, split, 256)])
    k = min(top, probabilities.shape[1])
    p, index = (t.tolist() for t in probabilities.topk(k, dim=1))
    return [
        Prediction(path, [(loaded.classes[i], prob) for i, prob in zip(row_i, row_p)])
        for path, row_i, row_p in zip(paths, index, p)
    ]


def format_evaluation(e: Evaluation) -> str:
    from netspec.backends.train.metrics import format_metrics

    return format_metrics(e.metrics, f"{e.spec} with {e.weights} on {e.data} ({e.split})")


def format_predictions(predictions: Sequence[Prediction]) -> str:
    lines = []
    for pr in predictions:
        lines.append(pr.image)
        lines += [f"  {100 * prob:6.2f}%  {name}" for name, prob in pr.top]
    return "\n".join(lines)
