from __future__ import annotations

from netspec.errors import OpError
from netspec.ops._arith import broadcast, numel
from netspec.ops.base import Op, Shape, register_op


@register_op("multiply")
class Multiply(Op):
    """Element-wise product of two or more inputs of the same rank with broadcasting,
    e.g. a ``[C, 1, 1]`` gate times a ``[C, H, W]`` feature map (squeeze-and-excitation);
    ``n - 1`` FLOPs per output element. Inputs of different ranks are refused: with
    the batch axis in front, PyTorch would align a ``[N, C]`` gate with the last axes
    of ``[N, C, H, W]``, not with ``C``::

        inputs: {x: [64, 56, 56]}
        layers:
          - {op: global_avgpool, name: squeeze}
          - {op: sigmoid, name: gate}
          - {op: multiply, inputs: [x, gate]}
        # output: [64, 56, 56]
    """

    arity = (2, None)

    def shape(self, a: object, ins: list[Shape]) -> Shape:
        bad = next((i for i in range(1, len(ins)) if len(ins[i]) != len(ins[0])), None)
        if bad is not None:
            raise OpError(
                "cannot multiply inputs of different ranks (the batch axis would be broadcast against a "
                "per-sample axis); give the smaller input size-1 axes, e.g. [C, 1, 1] for a gate of [C, H, W]",
                0,
                bad,
            )
        try:
            return broadcast(ins)
        except OpError:
            bad = next((i for i in range(1, len(ins)) if not _broadcasts(ins[0], ins[i])), len(ins) - 1)
            raise OpError("cannot multiply: the shapes do not broadcast", 0, bad) from None

    def flops(self, a: object, ins: list[Shape], out: Shape) -> int:
        return (len(ins) - 1) * numel(out)


def _broadcasts(a: Shape, b: Shape) -> bool:
    try:
        broadcast([a, b])
        return True
    except OpError:
        return False
