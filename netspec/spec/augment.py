"""The augmentations a recipe's ``augment:`` list names, one model each, validated in
the torch-free core; ``netspec.backends.train.augment`` applies them to batches."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field

from netspec.errors import did_you_mean
from netspec.spec.strict import Strict

Probability = Annotated[float, Field(ge=0, le=1)]


class Flip(Strict):
    """Mirror each image with probability ``p``."""

    _what: ClassVar[str] = "key of augmentation 'flip'"
    op: Literal["flip"] = "flip"
    p: Probability = 0.5
    direction: Literal["horizontal", "vertical"] = "horizontal"


class Crop(Strict):
    """Pad by ``padding`` pixels (zeros) and crop back to the size at a random offset."""

    _what: ClassVar[str] = "key of augmentation 'crop'"
    op: Literal["crop"] = "crop"
    padding: Annotated[int, Field(ge=0)] = 4
    p: Probability = 1.0


class Cutout(Strict):
    """Zero ``count`` squares of ``size`` pixels at random centres (clipped at the border)."""

    _what: ClassVar[str] = "key of augmentation 'cutout'"
    op: Literal["cutout"] = "cutout"
    size: Annotated[int, Field(ge=1)] = 8
    count: Annotated[int, Field(ge=1)] = 1
    p: Probability = 0.5


class Normalize(Strict):
    """``(x - mean) / std`` per channel, in training and evaluation alike; without
    ``mean``/``std`` they are measured on the training set."""

    _what: ClassVar[str] = "key of augmentation 'normalize'"
    op: Literal["normalize"] = "normalize"
    mean: list[float] | None = None  # one value, or one per channel
    std: list[Annotated[float, Field(gt=0)]] | None = None


AUGMENTATIONS: dict[str, type[Strict]] = {"flip": Flip, "crop": Crop, "cutout": Cutout, "normalize": Normalize}


def _augmentation(value: Any) -> Any:
    """``flip`` or ``{op: crop, padding: 2}``, as layers are written."""
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str):
        value = {"op": value}
    if not isinstance(value, dict) or "op" not in value:
        raise ValueError("an augmentation is a name or a mapping with 'op' (e.g. {op: crop, padding: 4})")
    name = value["op"]
    if name not in AUGMENTATIONS:
        hint = did_you_mean(str(name), AUGMENTATIONS) or "known: " + ", ".join(AUGMENTATIONS)
        raise ValueError(f"unknown augmentation {str(name)!r}; {hint}")
    return AUGMENTATIONS[name].model_validate(value)


Augmentation = Annotated[Flip | Crop | Cutout | Normalize, BeforeValidator(_augmentation)]
