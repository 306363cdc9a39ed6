from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from netspec.errors import OpError
from netspec.ops._arith import numel, window_output
from netspec.ops.base import Attrs, CountPair, Op, Shape, Size, SizePair, register_op


class Conv2dAttrs(Attrs):
    out: Size | None = None
    kernel: SizePair
    stride: SizePair = (1, 1)
    padding: CountPair | Literal["same", "valid"] = (0, 0)
    dilation: SizePair = (1, 1)
    groups: Size | Literal["depthwise"] = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self) -> Conv2dAttrs:
        if self.out is None and self.groups != "depthwise":
            raise ValueError("missing attribute 'out' (the number of output channels)")
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError("padding 'same' needs stride 1 (as in PyTorch); give the padding explicitly")
        return self


@register_op("conv2d")
class Conv2d(Op):
    """2-D convolution over a ``[C, H, W]`` input.

    ``out`` output channels, ``kernel``/``stride``/``dilation`` as an integer or a
    pair, ``padding`` as an integer, a pair, ``same`` (output keeps the input size,
    stride 1 only) or ``valid`` (no padding). ``groups: depthwise`` sets groups to the
    input channels (and ``out`` defaults to them). Output size per axis:
    ``floor((n + 2p - d(k-1) - 1) / s) + 1``::

        inputs: {x: [3, 32, 32]}
        layers:
          - {op: conv2d, name: conv1, out: 16, kernel: 3, stride: 2, padding: 1}
        # output: [16, 16, 16]
    """

    Attrs = Conv2dAttrs

    @staticmethod
    def resolve(a: Conv2dAttrs, c_in: int) -> tuple[int, int]:
        """(output channels, groups) once the input channels are known."""
        groups = c_in if a.groups == "depthwise" else a.groups
        out = a.out if a.out is not None else c_in
        if c_in % groups or out % groups:
            raise OpError(
                f"groups={groups} must divide both the input channels ({c_in}) and the output channels ({out})"
            )
        return out, groups

    def shape(self, a: Conv2dAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        out, _ = self.resolve(a, x[0])
        if a.padding == "same":
            return (out, x[1], x[2])
        pad = (0, 0) if a.padding == "valid" else a.padding
        h, w = window_output("convolution", (x[1], x[2]), a.kernel, a.stride, pad, a.dilation)
        return (out, h, w)

    def params(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> int:
        c_out, groups = self.resolve(a, ins[0][0])
        return c_out * (ins[0][0] // groups) * a.kernel[0] * a.kernel[1] + (c_out if a.bias else 0)

    def macs(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> int:
        _, groups = self.resolve(a, ins[0][0])
        return numel(out) * (ins[0][0] // groups) * a.kernel[0] * a.kernel[1]

    def flops(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> int:
        return 2 * self.macs(a, ins, out) + (numel(out) if a.bias else 0)
