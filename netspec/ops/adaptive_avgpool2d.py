from __future__ import annotations

import math

from netspec.ops.base import Attrs, Op, Shape, SizePair, Window, register_op


class AdaptiveAvgPool2dAttrs(Attrs):
    size: SizePair


def _window_total(n_in: int, n_out: int) -> int:
    """Sum of PyTorch's adaptive window lengths along one axis, where window i covers
    ``[floor(i*n_in/n_out), ceil((i+1)*n_in/n_out))``: ``n_in + n_out - gcd(n_in, n_out)``
    in closed form (the sums of the floors cancel; a ceiling exceeds its floor except at
    the gcd multiples), so a huge size costs nothing to count."""
    return n_in + n_out - math.gcd(n_in, n_out)


@register_op("adaptive_avgpool2d")
class AdaptiveAvgPool2d(Op):
    """Average pooling to a fixed output ``size`` (integer or pair), whatever the input
    size, with PyTorch's window boundaries. FLOPs: one per input element read, summed
    over the (possibly overlapping) windows::

        inputs: {x: [256, 13, 13]}
        layers:
          - {op: adaptive_avgpool2d, size: 6}
        # output: [256, 6, 6]
    """

    Attrs = AdaptiveAvgPool2dAttrs

    def shape(self, a: AdaptiveAvgPool2dAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        return (x[0], a.size[0], a.size[1])

    def window(self, a: AdaptiveAvgPool2dAttrs, ins: list[Shape]) -> Window:
        # PyTorch's windows start every n_in/n_out positions and are up to one longer
        # than ceil(n_in/n_out) when the sizes do not divide: take the largest.
        _, h, w = ins[0]
        kernel = tuple(-(-n // m) + (n % m != 0) for n, m in ((h, a.size[0]), (w, a.size[1])))
        stride = tuple(max(1, n // m) for n, m in ((h, a.size[0]), (w, a.size[1])))
        return (kernel, stride, (1, 1))  # type: ignore[return-value]

    def flops(self, a: AdaptiveAvgPool2dAttrs, ins: list[Shape], out: Shape) -> int:
        c, h, w = ins[0]
        return c * _window_total(h, a.size[0]) * _window_total(w, a.size[1])
