"""Element-wise activations. Each costs a fixed number of FLOPs per element (the
README lists them); none has parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt

from netspec.errors import OpError
from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, register_op


class _Activation(Op):
    flops_per_element: int = 1

    def shape(self, a: Any, ins: list[Shape]) -> Shape:
        return ins[0]

    def flops(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return self.flops_per_element * numel(out)


class InplaceAttrs(Attrs):
    inplace: bool = False  # a hint for the PyTorch backend; shapes and counts ignore it


@register_op("relu")
class ReLU(_Activation):
    """``max(x, 0)``; 1 FLOP per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: relu}
    # output: [16, 8, 8]
    """

    Attrs = InplaceAttrs


@register_op("relu6")
class ReLU6(_Activation):
    """``min(max(x, 0), 6)`` (MobileNet); 2 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: relu6}
    # output: [16, 8, 8]
    """

    Attrs = InplaceAttrs
    flops_per_element = 2


class LeakyReLUAttrs(InplaceAttrs):
    negative_slope: float = Field(default=0.01, ge=0)


@register_op("leaky_relu")
class LeakyReLU(_Activation):
    """``x if x > 0 else negative_slope * x``; 2 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: leaky_relu, negative_slope: 0.1}
    # output: [16, 8, 8]
    """

    Attrs = LeakyReLUAttrs
    flops_per_element = 2


@register_op("sigmoid")
class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``; 4 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: sigmoid}
    # output: [16, 8, 8]
    """

    flops_per_element = 4


@register_op("tanh")
class Tanh(_Activation):
    """Hyperbolic tangent (LeNet-5); 5 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: tanh}
    # output: [16, 8, 8]
    """

    flops_per_element = 5


class SoftmaxAttrs(Attrs):
    dim: StrictInt = 1  # numbered with the batch axis as 0, as in PyTorch


@register_op("softmax")
class Softmax(_Activation):
    """Softmax along ``dim`` (batch axis = 0, so the default 1 is the class or channel
    axis); 3 FLOPs per element (exponential, sum, division)::

        inputs: {x: [1000]}
        layers:
          - {op: softmax}
        # output: [1000]
    """

    Attrs = SoftmaxAttrs
    flops_per_element = 3

    def shape(self, a: SoftmaxAttrs, ins: list[Shape]) -> Shape:
        rank = len(ins[0]) + 1
        if not (1 <= (a.dim + rank if a.dim < 0 else a.dim) < rank):
            raise OpError(f"dim={a.dim} is not an axis of a {list(ins[0])} input (axis 0 is the batch)")
        return ins[0]


@register_op("silu", "swish")
class SiLU(_Activation):
    """``x * sigmoid(x)`` (also called swish; EfficientNet); 5 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: silu}
    # output: [16, 8, 8]
    """

    Attrs = InplaceAttrs
    flops_per_element = 5


@register_op("hardswish")
class Hardswish(_Activation):
    """``x * relu6(x + 3) / 6`` (MobileNetV3); 5 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: hardswish}
    # output: [16, 8, 8]
    """

    Attrs = InplaceAttrs
    flops_per_element = 5


@register_op("hardsigmoid")
class Hardsigmoid(_Activation):
    """``relu6(x + 3) / 6`` (MobileNetV3's squeeze-and-excitation gate, PyTorch's
    ``F.hardsigmoid``); 4 FLOPs per element (an addition, two comparisons, a division)::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: hardsigmoid}
    # output: [16, 8, 8]
    """

    Attrs = InplaceAttrs
    flops_per_element = 4


class GELUAttrs(Attrs):
    approximate: Literal["none", "tanh"] = "none"


@register_op("gelu")
class GELU(_Activation):
    """``x * Phi(x)``, exact or with the ``tanh`` approximation; 8 FLOPs per element::

    inputs: {x: [16, 8, 8]}
    layers:
      - {op: gelu}
    # output: [16, 8, 8]
    """

    Attrs = GELUAttrs
    flops_per_element = 8
