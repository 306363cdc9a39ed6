from __future__ import annotations

from netspec.ops.base import Attrs, Op, Shape, Size, register_op


class InputAttrs(Attrs):
    shape: tuple[Size, ...]  # checked by the lowering, which knows where each axis was written


@register_op("input")
class Input(Op):
    """A graph input with a per-sample shape. Written under the spec's ``inputs``::

    inputs: {image: [3, 32, 32]}
    layers:
      - {op: relu}
    # output: [3, 32, 32]
    """

    Attrs = InputAttrs
    arity = (0, 0)

    def shape(self, a: InputAttrs, ins: list[Shape]) -> Shape:
        return tuple(a.shape)
