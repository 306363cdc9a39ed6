"""An exponential moving average of a module's weights (recipe key ``ema``), updated
after every optimizer step and used for validation, test and the saved model.

After update ``n`` (0-based) the averaged parameters are
``ema = d * ema + (1 - d) * param`` with ``d = min(decay, (1 + n) / (10 + n))``: the
warm-up keeps the start (d = 0.1, 0.18, ...) from averaging in the random
initialisation for thousands of steps. Buffers (BatchNorm's running statistics) are
copied, not averaged."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self._ours: list[torch.Tensor] = list(self.module.parameters())
        self._theirs: list[torch.Tensor] = list(model.parameters())
        self._ours_b = list(self.module.buffers())
        self._theirs_b = list(model.buffers())

    def factor(self) -> float:
        """The decay of the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.factor()
        self.updates += 1
        torch._foreach_lerp_(self._ours, self._theirs, weight)
        if self._ours_b:
            torch._foreach_copy_(self._ours_b, self._theirs_b)

    def state(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates}

    def restore(self, weights: dict[str, Any], state: dict[str, Any]) -> None:
        self.module.load_state_dict(weights)
        self.updates = int(state["updates"])
