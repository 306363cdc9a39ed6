from __future__ import annotations

from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, Window, register_op


class GlobalPoolAttrs(Attrs):
    flatten: bool = False  # give [C] instead of [C, 1, 1]


class _GlobalPool(Op):
    Attrs = GlobalPoolAttrs

    def shape(self, a: GlobalPoolAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        return (x[0],) if a.flatten else (x[0], 1, 1)

    def window(self, a: GlobalPoolAttrs, ins: list[Shape]) -> Window | None:
        return self.global_window(ins[0])


@register_op("global_avgpool")
class GlobalAvgPool(_GlobalPool):
    """Average over all spatial positions: ``[C, H, W]`` -> ``[C, 1, 1]`` (or ``[C]``
    with ``flatten: true``). FLOPs: ``H*W`` per channel::

        inputs: {x: [512, 7, 7]}
        layers:
          - {op: global_avgpool, flatten: true}
        # output: [512]
    """

    def flops(self, a: GlobalPoolAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(ins[0])


@register_op("global_maxpool")
class GlobalMaxPool(_GlobalPool):
    """Maximum over all spatial positions: ``[C, H, W]`` -> ``[C, 1, 1]``. FLOPs:
    ``H*W - 1`` comparisons per channel::

        inputs: {x: [512, 7, 7]}
        layers:
          - {op: global_maxpool}
        # output: [512, 1, 1]
    """

    def flops(self, a: GlobalPoolAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(ins[0]) - ins[0][0]
