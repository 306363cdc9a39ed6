"""The pydantic models of a spec's structure (top level, blocks and layer entries).

Op attributes are validated by each op's own ``Attrs`` model, looked up in the op
registry once a layer's ``op`` is known; a layer entry keeps its attributes as extras.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from netspec.spec.expr import is_expression
from netspec.spec.init import Init
from netspec.spec.recipe import Recipe

#: a layer, input or variable name: no dots (dots join scopes: ``layer2.0.conv1``)
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]


def _digits(v: Any) -> Any:
    """``name: 0`` is the name '0' (YAML reads it as a number), as torchvision names layers."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else v


#: a layer's name: inside blocks it may start with a digit (``features.3.block.0``);
#: the lowering refuses that at top level
LayerName = Annotated[
    str, BeforeValidator(_digits), StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_]*$", max_length=200)
]
#: a layer's label: one line of text
Label = Annotated[str, StringConstraints(pattern=r"^[^\n\r]+$", max_length=200)]
#: a reference to a layer: a name or a scoped instance name such as ``conv.2`` or ``s.0``
Ref = Annotated[
    str, BeforeValidator(_digits), StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.]*$", max_length=1000)
]


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (dict, list)):
        raise ValueError("expected a number, a boolean, a string or an expression")
    return v


def _plain_or_none(v: Any) -> Any:
    return v if v is None else _plain(v)


def _flag(v: Any) -> Any:
    if isinstance(v, bool) or is_expression(v):
        return v
    raise ValueError(f"expected a boolean (true or false) or an expression, got {v!r}")


# Validators are built on first use (defer_build), not at import: the CLI can then
# tell pydantic that there are no plugins before it would look for them (see cli.py).
class BlockDef(BaseModel):
    """A reusable block: layers with parameters, instantiated like an op."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    description: str = ""
    params: dict[Name, Annotated[Any, AfterValidator(_plain_or_none)]] = {}  # null: required
    inputs: list[Name] = Field(default=["x"], min_length=1)
    layers: list[Any] = Field(min_length=1)
    output: Ref | None = None  # default: the last layer


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name | None = None
    description: str = ""
    params: dict[Name, Annotated[Any, AfterValidator(_plain)]] = {}
    variants: dict[Name, dict[Name, Annotated[Any, AfterValidator(_plain)]]] = {}
    inputs: dict[Name, list[Any]] = Field(min_length=1)
    blocks: dict[Name, BlockDef] = {}
    layers: list[Any] = Field(min_length=1)
    outputs: list[Ref] | None = Field(default=None, min_length=1)
    #: the weight initialisation: a scheme, or a scheme with rules (netspec/spec/init.py)
    init: Init = "torchvision"
    #: how `netspec train` trains it (validated here, without torch)
    train: Recipe | None = None
    #: Python files of custom ops (netspec/plugins.py), relative to the spec
    plugins: list[str] = []


class LayerEntry(BaseModel):
    """One item of ``layers``; keys other than these are the op's attributes."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    op: str
    name: LayerName | None = None
    inputs: list[Ref] | None = None  # a single name is accepted and made a list
    repeat: Any = 1  # an integer or an expression: checked by the lowering once evaluated
    trainable: Annotated[Any, AfterValidator(_flag)] = True  # a boolean or an expression; no silent "yes" -> True
    when: Any = True  # a boolean or an expression; false leaves the layer out
    otherwise: Ref | None = None  # what references to a left-out layer mean (default: its first input)
    overrides: dict[int, dict[Name, Any]] | None = None  # block parameters of single instances
    #: the number of the first copy (an integer or an expression); given, a single copy is numbered too
    first: Any = None
    #: what joins a copy's name and its number: 'layer2.0', 'block_4', 'denselayer1'
    sep: Literal[".", "_", ""] = "."
    #: what people call the layer, shown beside its name (VGG's features.28 is conv5_3)
    label: Label | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
