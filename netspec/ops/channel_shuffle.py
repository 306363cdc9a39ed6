from __future__ import annotations

from netspec.errors import OpError
from netspec.ops.base import Attrs, Op, Shape, Size, register_op


class ChannelShuffleAttrs(Attrs):
    groups: Size


@register_op("channel_shuffle")
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: the channels, seen as ``groups`` rows of
    ``C/groups``, are read column by column (channel ``g*(C/groups) + i`` goes to
    ``i*groups + g``), as ``reshape [groups, C/groups, ...]``, ``permute`` and
    ``reshape`` back. ``C`` must divide by ``groups``. No FLOPs (it moves data)::

        inputs: {x: [116, 28, 28]}
        layers:
          - {op: channel_shuffle, groups: 2}
        # output: [116, 28, 28]
    """

    Attrs = ChannelShuffleAttrs

    def shape(self, a: ChannelShuffleAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (2, 3), "an input")
        if x[0] % a.groups:
            raise OpError(f"{x[0]} channels do not split into {a.groups} groups of equal size")
        return x
