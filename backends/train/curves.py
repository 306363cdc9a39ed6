"""``curves.png`` of a run: training and validation loss, and top-1 accuracy, against
the epoch, drawn with matplotlib's Agg backend (no display needed) and written whole."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from netspec.backends.common import write_atomic


def write_curves(path: Path, history: Sequence[dict[str, float]], title: str) -> None:
    from matplotlib.figure import Figure  # a Figure of its own: Agg renders it, no pyplot state, no GUI

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    loss, acc = fig.subplots(1, 2)
    loss.plot(epochs, [r["train_loss"] for r in history], marker=".", label="train")
    loss.plot(epochs, [r["val_loss"] for r in history], marker=".", label="validation")
    loss.set(xlabel="epoch", ylabel="loss", title="loss")
    acc.plot(epochs, [100 * r["train_top1"] for r in history], marker=".", label="train top-1")
    acc.plot(epochs, [100 * r["val_top1"] for r in history], marker=".", label="validation top-1")
    acc.plot(epochs, [100 * r["val_top5"] for r in history], marker=".", linestyle=":", label="validation top-5")
    acc.set(xlabel="epoch", ylabel="%", title="accuracy")
    for ax in (loss, acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_atomic(path, [buffer.getbuffer()], "training curves")
