"""Element-wise clamping: ``clamp`` (either bound optional) and ``hardtanh`` (PyTorch's,
bounds -1 and 1 by default). Both count 2 FLOPs per element (a comparison with each
bound, as ``relu6`` counts); neither has parameters."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, model_validator

from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, register_op


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v}")
    return v


#: a finite number (an int is taken as the float it equals)
Value = Annotated[float, AfterValidator(_finite)]


class ClampAttrs(Attrs):
    min: Value | None = None
    max: Value | None = None

    @model_validator(mode="after")
    def _check(self) -> Any:
        if self.min is None and self.max is None:
            raise ValueError("clamp needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        return self


class HardtanhAttrs(Attrs):
    min_val: Value = -1.0
    max_val: Value = 1.0
    inplace: bool = False  # a hint for the PyTorch backend; shapes and counts ignore it

    @model_validator(mode="after")
    def _check(self) -> Any:
        if self.min_val > self.max_val:
            raise ValueError(f"min_val {self.min_val:g} is greater than max_val {self.max_val:g}")
        return self


class _Clamp(Op):
    def shape(self, a: Any, ins: list[Shape]) -> Shape:
        return ins[0]

    def flops(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return 2 * numel(out)


@register_op("clamp")
class Clamp(_Clamp):
    """``min(max(x, min), max)``; a missing bound does not clamp (``{op: clamp, min: 0}``
    is a ReLU). 2 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: clamp, min: 0, max: 6}
    # output: [16, 8, 8]
    """

    Attrs = ClampAttrs


@register_op("hardtanh")
class Hardtanh(_Clamp):
    """PyTorch's ``hardtanh``: ``clamp`` to ``[min_val, max_val]`` (-1 and 1 by
    default), and like the activations it can run in place. 2 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: hardtanh, min_val: 0, max_val: 6}
    # output: [16, 8, 8]
    """

    Attrs = HardtanhAttrs
