"""Recipe models refuse unknown keys with a did-you-mean among their own keys."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from netspec.errors import did_you_mean


class Strict(BaseModel):
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
