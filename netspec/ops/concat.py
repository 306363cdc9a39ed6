from __future__ import annotations

from pydantic import StrictInt

from netspec.errors import OpError
from netspec.ops.base import Attrs, Op, Shape, register_op


class ConcatAttrs(Attrs):
    dim: StrictInt = 1  # numbered with the batch axis as 0: 1 is the channel axis


@register_op("concat")
class Concat(Op):
    """Concatenation of two or more inputs along ``dim`` (default: channels). All other
    axes must agree. No FLOPs::

        inputs: {x: [192, 28, 28]}
        layers:
          - {op: conv2d, name: b1, out: 64, kernel: 1}
          - {op: conv2d, name: b2, out: 128, kernel: 3, padding: 1, inputs: [x]}
          - {op: concat, inputs: [b1, b2]}
        # output: [192, 28, 28]
    """

    Attrs = ConcatAttrs
    arity = (2, None)

    def shape(self, a: ConcatAttrs, ins: list[Shape]) -> Shape:
        first = ins[0]
        rank = len(first) + 1
        dim = a.dim + rank if a.dim < 0 else a.dim
        if not 1 <= dim < rank:
            raise OpError(f"dim={a.dim} is not an axis of a {list(first)} input (axis 0 is the batch)")
        axis = dim - 1
        for i, s in enumerate(ins[1:], 1):
            if len(s) != len(first):
                raise OpError("cannot concatenate tensors of different ranks", 0, i)
            if any(s[k] != first[k] for k in range(len(s)) if k != axis):
                what = "spatial sizes" if axis == 0 and len(s) == 3 else f"sizes off axis {dim}"
                raise OpError(f"cannot concatenate along dim {dim}: the {what} differ", 0, i)
        return (*first[:axis], sum(s[axis] for s in ins), *first[axis + 1 :])
