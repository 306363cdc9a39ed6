from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, StrictInt

from netspec.errors import OpError
from netspec.ops.base import Attrs, Op, Shape, Window, register_op


def _axes(v: Any) -> Any:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"expected a list of axes such as [1, 2, 0], got {v!r}")
    return tuple(v)


class PermuteAttrs(Attrs):
    #: the per-sample axes in their new order (0 is the first axis after the batch)
    dims: Annotated[tuple[StrictInt, ...], BeforeValidator(_axes)]


@register_op("permute")
class Permute(Op):
    """The per-sample axes reordered: output axis ``i`` is input axis ``dims[i]``,
    axes numbered per sample (``[C, H, W]`` is 0, 1, 2; the batch axis stays first).
    No FLOPs::

        inputs: {x: [3, 8, 6]}
        layers:
          - {op: permute, dims: [1, 2, 0]}
        # output: [8, 6, 3]
    """

    Attrs = PermuteAttrs

    def shape(self, a: PermuteAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        if sorted(a.dims) != list(range(len(x))):
            hint = ""
            if len(a.dims) == len(x) + 1 and a.dims[0] == 0:
                hint = f" (the batch axis is not numbered: write {[d - 1 for d in a.dims[1:]]})"
            raise OpError(
                f"dims {list(a.dims)} is not an order of the {len(x)} per-sample axes of a {list(x)} input, "
                f"0 to {len(x) - 1}{hint}"
            )
        return tuple(x[d] for d in a.dims)

    def window(self, a: PermuteAttrs, ins: list[Shape]) -> Window | None:
        return None if tuple(a.dims) == tuple(range(len(ins[0]))) else self.global_window(ins[0])
