from __future__ import annotations

from pydantic import StrictInt

from netspec.errors import OpError
from netspec.ops.base import Attrs, Op, Shape, register_op


class SliceAttrs(Attrs):
    start: StrictInt = 0  # the first channel taken; negative counts from the end
    end: StrictInt | None = None  # the channel after the last taken; None: to the end


@register_op("slice")
class Slice(Op):
    """A range of the input's channels, ``start`` to ``end`` (exclusive), with Python's
    negative and omitted bounds (``end: -2`` leaves out the last two; no ``end`` takes
    the rest). A view of its input: no FLOPs. ``split`` layers are made of these::

        inputs: {x: [116, 28, 28]}
        layers:
          - {op: slice, start: 0, end: 58}
        # output: [58, 28, 28]
    """

    Attrs = SliceAttrs

    @staticmethod
    def bounds(a: SliceAttrs, channels: int) -> tuple[int, int]:
        """The channel range ``[lo, hi)`` the slice takes of ``channels``."""
        lo = a.start + channels if a.start < 0 else a.start
        hi = channels if a.end is None else (a.end + channels if a.end < 0 else a.end)
        end = "the end" if a.end is None else str(a.end)
        if not 0 <= lo < channels or not lo < hi <= channels:
            raise OpError(f"channels {a.start} to {end} are not a non-empty range of {channels} channels")
        return lo, hi

    def shape(self, a: SliceAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        lo, hi = self.bounds(a, x[0])
        return (hi - lo, *x[1:])
