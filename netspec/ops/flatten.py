from __future__ import annotations

from pydantic import StrictInt

from netspec.errors import OpError
from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, Window, register_op


class FlattenAttrs(Attrs):
    start_dim: StrictInt = 1  # counted with the batch axis, as in torch.flatten
    end_dim: StrictInt = -1


@register_op("flatten")
class Flatten(Op):
    """Flatten axes ``start_dim..end_dim`` (numbered with the batch axis as 0, as in
    PyTorch; the default flattens a sample to ``[F]``)::

        inputs: {x: [16, 5, 5]}
        layers:
          - {op: flatten}
        # output: [400]
    """

    Attrs = FlattenAttrs

    def shape(self, a: FlattenAttrs, ins: list[Shape]) -> Shape:
        full = (1, *ins[0])  # with the batch axis
        rank = len(full)
        start = a.start_dim + rank if a.start_dim < 0 else a.start_dim
        end = a.end_dim + rank if a.end_dim < 0 else a.end_dim
        if not (1 <= start <= end < rank):
            raise OpError(
                f"start_dim={a.start_dim}, end_dim={a.end_dim} do not select axes of a "
                f"{list(ins[0])} input (axis 0 is the batch; per-sample axes are 1..{rank - 1})"
            )
        return (*full[1:start], numel(full[start : end + 1]), *full[end + 1 :])

    def window(self, a: FlattenAttrs, ins: list[Shape]) -> Window | None:
        # merging a spatial axis into features lets every output see the whole input
        return self.global_window(ins[0]) if len(self.shape(a, ins)) < len(ins[0]) else None
