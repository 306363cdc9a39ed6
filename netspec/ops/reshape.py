from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from netspec.errors import OpError
from netspec.ops._arith import numel
from netspec.ops.base import MAX_SIZE, Attrs, Op, Shape, Window, register_op


def _dim(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not (v == -1 or 1 <= v <= MAX_SIZE):
        raise ValueError(f"expected a positive size or -1 (the one size inferred), got {v!r}")
    return v


def _sizes(v: Any) -> Any:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"expected a list of sizes such as [2, 32, -1], got {v!r}")
    return tuple(v)


def _one_inferred(v: tuple[int, ...]) -> tuple[int, ...]:
    if not v:
        raise ValueError("expected at least one size")
    if v.count(-1) > 1:
        raise ValueError(f"at most one size may be -1, got {list(v)}")
    return v


class ReshapeAttrs(Attrs):
    #: the per-sample shape (the batch axis is kept); one size may be -1
    shape: Annotated[
        tuple[Annotated[int, BeforeValidator(_dim)], ...], BeforeValidator(_sizes), AfterValidator(_one_inferred)
    ]


@register_op("reshape")
class Reshape(Op):
    """A sample's elements, in order, laid out as ``shape`` (per sample: the batch axis
    is kept; one size may be ``-1``, inferred from the others). The element counts must
    agree. No FLOPs::

        inputs: {x: [64, 7, 7]}
        layers:
          - {op: reshape, shape: [2, 32, -1]}
        # output: [2, 32, 49]
    """

    Attrs = ReshapeAttrs

    def shape(self, a: ReshapeAttrs, ins: list[Shape]) -> Shape:
        size = numel(ins[0])
        known = numel(tuple(d for d in a.shape if d != -1))
        if -1 in a.shape:
            if size % known:
                raise OpError(
                    f"cannot reshape {list(ins[0])} ({size} elements) into {list(a.shape)}: "
                    f"{size} is not a multiple of {known}"
                )
            return tuple(size // known if d == -1 else d for d in a.shape)
        if known != size:
            raise OpError(f"cannot reshape {list(ins[0])} ({size} elements) into {list(a.shape)} ({known} elements)")
        return a.shape

    def window(self, a: ReshapeAttrs, ins: list[Shape]) -> Window | None:
        # unless the spatial axes stay as they are, an output position mixes the input's
        out = self.shape(a, ins)
        return None if len(ins[0]) == 3 and out[1:] == ins[0][1:] else self.global_window(ins[0])
