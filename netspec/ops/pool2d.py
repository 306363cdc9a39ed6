from __future__ import annotations

from typing import Any

from pydantic import model_validator

from netspec.errors import OpError
from netspec.ops._arith import numel, window_output
from netspec.ops.base import Attrs, CountPair, Op, Shape, SizePair, Window, register_op


class _PoolAttrs(Attrs):
    kernel: SizePair
    stride: SizePair | None = None  # defaults to the kernel
    padding: CountPair = (0, 0)
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _check(self) -> Any:
        for axis in (0, 1):
            if 2 * self.padding[axis] > self.kernel[axis]:
                raise ValueError(
                    f"padding {self.padding[axis]} is more than half the kernel {self.kernel[axis]} (PyTorch refuses it)"
                )
        return self


class MaxPool2dAttrs(_PoolAttrs):
    dilation: SizePair = (1, 1)


class AvgPool2dAttrs(_PoolAttrs):
    count_include_pad: bool = True


def _empty_window(size: int, count: int, stride: int, pad: int, dilation: int) -> int | None:
    """The first output whose dilated window has no tap inside the input, or None.

    A window starting at ``e >= 0`` holds input element ``e`` (every window starts
    before the input's end), and one starting in the left padding reaches into the
    input, so its first tap at or after 0 is ``e mod dilation``; the window is empty
    when that tap is past the input, which needs ``dilation > size``.
    """
    if dilation <= size:
        return None
    for i in range(min(count, -(-pad // stride))):  # the windows that start in the padding
        if (i * stride - pad) % dilation >= size:
            return i
    return None


class _Pool2d(Op):
    kind = ""

    def shape(self, a: Any, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        stride = a.stride or a.kernel
        dilation = getattr(a, "dilation", (1, 1))
        h, w = window_output(self.kind, (x[1], x[2]), a.kernel, stride, a.padding, dilation, a.ceil_mode)
        return (x[0], h, w)

    def window(self, a: Any, ins: list[Shape]) -> Window:
        return (a.kernel, a.stride or a.kernel, getattr(a, "dilation", (1, 1)))


@register_op("maxpool2d")
class MaxPool2d(_Pool2d):
    """2-D max pooling. ``stride`` defaults to ``kernel``; ``ceil_mode`` rounds the
    output size up as PyTorch does. FLOPs: ``kh*kw - 1`` comparisons per output::

        inputs: {x: [64, 55, 55]}
        layers:
          - {op: maxpool2d, kernel: 3, stride: 2}
        # output: [64, 27, 27]
    """

    Attrs = MaxPool2dAttrs
    kind = "max-pooling"

    def shape(self, a: MaxPool2dAttrs, ins: list[Shape]) -> Shape:
        out = super().shape(a, ins)
        stride = a.stride or a.kernel
        for axis, what in ((0, "height"), (1, "width")):
            i = _empty_window(ins[0][axis + 1], out[axis + 1], stride[axis], a.padding[axis], a.dilation[axis])
            if i is not None:
                # PyTorch gives -inf there (onnxruntime -3.4e38) and its backward
                # writes out of bounds: the geometry is refused.
                raise OpError(
                    f"output {i} along the {what} is a window of dilation {a.dilation[axis]} that takes no input "
                    f"element (input {ins[0][axis + 1]}, padding {a.padding[axis]}): every tap lies in the padding"
                )
        return out

    def flops(self, a: MaxPool2dAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(out) * (a.kernel[0] * a.kernel[1] - 1)


@register_op("avgpool2d")
class AvgPool2d(_Pool2d):
    """2-D average pooling. ``stride`` defaults to ``kernel``. FLOPs: ``kh*kw`` per
    output (``kh*kw - 1`` additions and a division)::

        inputs: {x: [6, 28, 28]}
        layers:
          - {op: avgpool2d, kernel: 2}
        # output: [6, 14, 14]
    """

    Attrs = AvgPool2dAttrs
    kind = "average-pooling"

    def flops(self, a: AvgPool2dAttrs, ins: list[Shape], out: Shape) -> int:
        return numel(out) * a.kernel[0] * a.kernel[1]
