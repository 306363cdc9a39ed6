"""Classification metrics summed on the device, batch by batch, and read once at the
end: loss, top-1, top-5 and the confusion matrix (rows: true class, columns:
predicted), from which per-class accuracy follows. No per-sample Python."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


class Tally:
    """Sums over batches of ``(logits [B, K], labels [B])``, kept on the device."""

    def __init__(self, classes: int, device: torch.device) -> None:
        self.classes = classes
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.top5 = torch.zeros((), device=device, dtype=torch.int64)
        self.counts = torch.zeros(classes * classes, device=device, dtype=torch.int64)

    def add(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        k = self.classes
        self.loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        best = logits.topk(min(5, logits.shape[1]), dim=1).indices
        self.top5 += (best == y[:, None]).any(1).sum()
        self.counts += torch.bincount(y * k + best[:, 0], minlength=k * k)

    def summed(self, total: Callable[[torch.Tensor], torch.Tensor]) -> Tally:
        """The tally with each sum passed through ``total`` (e.g. summed over processes)."""
        out = Tally(self.classes, self.loss.device)
        out.loss, out.top5, out.counts = total(self.loss), total(self.top5), total(self.counts)
        return out

    def result(self, names: Sequence[str] | None = None) -> Metrics:
        confusion = self.counts.reshape(self.classes, self.classes).cpu()
        n = int(confusion.sum())
        return Metrics(
            loss=self.loss.item() / max(1, n),
            top1=int(confusion.trace()) / max(1, n),
            top5=self.top5.item() / max(1, n),
            images=n,
            confusion=confusion.tolist(),
            classes=list(names) if names is not None else [str(i) for i in range(self.classes)],
        )


@dataclass
class Metrics:
    """Loss (plain cross-entropy), top-1 and top-5 accuracy over ``images`` images,
    and ``confusion[true][predicted]`` (counts) over ``classes``."""

    loss: float
    top1: float
    top5: float
    images: int
    confusion: list[list[int]]
    classes: list[str]

    @property
    def per_class(self) -> dict[str, float | None]:
        """Each class's accuracy (recall): None for a class without images."""
        return {
            name: (row[i] / sum(row) if sum(row) else None)
            for i, (name, row) in enumerate(zip(self.classes, self.confusion))
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "top1": self.top1,
            "top5": self.top5,
            "images": self.images,
            "classes": self.classes,
            "per_class_top1": self.per_class,
            "confusion": self.confusion,
        }


def confusion_csv(m: Metrics) -> str:
    """The confusion matrix with a header row and a first column of class names."""
    lines = [",".join(["true\\predicted", *(_csv(c) for c in m.classes)])]
    lines += [",".join([_csv(name), *map(str, row)]) for name, row in zip(m.classes, m.confusion)]
    return "\n".join(lines) + "\n"


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def format_metrics(m: Metrics, title: str, width: int = 100) -> str:
    """A few lines: the totals, per-class accuracy packed to ``width``, and the
    confusion matrix (class names as row labels; columns in the same order) when it
    has at most 20 classes."""
    lines = [f"{title}: loss {m.loss:.4f}  top-1 {100 * m.top1:.2f}%  top-5 {100 * m.top5:.2f}%  ({m.images} images)"]
    cells = [f"{name} {'-' if acc is None else f'{100 * acc:.1f}%'}" for name, acc in m.per_class.items()]
    line = "per class:"
    for cell in cells:
        if len(line) + 2 + len(cell) > width and line != "per class:":
            lines.append(line)
            line = " " * len("per class:")
        line += "  " + cell
    lines.append(line)
    if len(m.classes) <= 20:
        label = max(len(c) for c in m.classes)
        digits = max(len(str(v)) for row in m.confusion for v in row)
        lines.append("confusion (rows: true, columns: predicted, in the same order):")
        lines += [
            f"  {name:>{label}} " + " ".join(f"{v:>{digits}}" for v in row) for name, row in zip(m.classes, m.confusion)
        ]
    return "\n".join(lines)
