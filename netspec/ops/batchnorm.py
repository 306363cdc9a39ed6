from __future__ import annotations

from pydantic import Field

from netspec.ops._arith import numel
from netspec.ops.base import Attrs, Op, Shape, Tensor, register_op


class BatchNormAttrs(Attrs):
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True


@register_op("batchnorm")
class BatchNorm(Op):
    """Batch normalization over the channel (or feature) axis of a ``[C, H, W]`` or
    ``[F]`` input. Parameters: ``2C`` (scale and shift, with ``affine``); buffers:
    running mean and variance and the batch counter (``2C + 1``). FLOPs at inference:
    2 per element (the folded ``x*a + b``)::

        inputs: {x: [64, 56, 56]}
        layers:
          - {op: batchnorm}
        # output: [64, 56, 56]
    """

    Attrs = BatchNormAttrs

    def shape(self, a: BatchNormAttrs, ins: list[Shape]) -> Shape:
        self.need_rank(ins[0], (1, 2, 3), "an input")
        return ins[0]

    def tensors(self, a: BatchNormAttrs, ins: list[Shape], out: Shape) -> list[Tensor]:
        c = (ins[0][0],)
        held = [Tensor("weight", c, "parameter"), Tensor("bias", c, "parameter")] if a.affine else []
        if a.track_running_stats:
            held += [Tensor("running_mean", c, "buffer"), Tensor("running_var", c, "buffer")]
            held.append(Tensor("num_batches_tracked", (), "buffer"))  # a scalar: one element
        return held

    def flops(self, a: BatchNormAttrs, ins: list[Shape], out: Shape) -> int:
        return 2 * numel(out)
