"""The augmentations a recipe's ``augment:`` list names, one model each, validated in
the torch-free core; ``netspec.backends.train.augment`` applies them to batches."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from netspec.errors import did_you_mean
from netspec.spec.strict import Strict

Probability = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"a range [low, high]; got low {value[0]} > high {value[1]}")
    return value


def _share(value: tuple[float, float]) -> tuple[float, float]:
    if value[1] > 1:
        raise ValueError(f"a share of the image's area, at most 1; got {value[1]}")
    return value


#: ``[low, high]``, drawn uniformly (``ratio``: log-uniformly)
Range = Annotated[tuple[Positive, Positive], AfterValidator(_ordered)]
Share = Annotated[Range, AfterValidator(_share)]


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


class Rotate(Strict):
    """Rotate each image with probability ``p`` by an angle drawn uniformly in
    [-degrees, degrees] (positive: counter-clockwise) about its centre; corners that
    come from outside the image are ``fill``."""

    _what: ClassVar[str] = "key of augmentation 'rotate'"
    op: Literal["rotate"] = "rotate"
    degrees: Annotated[float, Field(ge=0, le=180)] = 15.0
    p: Probability = 0.5
    fill: float = 0.0


class ResizedCrop(Strict):
    """With probability ``p``, crop a box of ``scale`` times the image's area and
    aspect ratio (width / height) in ``ratio`` at a random place, resized back to
    the image's size (bilinear): the ImageNet training crop."""

    _what: ClassVar[str] = "key of augmentation 'resized_crop'"
    op: Literal["resized_crop"] = "resized_crop"
    scale: Share = (0.08, 1.0)
    ratio: Range = (3 / 4, 4 / 3)
    p: Probability = 1.0


class Scale(Strict):
    """Zoom each image with probability ``p`` by a factor drawn uniformly in
    ``factor`` about its centre (> 1 magnifies), keeping its size; what comes from
    outside the image is ``fill``."""

    _what: ClassVar[str] = "key of augmentation 'scale'"
    op: Literal["scale"] = "scale"
    factor: Range = (0.9, 1.1)
    p: Probability = 0.5
    fill: float = 0.0


class Color(Strict):
    """With probability ``p``, jitter brightness, contrast and saturation by factors
    drawn in [max(0, 1 - strength), 1 + strength] and shift the hue by a fraction of the
    colour circle drawn in [-hue, hue], in that order; 0 leaves that part out."""

    _what: ClassVar[str] = "key of augmentation 'color'"
    op: Literal["color"] = "color"
    brightness: Annotated[float, Field(ge=0)] = 0.4
    contrast: Annotated[float, Field(ge=0)] = 0.4
    saturation: Annotated[float, Field(ge=0)] = 0.4
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    p: Probability = 0.8


class CutMix(Strict):
    """With probability ``p`` per image, paste a box from another image of the batch
    (its side sqrt(1 - lam) times the image's, lam ~ Beta(alpha, alpha), centred at a
    random pixel, clipped at the border); the target mixes the two labels by the area
    actually pasted."""

    _what: ClassVar[str] = "key of augmentation 'cutmix'"
    op: Literal["cutmix"] = "cutmix"
    alpha: Positive = 1.0
    p: Probability = 0.5


class MixUp(Strict):
    """With probability ``p`` per image, ``lam * x + (1 - lam) * other`` with another
    image of the batch, lam ~ Beta(alpha, alpha), and the labels mixed by lam."""

    _what: ClassVar[str] = "key of augmentation 'mixup'"
    op: Literal["mixup"] = "mixup"
    alpha: Positive = 0.2
    p: Probability = 0.5


AUGMENTATIONS: dict[str, type[Strict]] = {
    "flip": Flip,
    "crop": Crop,
    "cutout": Cutout,
    "normalize": Normalize,
    "rotate": Rotate,
    "resized_crop": ResizedCrop,
    "scale": Scale,
    "color": Color,
    "cutmix": CutMix,
    "mixup": MixUp,
}


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


class _NameOrMapping:
    """In the JSON schema, an augmentation may be written as its name too."""

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "enum": list(AUGMENTATIONS)}, handler(core)]}


Augmentation = Annotated[
    Flip | Crop | Cutout | Normalize | Rotate | ResizedCrop | Scale | Color | CutMix | MixUp,
    BeforeValidator(_augmentation),
    _NameOrMapping(),
]
