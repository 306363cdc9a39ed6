from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from netspec.errors import OpError
from netspec.ops._arith import numel, window_output
from netspec.ops.base import Attrs, CountPair, Op, Shape, Size, SizePair, Tensor, Window, register_op


def _dims(value: Any) -> tuple[int, ...] | None:
    """The dimensions of a rectangular nested list (or tuple) of numbers, else None."""
    if not isinstance(value, (list, tuple)):
        return () if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if not value:
        return None
    inner = {_dims(v) for v in value}
    if len(inner) != 1 or None in inner:
        return None
    (rest,) = inner
    return None if rest is None else (len(value), *rest)


def _fixed_weight(value: Any) -> Any:
    """A fixed kernel: ``[out, in/groups, kh, kw]`` or ``[kh, kw]`` nested lists of
    finite numbers, stored as 4-D nested tuples of floats."""
    if value is None:
        return None
    dims = _dims(value)
    if dims is None or len(dims) not in (2, 4):
        raise ValueError(
            "expected a rectangular nested list of numbers, [out, in/groups, kh, kw] or [kh, kw] "
            "(one input and one output channel)"
        )
    if len(dims) == 2:
        value = [[value]]

    def floats(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return tuple(floats(x) for x in v)
        if not math.isfinite(v):
            raise ValueError(f"the weight's values must be finite numbers, got {v}")
        return float(v)

    return floats(value)


def _n(count: int) -> str:
    return f"{count} value" + ("" if count == 1 else "s")


def _bias(value: Any) -> Any:
    if isinstance(value, list):
        dims = _dims(value)
        if dims is None or len(dims) != 1 or not all(math.isfinite(v) for v in value):
            raise ValueError("expected true, false or a list of numbers (one per output channel)")
        return tuple(float(v) for v in value)
    if not isinstance(value, bool):
        raise ValueError(f"expected true, false or a list of numbers (one per output channel), got {value!r}")
    return value


class Conv2dAttrs(Attrs):
    out: Size | None = None
    kernel: SizePair
    stride: SizePair = (1, 1)
    padding: CountPair | Literal["same", "valid"] = (0, 0)
    dilation: SizePair = (1, 1)
    groups: Size | Literal["depthwise"] = 1
    #: true/false, or fixed values (one per output channel) for teaching examples
    bias: Annotated[bool | tuple[float, ...], BeforeValidator(_bias)] = True
    #: a fixed kernel written in the spec (see ``_fixed_weight``); stored 4-D
    weight: Annotated[Any, BeforeValidator(_fixed_weight)] = None

    @model_validator(mode="before")
    @classmethod
    def _from_weight(cls, data: Any) -> Any:
        # A fixed kernel implies its size and output channels, and no bias unless given.
        if isinstance(data, dict) and isinstance(data.get("weight"), list):
            dims = _dims(data["weight"])
            if dims is not None and len(dims) in (2, 4):
                data = {"kernel": list(dims[-2:]), "out": dims[0] if len(dims) == 4 else 1, "bias": False, **data}
            else:  # the weight's own error says what is wrong; not a missing kernel
                data = {"kernel": 1, "out": 1, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> Conv2dAttrs:
        if self.out is None and self.groups != "depthwise":
            raise ValueError("missing attribute 'out' (the number of output channels)")
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError("padding 'same' needs stride 1 (as in PyTorch); give the padding explicitly")
        if self.weight is not None:
            w = _dims(self.weight) or ()
            if tuple(w[2:]) != self.kernel:
                raise ValueError(f"the fixed weight is {w[2]}x{w[3]} but kernel is {self.kernel[0]}x{self.kernel[1]}")
            if self.out is not None and w[0] != self.out:
                raise ValueError(f"the fixed weight has {w[0]} output channels but out is {self.out}")
        if isinstance(self.bias, tuple) and self.out is not None and len(self.bias) != self.out:
            raise ValueError(f"bias gives {_n(len(self.bias))} but out is {self.out} (one value per output channel)")
        return self


@register_op("conv2d")
class Conv2d(Op):
    """2-D convolution over a ``[C, H, W]`` input.

    ``out`` output channels, ``kernel``/``stride``/``dilation`` as an integer or a
    pair, ``padding`` as an integer, a pair, ``same`` (output keeps the input size,
    stride 1 only) or ``valid`` (no padding). ``groups: depthwise`` sets groups to the
    input channels (and ``out`` defaults to them). Output size per axis:
    ``floor((n + 2p - d(k-1) - 1) / s) + 1``. For teaching, ``weight`` fixes the
    kernel: nested lists ``[out, in/groups, kh, kw]``, or ``[kh, kw]`` for one input
    and one output channel; ``kernel`` and ``out`` then follow from it, and the bias
    is off unless ``bias`` gives its values (a list, one per output channel)::

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
        out, groups = self.resolve(a, x[0])
        if a.weight is not None and len(a.weight[0]) != x[0] // groups:
            raise OpError(
                f"the fixed weight has {len(a.weight[0])} input channel(s) per group, "
                f"but the input has {x[0]} channel(s) in {groups} group(s)"
            )
        if isinstance(a.bias, tuple) and len(a.bias) != out:
            raise OpError(f"bias gives {_n(len(a.bias))} but the layer has {out} output channels")
        if a.padding == "same":
            return (out, x[1], x[2])
        pad = (0, 0) if a.padding == "valid" else a.padding
        h, w = window_output("convolution", (x[1], x[2]), a.kernel, a.stride, pad, a.dilation)
        return (out, h, w)

    def tensors(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> list[Tensor]:
        c_out, groups = self.resolve(a, ins[0][0])
        weight = Tensor("weight", (c_out, ins[0][0] // groups, *a.kernel), "parameter")
        return [weight, Tensor("bias", (c_out,), "parameter")] if a.bias else [weight]

    def macs(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> int:
        _, groups = self.resolve(a, ins[0][0])
        return numel(out) * (ins[0][0] // groups) * a.kernel[0] * a.kernel[1]

    def window(self, a: Conv2dAttrs, ins: list[Shape]) -> Window:
        return (a.kernel, a.stride, a.dilation)

    def flops(self, a: Conv2dAttrs, ins: list[Shape], out: Shape) -> int:
        return 2 * self.macs(a, ins, out) + (numel(out) if a.bias else 0)
