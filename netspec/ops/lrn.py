from __future__ import annotations

from pydantic import Field

from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, Size, register_op


class LRNAttrs(Attrs):
    size: Size
    alpha: float = Field(default=1e-4, ge=0)
    beta: float = Field(default=0.75, ge=0)
    k: float = Field(default=1.0, ge=0)


@register_op("lrn")
class LocalResponseNorm(Op):
    """Local response normalization across ``size`` neighbouring channels (AlexNet):
    ``b = a / (k + alpha/size * sum(a^2))^beta``. FLOPs: ``2*size + 3`` per element::

        inputs: {x: [96, 55, 55]}
        layers:
          - {op: lrn, size: 5, alpha: 0.0001, beta: 0.75, k: 2}
        # output: [96, 55, 55]
    """

    Attrs = LRNAttrs

    def shape(self, a: LRNAttrs, ins: list[Shape]) -> Shape:
        self.need_rank(ins[0], (2, 3), "an input")
        return ins[0]

    def flops(self, a: LRNAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(out) * (2 * a.size + 3)
