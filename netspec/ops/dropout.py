from __future__ import annotations

from pydantic import Field

from netspec.ops.base import Attrs, Op, Shape, register_op


class DropoutAttrs(Attrs):
    p: float = Field(default=0.5, ge=0.0, lt=1.0)


@register_op("dropout")
class Dropout(Op):
    """Dropout with probability ``p`` (training only; no cost at inference)::

    inputs: {x: [4096]}
    layers:
      - {op: dropout, p: 0.5}
    # output: [4096]
    """

    Attrs = DropoutAttrs

    def shape(self, a: DropoutAttrs, ins: list[Shape]) -> Shape:
        return ins[0]
