from __future__ import annotations

from netspec.errors import OpError
from netspec.ops.base import Attrs, Op, Shape, register_op
from netspec.ops.pad import Sides


class CropAttrs(Attrs):
    crop: Sides


@register_op("crop")
class Crop(Op):
    """Rows and columns removed from the sides of a ``[C, H, W]`` sample: ``crop`` is
    ``[left, right, top, bottom]``, as ``pad``'s ``padding`` (one integer crops all
    four sides). No FLOPs. NASNet's ``x[:, :, 1:, 1:]`` after a pad::

        inputs: {x: [42, 84, 84]}
        layers:
          - {op: crop, crop: [1, 0, 1, 0]}
        # output: [42, 83, 83]
    """

    Attrs = CropAttrs

    def shape(self, a: CropAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        self.need_rank(x, (3,), "an input")
        left, right, top, bottom = a.crop
        h, w = x[1] - top - bottom, x[2] - left - right
        for what, size, first, second, names in (
            ("height", x[1], top, bottom, "top and bottom"),
            ("width", x[2], left, right, "left and right"),
        ):
            if size - first - second < 1:
                raise OpError(f"cropping {first} + {second} ({names}) of a {what} of {size} leaves nothing")
        return (x[0], h, w)
