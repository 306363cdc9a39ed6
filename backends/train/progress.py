"""What a run prints while it trains: on a terminal, a bar per epoch (steps, the
loss so far, images/s) above the one-line summary of each epoch; elsewhere (a file,
a pipe, a CI log) only the summaries; with ``quiet``, nothing."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

#: the bar's loss is read from the device at most this often (a read waits for the device)
REFRESH_S = 0.5


class Progress:
    def __init__(self, quiet: bool, epochs: int, steps: int, batch_size: int) -> None:
        self.quiet, self.epochs, self.steps, self.batch_size = quiet, epochs, steps, batch_size
        self.bars = not quiet and sys.stdout.isatty()
        self.bar: Any = None
        self._total = torch.zeros(())
        self._read = self._started = 0.0
        self._first: int | None = None

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def start(self, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based)."""
        if not self.bars:
            return
        from tqdm import tqdm  # type: ignore[import-untyped]

        self.bar = tqdm(
            total=self.steps, desc=f"epoch {epoch}/{self.epochs}", unit="step", leave=False, file=sys.stdout
        )
        self._total, self._first, self._read = torch.zeros(()), None, time.perf_counter()

    def step(self, done: int, loss: torch.Tensor) -> None:
        """After a step: ``done`` steps of the epoch are done; ``loss`` is its loss (on the device)."""
        if self.bar is None:
            return
        if self._first is None:  # a resumed epoch starts part way
            self._first = done - 1
            self._total = torch.zeros((), device=loss.device)
            self.bar.update(done - 1)
            self._started = time.perf_counter()
        self._total += loss
        self.bar.update(1)
        now = time.perf_counter()
        if now - self._read >= REFRESH_S or done == self.steps:
            self._read = now
            n = done - self._first
            rate = n * self.batch_size / max(now - self._started, 1e-9)
            self.bar.set_postfix_str(f"loss {self._total.item() / n:.4f}, {rate:,.0f} img/s")

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
