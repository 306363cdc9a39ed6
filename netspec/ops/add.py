from __future__ import annotations

from netspec.errors import OpError
from netspec.ops._arith import numel
from netspec.ops.base import Op, Shape, register_op


@register_op("add")
class Add(Op):
    """Element-wise sum of two or more inputs of the same shape (residual
    connections); ``n - 1`` FLOPs per output element for ``n`` inputs::

        inputs: {x: [64, 56, 56]}
        layers:
          - {op: conv2d, name: branch, out: 64, kernel: 3, padding: same}
          - {op: add, inputs: [x, branch]}
        # output: [64, 56, 56]
    """

    arity = (2, None)

    def shape(self, a: object, ins: list[Shape]) -> Shape:
        for i, s in enumerate(ins[1:], 1):
            if s != ins[0]:
                raise OpError("cannot add tensors of different shapes", 0, i)
        return ins[0]

    def flops(self, a: object, ins: list[Shape], out: Shape) -> int:
        return (len(ins) - 1) * numel(out)
