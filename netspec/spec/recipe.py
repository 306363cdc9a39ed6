"""The training recipe: the optional ``train:`` section of a spec.

It lives in the torch-free core so that ``netspec check`` validates it with the rest
of the spec; the training code (``netspec.backends.train``) reads the validated model.
The same keys are ``netspec train`` flags and ``netspec.train`` keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from netspec.errors import Location, SpecError, did_you_mean
from netspec.spec import finetune
from netspec.spec.augment import Augmentation, Crop
from netspec.spec.strict import Strict


def _light() -> list[Augmentation]:
    return [Crop(padding=4)]  # no flip: it would change digits and text


class Recipe(Strict):
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
    #: decay of an exponential moving average of the weights, used for evaluation (off: none)
    ema: Annotated[float, Field(gt=0, lt=1)] | None = None

    #: transfer learning: the layers to freeze (name prefixes, globs, ``backbone``, ``all``)
    freeze: list[str] = Field(default_factory=list)
    freeze_bn: bool = False  # frozen batch norm layers stay in eval mode (running statistics kept)
    #: epoch -> layers made trainable at its start (``{3: layer4, 9: all}``, or "3:layer4,9:all")
    unfreeze: dict[int, list[str]] = Field(default_factory=dict)
    #: learning-rate multiplier per layer prefix (discriminative fine-tuning)
    lr_groups: dict[str, float] = Field(default_factory=dict)
    sync_bn: bool = False  # data-parallel on CUDA: batch norm statistics over all processes

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_text(cls, value: Any) -> Any:
        return finetune.patterns(value) if isinstance(value, str) else value

    @field_validator("unfreeze", "lr_groups", mode="before")
    @classmethod
    def _written_form(cls, value: Any, info: ValidationInfo) -> Any:
        """Their text (the flags' spelling) or mapping, parsed; a mistake as pydantic's error."""
        if not isinstance(value, str | Mapping):
            return value
        parse = finetune.unfreeze_schedule if info.field_name == "unfreeze" else finetune.parse_lr_groups
        try:
            return parse(value)
        except SpecError as e:
            raise ValueError(e.message) from None

    @field_validator("ema", mode="before")
    @classmethod
    def _ema_off(cls, value: Any) -> Any:
        # YAML reads ``ema: off`` as false; ``--ema off`` arrives as text
        if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none", "null")):
            return None
        if value is True:
            raise ValueError("ema is a decay such as 0.999, or off")
        return value


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
