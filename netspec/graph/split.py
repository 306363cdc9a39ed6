"""The ``split`` layer: one input's channels cut into parts that later layers name.

A split is not an op of the registry: the lowering expands it into one ``slice`` node
per part, named ``<split>.0``, ``<split>.1``, ... (``inputs: [s.0]``), so every
backend sees single-output nodes only. Equal parts (``parts: 2``) or given sizes
(``sizes: [24, 40]``) that add up to the input's channels.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, model_validator

from netspec.ops.base import Attrs, Size, size

#: the ``op`` of a split layer
SPLIT = "split"


def _sizes(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or len(v) < 2:
        raise ValueError(f"expected a list of two or more positive integers, got {v!r}")
    return tuple(size(n) for n in v)


class SplitAttrs(Attrs):
    parts: Size | None = None  # equal parts
    sizes: Annotated[tuple[int, ...], BeforeValidator(_sizes)] | None = None  # channels of each part

    @model_validator(mode="after")
    def _one_of(self) -> SplitAttrs:
        if (self.parts is None) == (self.sizes is None):
            raise ValueError("a split takes 'parts' (equal parts) or 'sizes' (the channels of each), one of them")
        if self.parts is not None and self.parts < 2:
            raise ValueError(f"a split makes two or more parts, got parts: {self.parts}")
        return self


def split_bounds(a: SplitAttrs, channels: int, source: str) -> list[tuple[int, int]] | str:
    """The channel range of each part, or what is wrong with the split of the
    ``channels`` of its input ``source``."""
    if a.parts is not None:
        if channels % a.parts:
            return f"cannot split the {channels} channels of '{source}' into {a.parts} equal parts"
        sizes: tuple[int, ...] = (channels // a.parts,) * a.parts
    else:
        assert a.sizes is not None
        sizes = a.sizes
        if sum(sizes) != channels:
            return f"the sizes {list(sizes)} add up to {sum(sizes)}, but its input '{source}' has {channels} channels"
    bounds, start = [], 0
    for n in sizes:
        bounds.append((start, start + n))
        start += n
    return bounds
