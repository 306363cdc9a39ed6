from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from netspec.ops.base import Attrs, Count, Op, Shape, register_op
from netspec.ops.clamp import Value


def sides(v: Any) -> Any:
    """An int for all four sides, or ``[left, right, top, bottom]`` (``F.pad``'s order
    for the last two axes: width first)."""
    if isinstance(v, (list, tuple)):
        if len(v) != 4:
            raise ValueError(f"expected [left, right, top, bottom] or one integer for all four, got {list(v)!r}")
        return tuple(v)
    return (v, v, v, v)


#: ``(left, right, top, bottom)``: non-negative amounts of the four sides of ``[C, H, W]``
Sides = Annotated[tuple[Count, Count, Count, Count], BeforeValidator(sides)]


class PadAttrs(Attrs):
    padding: Sides
    value: Value = 0.0


@register_op("pad")
class Pad(Op):
    """Constant padding of a ``[C, H, W]`` sample: ``padding`` is
    ``[left, right, top, bottom]`` (``F.pad``'s order; one integer pads all four
    sides), filled with ``value`` (0). No FLOPs. NASNet pads one side only::

        inputs: {x: [42, 83, 83]}
        layers:
          - {op: pad, padding: [0, 1, 0, 1]}
        # output: [42, 84, 84]
    """

    Attrs = PadAttrs

    def shape(self, a: PadAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        left, right, top, bottom = a.padding
        return (x[0], x[1] + top + bottom, x[2] + left + right)
