"""The training recipe: the optional ``train:`` section of a spec.

It lives in the torch-free core so that ``netspec check`` validates it with the rest
of the spec; the training code (``netspec.backends.train``) reads the validated model.
The same keys are ``netspec train`` flags and ``netspec.train`` keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from netspec.errors import Location, SpecError, did_you_mean

Probability = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    """Refuses unknown keys with a did-you-mean among this model's own keys (pydantic's
    ``extra_forbidden`` error is translated against the top-level model's keys)."""

    model_config = ConfigDict(extra="forbid", defer_build=True, frozen=True)
    _what: ClassVar[str] = "key"

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fields = list(cls.model_fields)
            for key in data:
                if key not in fields:
                    hint = did_you_mean(str(key), fields) or "known keys: " + ", ".join(fields)
                    error = PydanticCustomError(
                        "unknown_key", "unknown {what}; {hint}", {"what": cls._what, "hint": hint}
                    )
                    raise ValidationError.from_exception_data(
                        cls.__name__, [InitErrorDetails(type=error, loc=(key,), input=data)]
                    )
        return data


class Flip(_Strict):
    """Mirror each image with probability ``p``."""

    _what: ClassVar[str] = "key of augmentation 'flip'"
    op: Literal["flip"] = "flip"
    p: Probability = 0.5
    direction: Literal["horizontal", "vertical"] = "horizontal"


class Crop(_Strict):
    """Pad by ``padding`` pixels (zeros) and crop back to the size at a random offset."""

    _what: ClassVar[str] = "key of augmentation 'crop'"
    op: Literal["crop"] = "crop"
    padding: Annotated[int, Field(ge=0)] = 4
    p: Probability = 1.0


class Cutout(_Strict):
    """Zero ``count`` squares of ``size`` pixels at random centres (clipped at the border)."""

    _what: ClassVar[str] = "key of augmentation 'cutout'"
    op: Literal["cutout"] = "cutout"
    size: Annotated[int, Field(ge=1)] = 8
    count: Annotated[int, Field(ge=1)] = 1
    p: Probability = 0.5


class Normalize(_Strict):
    """``(x - mean) / std`` per channel, in training and evaluation alike; without
    ``mean``/``std`` they are measured on the training set."""

    _what: ClassVar[str] = "key of augmentation 'normalize'"
    op: Literal["normalize"] = "normalize"
    mean: list[float] | None = None  # one value, or one per channel
    std: list[Annotated[float, Field(gt=0)]] | None = None


AUGMENTATIONS: dict[str, type[_Strict]] = {"flip": Flip, "crop": Crop, "cutout": Cutout, "normalize": Normalize}


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


def _light() -> list[Flip | Crop | Cutout | Normalize]:
    return [Crop(padding=4)]  # no flip: it would change digits and text


class Recipe(_Strict):
    """How to train; the defaults train the zoo specs on the bundled digits."""

    _what: ClassVar[str] = "recipe key"
    epochs: Annotated[int, Field(ge=1)] = 30
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: Annotated[float, Field(gt=0)] = 3e-3  # for sgd, ~0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    #: applied to weights only: norm layers' parameters and biases get none
    weight_decay: Annotated[float, Field(ge=0)] = 0.05  # for sgd, ~5e-4
    schedule: Literal["cosine", "step", "onecycle", "constant"] = "cosine"
    warmup_epochs: Annotated[float, Field(ge=0)] = 1.0  # linear, from lr/100; onecycle: its rising phase
    step_epochs: Annotated[int, Field(ge=1)] = 10  # step: multiply lr by gamma every step_epochs
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1
    grad_clip: Annotated[float, Field(gt=0)] | None = None  # max global L2 norm of the gradients
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    compile: bool = False  # torch.compile the module
    seed: int = 0
    val_split: Annotated[float, Field(gt=0, lt=1)] = 0.1  # share of the training data held out
    augment: list[Augmentation] = Field(default_factory=_light)


def resolve(base: Recipe | None, overrides: Mapping[str, Any], flags: bool = False) -> Recipe:
    """``base`` (a spec's ``train:`` section) with ``overrides`` (flags or keyword
    arguments) winning; an error names the override (``--lr`` with ``flags``)."""
    known = list(Recipe.model_fields)
    for key in overrides:
        if key not in known:
            raise SpecError(f"unknown recipe key '{key}'", hint=did_you_mean(key, known) or "keys: " + ", ".join(known))
    data = base.model_dump(exclude_unset=True) if base else {}
    try:
        return Recipe.model_validate({**data, **overrides})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in err["loc"])
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        message = err["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        got = err.get("input")
        if err["type"] not in ("value_error", "unknown_key") and not isinstance(got, (dict, list)):
            message += f", got {got!r}"
        raise SpecError(f"recipe key '{key}': {message}", Location(flag) if flags else None) from None
