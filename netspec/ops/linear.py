from __future__ import annotations

from netspec.errors import OpError
from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, Size, Tensor, register_op


class LinearAttrs(Attrs):
    out: Size
    bias: bool = True


@register_op("linear")
class Linear(Op):
    """Fully connected layer on the last axis (``[F]`` -> ``[out]``)::

    inputs: {x: [400]}
    layers:
      - {op: linear, name: fc1, out: 120}
    # output: [120]
    """

    Attrs = LinearAttrs

    def shape(self, a: LinearAttrs, ins: list[Shape]) -> Shape:
        if len(ins[0]) > 2:
            raise OpError(f"expects [F] (or [L, F]) per sample, got {list(ins[0])}: add a flatten layer before it")
        return (*ins[0][:-1], a.out)

    def tensors(self, a: LinearAttrs, ins: list[Shape], out: Shape) -> list[Tensor]:
        weight = Tensor("weight", (a.out, ins[0][-1]), "parameter")
        return [weight, Tensor("bias", (a.out,), "parameter")] if a.bias else [weight]

    def macs(self, a: LinearAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(out) * ins[0][-1]

    def flops(self, a: LinearAttrs, ins: list[Shape], out: Shape) -> int:
        return 2 * self.macs(a, ins, out) + (numel(out) if a.bias else 0)
