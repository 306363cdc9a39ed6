"""The op registry, the base classes every op builds on, and attribute types.

An op is a class registered under a name with ``@register_op``. It declares its
attribute model (``Attrs``, a pydantic model) and its rules: output shape, its tensors
(parameters and buffers), MACs and FLOPs. All rules are pure arithmetic on per-sample shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict

from netspec.errors import OpError
from netspec.ops._arith import numel

Shape = tuple[int, ...]
#: how an op's output looks at its input, per spatial axis (h, w): (kernel, stride, dilation)
Window = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

MAX_SIZE = 2**31 - 1  # largest kernel, channel count or spatial size accepted


class Tensor(NamedTuple):
    """A tensor a layer holds, named as in the PyTorch module's state_dict (``weight``,
    ``running_mean``); ``shape`` ``()`` is a scalar (one element)."""

    name: str
    shape: Shape
    kind: Literal["parameter", "buffer"]


class Attrs(BaseModel):
    """Base of every op's attribute model: unknown attributes are errors, values are
    strict (no silent "3" -> 3), and a model's schema is built on first use only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class NoAttrs(Attrs):
    pass


def _int(v: Any, what: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            raise ValueError(
                f"expected {what}, got {v!r} (a float: make it whole with floor(), ceil() or round(), or divide integers with //)"
            )
        raise ValueError(f"expected {what}, got {v!r}")
    if v < minimum:
        raise ValueError(f"expected {what}, got {v}")
    if v > MAX_SIZE:
        raise ValueError(f"{v} is too large (the limit is {MAX_SIZE:,})")
    return v


def size(v: Any) -> int:
    return _int(v, "a positive integer", 1)


def _count(v: Any) -> int:
    return _int(v, "a non-negative integer", 0)


def _pair(what: str, minimum: int) -> Any:
    def conv(v: Any) -> tuple[int, int]:
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise ValueError(f"expected {what} or a pair [h, w] of them, got {list(v)!r}")
            return (_int(v[0], what, minimum), _int(v[1], what, minimum))
        n = _int(v, f"{what} or a pair [h, w] of them", minimum)
        return (n, n)

    return conv


#: A positive integer (a size, a count of channels).
Size = Annotated[int, BeforeValidator(size)]
#: A non-negative integer.
Count = Annotated[int, BeforeValidator(_count)]
#: A positive integer or a pair [h, w]; stored as a pair.
SizePair = Annotated[tuple[int, int], BeforeValidator(_pair("a positive integer", 1))]
#: A non-negative integer or a pair [h, w]; stored as a pair.
CountPair = Annotated[tuple[int, int], BeforeValidator(_pair("a non-negative integer", 0))]


class Op:
    """Base of all ops. Subclasses set ``Attrs`` and override the rules they need.

    ``arity`` is (fewest, most) inputs; ``None`` for no upper bound.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    Attrs: ClassVar[type[Attrs]] = NoAttrs
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    #: the per-sample input shapes of the docstring example (for registry-driven tests)

    def shape(self, a: Any, ins: list[Shape]) -> Shape:
        raise NotImplementedError

    def tensors(self, a: Any, ins: list[Shape], out: Shape) -> list[Tensor]:
        """The layer's parameters and buffers, in the module's state_dict order: the one
        declaration that counts, backends and tests follow."""
        return []

    def params(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return self._numel(a, ins, out, "parameter")

    def buffers(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return self._numel(a, ins, out, "buffer")

    def _numel(self, a: Any, ins: list[Shape], out: Shape, kind: str) -> int:
        return sum(numel(t.shape) for t in self.tensors(a, ins, out) if t.kind == kind)

    def macs(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return 0

    def flops(self, a: Any, ins: list[Shape], out: Shape) -> int:
        return 0

    def window(self, a: Any, ins: list[Shape]) -> Window | None:
        """The spatial window of each output position, for the receptive field; None for
        ops that keep positions where they are (pointwise, per-channel, merges)."""
        return None

    @staticmethod
    def global_window(x: Shape) -> Window | None:
        """The window of an op that sees the whole ``[C, H, W]`` input at once."""
        return ((x[1], x[2]), (x[1], x[2]), (1, 1)) if len(x) == 3 else None

    @staticmethod
    def need_rank(shape: Shape, ranks: tuple[int, ...], what: str) -> None:
        if len(shape) not in ranks:
            names = {1: "[F]", 2: "[C, L]", 3: "[C, H, W]"}
            want = " or ".join(names.get(r, f"rank {r}") for r in ranks)
            raise OpError(f"expects {what} of shape {want} per sample, got {list(shape)}")


REGISTRY: dict[str, Op] = {}


def register_op(name: str, *aliases: str) -> Any:
    """Class decorator registering an op under ``name`` (and ``aliases``)."""

    def deco(cls: type[Op]) -> type[Op]:
        if not cls.__doc__ or "layers:" not in cls.__doc__:
            raise TypeError(f"op '{name}' needs a docstring with a YAML example")
        cls.name = name
        cls.aliases = aliases
        op = cls()
        for key in (name, *aliases):
            if key in REGISTRY:
                raise ValueError(f"op name '{key}' is registered twice")
            REGISTRY[key] = op
        return cls

    return deco
